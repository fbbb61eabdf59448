"""3.6 of the paper, hyper-parameters: every initial image × every k, to convergence, and the noise
image drawn with other seeds — the runs, what is read from them, and the section with its figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nst_jax.studies.figures import log_axes, pyplot, save_figure
from nst_jax.files.image import load_image, psnr
from nst_jax.studies.paper.common import Experiment, Scale, base, finished, pair_name
from nst_jax.studies.paper.tables import COLUMNS_AT, iterations, markdown_table, not_run, num, pct, spread, write_csv
from nst_jax.files.runfiles import RunFiles

def experiment(scale: Scale, runs: Path) -> Experiment:
    """3.6: every initial image × every k (or, where the scale says, every initial image at one k and
    a few of them over every k), to convergence; and the noise image drawn with other seeds."""
    grids = [("", "hyper", {"init": list(scale.inits), "style_weight": list(scale.ks)})]
    if scale.init_k is not None:
        grids = [("", "hyper", {"init": list(scale.inits), "style_weight": [scale.init_k]}),
                 (" (k)", "hyper-k", {"init": list(scale.tradeoff_inits),
                                       "style_weight": [k for k in scale.ks if k != scale.init_k]})]
    sweeps = [(pair_name(c, s) + label, runs / folder / pair_name(c, s), grid, base(scale, c, s),
               scale.hyper_iterations) for label, folder, grid in grids for c, s in scale.hyper_pairs]
    if scale.noise_seeds and "noise" in scale.inits:
        seed_ks = list(scale.ks) if scale.init_k is None else [scale.init_k]
        sweeps += [(f"{pair_name(c, s)} (noise seeds)", runs / "hyper-seeds" / pair_name(c, s),
                    {"seed": list(scale.noise_seeds), "style_weight": seed_ks}, base(scale, c, s, init="noise"),
                    scale.hyper_iterations) for c, s in scale.hyper_pairs]
    return Experiment("initial images × k", sweeps)


def shown_intermediates(scale: Scale):
    """Which intermediate images of a run the section shows (its iteration sheets: the runs at the middle k
    with the study's seed, at `COLUMNS_AT`), as a function of the run's Config."""
    mid = scale.init_k if scale.init_k is not None else scale.ks[len(scale.ks) // 2]
    return lambda cfg: COLUMNS_AT if cfg.style_weight == mid and cfg.seed == scale.seed else ()


def hyper_records(experiment) -> list[dict]:
    """One record per finished run: pair, init, k, its loss log, final parts and image path."""
    records = []
    for pair, named in experiment.runs().items():
        for _, cfg in named:
            side = finished(cfg)
            files = RunFiles(cfg.output)
            log = files.read_log() if side is not None else []
            if not log:
                continue
            records.append({"pair": pair.split(" ")[0], "init": cfg.init, "k": cfg.style_weight, "seed": cfg.seed,
                            "log": log,
                            "iteration": side["iteration"], "loss": side["loss"],
                            "content": side["parts"]["content"], "style": side["parts"]["style"],
                            "image": Path(cfg.output), "files": files, "cfg": cfg,
                            "converged": isinstance(side.get("converged"), dict)})
    return records


def iterations_to(log: list[dict], level: float) -> int | None:
    for r in log:
        if r["loss"] <= level:
            return int(r["iteration"])
    return None


def analyse_hyper(records: list[dict]) -> list[dict]:
    """Per run: final loss over the best of its pair and k, iterations to within 1 % of its own final
    loss, PSNR to the best run's image, change of the loss over the last half of the run."""
    best = {}
    for r in records:
        key = (r["pair"], r["k"])
        if key not in best or r["loss"] < best[key]["loss"]:
            best[key] = r
    images = {}
    rows = []
    for r in records:
        b = best[(r["pair"], r["k"])]
        for x in (r, b):
            images.setdefault(x["image"], load_image(x["image"]))
        half = [e for e in r["log"] if e["iteration"] <= r["iteration"] // 2]
        rows.append({"pair": r["pair"], "init": r["init"], "k": r["k"], "iterations": r["iteration"],
                     "final_loss": r["loss"], "above_best": r["loss"] / b["loss"] - 1,
                     "iterations_to_1pct": iterations_to(r["log"], 1.01 * r["loss"]),
                     "last_half_change": (half[-1]["loss"] / r["loss"] - 1) if half else None,
                     "psnr_to_best": psnr(images[r["image"]], images[b["image"]]) if r is not b else float("inf"),
                     "content": r["content"], "style": r["style"], "best_init": b["init"],
                     "converged": r.get("converged", False)})
    return rows


def section(out: Path, scale, experiment, command: str) -> str:
    records = hyper_records(experiment)
    draws = [r for r in records if r["seed"] != scale.seed]
    records = [r for r in records if r["seed"] == scale.seed]
    if not records:
        return not_run("## 3.6 Hyper-parameters: initial image, k, iterations", command, "hyper")
    rows = analyse_hyper(records)
    folder = out / "hyper"
    write_csv(folder / "hyper.csv", rows)
    pairs = sorted({r["pair"] for r in rows})
    inits = [i for i in scale.inits if any(r["init"] == i for r in rows)]
    ks = [k for k in scale.ks if any(r["k"] == k for r in rows)]
    _curves(records, folder / "curves.png", inits, ks)
    _front(rows, folder / "front.png", inits, ks, pairs)
    mid = ks[len(ks) // 2]
    sheets = []
    for pair in pairs:
        path = folder / f"sheet_{pair}.png"
        _iteration_sheet([r for r in records if r["pair"] == pair and r["k"] == mid], inits, path, scale.size)
        sheets.append(path)
    table_rows = []
    for k in ks:
        for init in inits:
            sel = [r for r in rows if r["k"] == k and r["init"] == init]
            table_rows.append([f"{k:g}", init, spread([r["above_best"] * 100 for r in sel]),
                               spread([r["iterations_to_1pct"] for r in sel]), spread([r["iterations"] for r in sel]),
                               spread([min(r["psnr_to_best"], 99.0) for r in sel]),
                               spread([r["content"] for r in sel]), spread([r["style"] for r in sel])])
    table = markdown_table(["k", "initial image", "final loss above the best (%)",
                            "iterations to within 1 % of its final loss", "iterations run",
                            "PSNR to the best result (dB)",
                            "content loss", "style loss"], table_rows)
    n_pairs = len(pairs)
    its = scale.hyper_iterations
    text = ["## 3.6 Hyper-parameters: initial image, k, iterations", "",
            (f"Each of the {len(inits)} initial images × k ∈ {{{', '.join(f'{k:g}' for k in ks)}}}"
             if scale.init_k is None else
             f"Each of the {len(inits)} initial images at k = {scale.init_k:g}, and the "
             f"{' and '.join(scale.tradeoff_inits)} starts at every k ∈ {{{', '.join(f'{k:g}' for k in ks)}}},")
            + f" on {n_pairs} image pairs ({', '.join(pairs)}), {iterations(scale, its)} at {scale.size} px, seed "
            f"{scale.seed}: "
            f"{len(rows)} runs. Values are the median [min – max] over the pairs; 'the best' is the lowest final "
            "loss among the initial images for the same pair and k; PSNR 99 marks the best run itself.", "",
            f"Made by `{command} --only hyper`; every run's images, losses and settings are in "
            f"`runs/hyper/<pair>/<run>/`, and the finished ones are kept, committed, in `kept/hyper/`.", "",
            "### Findings", ""]
    text += _hyper_findings(rows, inits, ks, its)
    text += _seed_findings(records, draws, ks, scale.seed, folder)
    text += _leaders(records, inits, ks, scale)
    text += ["", "### Loss against iterations", "",
             "Total loss over the best final loss of the same pair and k (log scales); the line is the median over "
             "the pairs, the band their range.", "", "![loss curves](hyper/curves.png)", "",
             "### Content against style: what k trades", "",
             "Final content and style losses (unweighted) of each run; each line joins one initial image's runs "
             "over k.", "", "![content-style front](hyper/front.png)", "",
             f"### Intermediate images (k = {mid:g})", ""]
    text += [f"![{p.stem}](hyper/{p.name})" for p in sheets]
    text += ["", "### Table", "", table, "", "CSV: [hyper/hyper.csv](hyper/hyper.csv).", ""]
    return "\n".join(text)


def _hyper_findings(rows, inits, ks, its) -> list[str]:
    lines = []
    pairs = sorted({r["pair"] for r in rows})
    for k in ks:
        sel = [r for r in rows if r["k"] == k]
        present = [i for i in inits if any(r["init"] == i for r in sel)]
        same = [i for i in present if all(r["above_best"] <= 0.01 for r in sel if r["init"] == i)]
        other = [i for i in present if i not in same]
        worst = {i: float(np.median([r["above_best"] for r in sel if r["init"] == i])) for i in other}
        won = {r["pair"]: r["best_init"] for r in sel}   # the best start of each pair
        wins = sorted({i: sum(v == i for v in won.values()) for i in set(won.values())}.items(),
                      key=lambda kv: -kv[1])
        line = (f"- **k = {k:g}**: the lowest final loss came from "
                + ", ".join(f"{i} on {n} of {len(won)} pairs" for i, n in wins) + ". ")
        line += (f"Within 1 % of it on every pair: {', '.join(same) if same else 'none besides the best'}. " +
                 ("Not within 1 % on every pair (median above the best): " + ", ".join(f"{i} +{100 * v:.1f} %" for i, v in
                                                        sorted(worst.items(), key=lambda kv: kv[1])) + "."
                  if worst else ""))
        psnrs = {i: float(np.median(v)) for i in inits  # over the pairs where it is not the best itself
                 if (v := [r["psnr_to_best"] for r in sel if r["init"] == i and math.isfinite(r["psnr_to_best"])])}
        if psnrs:
            line += (" Median PSNR of each result to the best one (how alike the images are): "
                     + ", ".join(f"{i} {v:.1f} dB" for i, v in sorted(psnrs.items(), key=lambda kv: -kv[1])) + ".")
        lines.append(line)
    fast = {i: float(np.median([r["iterations_to_1pct"] for r in rows if r["init"] == i
                                and r["iterations_to_1pct"] is not None])) for i in inits}
    order = sorted(fast.items(), key=lambda kv: kv[1])
    lines.append(f"- **Speed**: iterations to come within 1 % of the run's own final loss (median over the "
                 f"{len(pairs)} pairs and every k each start ran at): "
                 + ", ".join(f"{i} {v:.0f}" for i, v in order) + f" (of {its}).")
    changes = [r["last_half_change"] for r in rows if r["last_half_change"] is not None]
    if any(r["converged"] for r in rows):
        stops = {i: [r["iterations"] for r in rows if r["init"] == i and r["converged"]] for i in inits}
        done = sum(r["converged"] for r in rows)
        lines.append(f"- **Convergence**: {done} of {len(rows)} runs were ended by the stopping rule"
                     + (f", the rest by the cap of {its}" if done < len(rows) else "") + ". Iterations to convergence "
                     "per start (median [range] over pairs and k): " + ", ".join(f"{i} {spread(v)}" for i, v in sorted(
                         stops.items(), key=lambda kv: np.median(kv[1]) if kv[1] else math.inf)) + ". The rule "
                     "stops a run short of where the cap would get it (by how much: see Convergence), so final losses "
                     "closer than that gap do not rank the initial images.")
    elif changes:
        late = sum(r["iterations_to_1pct"] is not None and r["iterations_to_1pct"] > 0.8 * its for r in rows)
        lines.append(f"- **Convergence**: the loss at iteration {its // 2} was a median {pct(float(np.median(changes)))} "
                     f"(up to {pct(max(changes))}) above the final one, and {late} of {len(rows)} runs came within 1 % "
                     f"of their final loss only in the last fifth of the run"
                     + (f" — **not converged at {its} iterations**: the final losses above are where the runs stood, "
                        "not their optima; `--scale cluster` runs 5000." if max(changes) > 0.01 else "."))
    for init in ("content",) if "content" in inits else inits[:1]:
        c = {k: [r["content"] for r in rows if r["init"] == init and r["k"] == k] for k in ks}
        s = {k: [r["style"] for r in rows if r["init"] == init and r["k"] == k] for k in ks}
        mono = sum(all(_at(rows, p, init, a, "content") <= _at(rows, p, init, b, "content") and
                       _at(rows, p, init, a, "style") >= _at(rows, p, init, b, "style")
                       for a, b in zip(ks, ks[1:])) for p in pairs)
        lines.append(f"- **k trades content for style** ({init} start): from k = {ks[0]:g} to {ks[-1]:g} the median "
                     f"content loss goes {num(float(np.median(c[ks[0]])))} → {num(float(np.median(c[ks[-1]])))} and "
                     f"the style loss {num(float(np.median(s[ks[0]])))} → {num(float(np.median(s[ks[-1]])))}; "
                     f"monotonic in k on {mono} of {len(pairs)} pairs.")
    return lines


def seed_rows(records: list[dict], draws: list[dict]) -> list[dict]:
    """Each noise start drawn with another seed against the same pair and k's run from the study's seed:
    the final losses' relative difference and the PSNR between the two images."""
    rows = []
    for d in draws:
        base = next((r for r in records if r["init"] == "noise" and r["pair"] == d["pair"] and r["k"] == d["k"]), None)
        if base is not None:
            rows.append({"pair": d["pair"], "k": d["k"], "seed": d["seed"], "loss": d["loss"], "seed_loss": base["loss"],
                         "loss_difference": d["loss"] / base["loss"] - 1,
                         "psnr": psnr(load_image(d["image"]), load_image(base["image"]))})
    return rows


def _seed_findings(records, draws, ks, seed, folder: Path) -> list[str]:
    """The noise initial image drawn with other seeds: do the draws end at the same loss and image?"""
    rows = seed_rows(records, draws)
    if not rows:
        return []
    write_csv(folder / "noise_seeds.csv", rows)
    seeds = sorted({r["seed"] for r in rows})
    return [f"- **Other noise draws** (seed {seed} against {', '.join(map(str, seeds))}; "
            f"[hyper/noise_seeds.csv](hyper/noise_seeds.csv)): " + "; ".join(
                f"k = {k:g}: final losses differ by {spread([100 * abs(r['loss_difference']) for r in rows if r['k'] == k])} %,"
                f" PSNR between the images {spread([r['psnr'] for r in rows if r['k'] == k])} dB" for k in ks
                if any(r["k"] == k for r in rows)) + "."]


def _at(rows, pair, init, k, key):
    for r in rows:
        if r["pair"] == pair and r["init"] == init and r["k"] == k:
            return r[key]
    return float("nan")


def held_curves(curves: list[dict], best: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, one row per run of its loss over its pair's `best`) on every iteration any run logged:
    a run that stopped earlier is held at its last loss (its stop is drawn as a dot)."""
    its = np.array(sorted({e["iteration"] for r in curves for e in r["log"]}), float)
    ys = np.array([np.interp(its, [e["iteration"] for e in r["log"]], [e["loss"] for e in r["log"]])
                   / best[r["pair"]] for r in curves])
    return its, ys


def _curves(records, path: Path, inits, ks) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(ks), figsize=(4.6 * len(ks), 3.8), squeeze=False, sharey=True)
    colours = plt.get_cmap("tab10")(np.arange(len(inits)))
    for ax, k in zip(axes[0], ks):
        best = {}
        for r in records:
            if r["k"] == k:
                best[r["pair"]] = min(best.get(r["pair"], math.inf), r["loss"])
        for colour, init in zip(colours, inits):
            curves = [r for r in records if r["k"] == k and r["init"] == init]
            if not curves:
                continue
            its, ys = held_curves(curves, best)
            keep = its >= 1
            ax.plot(its[keep], np.median(ys, 0)[keep], color=colour, lw=1.4, label=init)
            ax.fill_between(its[keep], ys.min(0)[keep], ys.max(0)[keep], color=colour, alpha=0.15, lw=0)
            ax.scatter([r["log"][-1]["iteration"] for r in curves], [r["log"][-1]["loss"] / best[r["pair"]]
                                                                     for r in curves], color=colour, s=9, zorder=3)
        log_axes(ax, f"k = {k:g}", "iteration", fontsize=10)
    axes[0][0].set_ylabel("loss / best final loss")
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def _front(rows, path: Path, inits, ks, pairs) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.8), squeeze=False)
    colours = plt.get_cmap("tab10")(np.arange(len(inits)))
    markers = "os^Dv<>"
    for ax, pair in zip(axes[0], pairs):
        for colour, init in zip(colours, inits):
            pts = [(r["content"], r["style"], r["k"]) for k in ks for r in rows
                   if r["pair"] == pair and r["init"] == init and r["k"] == k]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour, lw=1, alpha=0.7, label=init)
            for (c, s, k), m in zip(pts, markers):
                ax.scatter([c], [s], color=colour, marker=markers[ks.index(k) % len(markers)], s=22)
        log_axes(ax, pair, "content loss")
    axes[0][0].set_ylabel("style loss")
    handles = [plt.Line2D([], [], color="grey", marker=markers[i % len(markers)], lw=0, label=f"k = {k:g}")
               for i, k in enumerate(ks)]
    axes[0][-1].legend(handles=axes[0][-1].get_legend_handles_labels()[0] + handles, fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def _iteration_sheet(records, inits, path: Path, size: int) -> None:
    from nst_jax.studies.report import contact_sheet
    by_init = {r["init"]: r for r in records}
    last = max((r["iteration"] for r in records), default=0)
    columns = [c for c in COLUMNS_AT if c < last] + [last]
    rows = []
    for init in inits:
        r = by_init.get(init)
        if r is None:
            continue
        shots = r["files"].intermediates()
        cells = [(f"iteration {c}", shots.get(c) if c != last else r["image"]) for c in columns]
        rows.append((init, cells))
    if rows:
        contact_sheet(rows, path, thumb=size)


def _leaders(records, inits, ks, scale) -> list[str]:
    """Which initial image has the lowest objective after k iterations, for each k of the log schedule,
    on how many pairs (at every style weight where every initial image ran); a run that stopped earlier
    counts with its lowest loss."""
    lines = []
    for weight in ks:
        sel = [r for r in records if r["k"] == weight]
        present = [i for i in inits if any(r["init"] == i for r in sel)]
        if len(present) < len(inits) or len(present) < 3:
            continue
        pairs = sorted({r["pair"] for r in sel})
        last = max(r["iteration"] for r in sel)
        marks = [m for m in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if m < last] + [last]
        table = []
        for m in marks:
            wins = dict.fromkeys(present, 0)
            for p in pairs:
                at = {r["init"]: min(e["loss"] for e in r["log"] if e["iteration"] <= m) for r in sel if r["pair"] == p}
                wins[min(at, key=at.get)] += 1
            table.append([str(m)] + [str(wins[i]) if wins[i] else "·" for i in present])
        lines += ["", f"**Lowest objective after each iteration count** (k = {weight:g}): on how many of the "
                  f"{len(pairs)} pairs each initial image leads.", "", markdown_table(["iterations"] + present, table)]
    return lines
