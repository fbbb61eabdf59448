"""The write-up of `nst_jax.paper`: tables (Markdown and CSV), figures (PNG) and `README.md`, made
only from what the runs wrote and what was measured on their results. Every sentence of findings is
computed from the numbers beside it, states its spread over the image pairs, and says nothing about a
case that was not run."""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from nst_jax.image import load_image, psnr
from nst_jax.fileio import save_figure
from nst_jax.runfiles import RunFiles, write_text

COLUMNS_AT = (1, 10, 100, 1000, 5000)


# ------------------------------------------------------------------------------------- small helpers

def spread(values) -> str:
    """'median [min – max]' of finite values, or '—'."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "—"
    if len(v) == 1:
        return _num(v[0])
    return f"{_num(float(np.median(v)))} [{_num(min(v))} – {_num(max(v))}]"


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-2:
        return f"{x:.2e}"
    return f"{x:.3g}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def not_run(head: str, command: str, experiment: str) -> str:
    return f"{head.rstrip()}\n\nNot run yet: `{command} --only {experiment}`.\n"


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO(newline="")
    w = csv.DictWriter(buffer, keys)
    w.writeheader()
    w.writerows(rows)
    write_text(path, buffer.getvalue())


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                     ["| " + " | ".join(r) + " |" for r in rows])


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------------------------- 3.6 hyper-parameters

def hyper_records(experiment) -> list[dict]:
    """One record per finished run: pair, init, k, its loss log, final parts and image path."""
    records = []
    for pair, named in experiment.runs().items():
        for _, cfg in named:
            files = RunFiles(cfg.output)
            side = files.read_sidecar()
            log = files.read_log()
            if side is None or not log or not Path(cfg.output).exists():
                continue
            records.append({"pair": pair.split(" ")[0], "init": cfg.init, "k": cfg.style_weight, "seed": cfg.seed,
                            "log": log,
                            "iteration": side["iteration"], "loss": side["loss"],
                            "content": side["parts"]["content"], "style": side["parts"]["style"],
                            "image": Path(cfg.output), "files": files})
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
                     "content": r["content"], "style": r["style"], "best_init": b["init"]})
    return rows


def hyper_section(out: Path, scale, experiment, command: str) -> str:
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
        _iteration_sheet([r for r in records if r["pair"] == pair and r["k"] == mid], inits, path)
        sheets.append(path)
    table_rows = []
    for k in ks:
        for init in inits:
            sel = [r for r in rows if r["k"] == k and r["init"] == init]
            table_rows.append([f"{k:g}", init, spread([r["above_best"] * 100 for r in sel]),
                               spread([r["iterations_to_1pct"] for r in sel]),
                               spread([min(r["psnr_to_best"], 99.0) for r in sel]),
                               spread([r["content"] for r in sel]), spread([r["style"] for r in sel])])
    table = markdown_table(["k", "initial image", "final loss above the best (%)",
                            "iterations to within 1 % of its final loss", "PSNR to the best result (dB)",
                            "content loss", "style loss"], table_rows)
    n_pairs = len(pairs)
    its = max(r["iterations"] for r in rows)
    text = [f"## 3.6 Hyper-parameters: initial image, k, iterations", "",
            f"Each of the {len(inits)} initial images × k ∈ {{{', '.join(f'{k:g}' for k in ks)}}} on {n_pairs} "
            f"image pairs ({', '.join(pairs)}), {its} L-BFGS iterations at {scale.size} px, seed {scale.seed}: "
            f"{len(rows)} runs. Values are the median [min – max] over the pairs; 'the best' is the lowest final "
            "loss among the initial images for the same pair and k; PSNR 99 marks the best run itself.", "",
            f"Made by `{command} --only hyper`; every run's images, losses and settings are in "
            f"`runs/hyper/<pair>/<run>/` (not committed: rerun to get them).", "", "### Findings", ""]
    text += _hyper_findings(rows, inits, ks, its)
    text += _seed_findings(records, draws, ks, scale.seed, folder)
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
        same = [i for i in inits if all(r["above_best"] <= 0.01 for r in sel if r["init"] == i)]
        other = [i for i in inits if i not in same]
        worst = {i: float(np.median([r["above_best"] for r in sel if r["init"] == i])) for i in other}
        winners = sorted({r["best_init"] for r in sel})
        line = (f"- **k = {k:g}**: the lowest final loss came from {', '.join(winners)} "
                f"({'on every pair' if len(winners) == 1 else 'depending on the pair'}). ")
        line += (f"Within 1 % of it on every pair: {', '.join(same) if same else 'none besides the best'}. " +
                 (f"Not within 1 % on every pair (median above the best): " + ", ".join(f"{i} +{100 * v:.1f} %" for i, v in
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
    lines.append(f"- **Speed**: iterations to come within 1 % of the run's own final loss (median over pairs and k): "
                 + ", ".join(f"{i} {v:.0f}" for i, v in order) + f" (of {its}).")
    changes = [r["last_half_change"] for r in rows if r["last_half_change"] is not None]
    if changes:
        late = sum(r["iterations_to_1pct"] is not None and r["iterations_to_1pct"] > 0.8 * its for r in rows)
        lines.append(f"- **Convergence**: the loss at iteration {its // 2} was a median {_pct(float(np.median(changes)))} "
                     f"(up to {_pct(max(changes))}) above the final one, and {late} of {len(rows)} runs came within 1 % "
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
                     f"content loss goes {_num(float(np.median(c[ks[0]])))} → {_num(float(np.median(c[ks[-1]])))} and "
                     f"the style loss {_num(float(np.median(s[ks[0]])))} → {_num(float(np.median(s[ks[-1]])))}; "
                     f"monotonic in k on {mono} of {len(pairs)} pairs.")
    return lines


def _seed_findings(records, draws, ks, seed, folder: Path) -> list[str]:
    """The noise initial image drawn with other seeds: do the draws end at the same loss and image?"""
    rows = []
    for d in draws:
        base = next((r for r in records if r["init"] == "noise" and r["pair"] == d["pair"] and r["k"] == d["k"]), None)
        if base is not None:
            rows.append({"pair": d["pair"], "k": d["k"], "seed": d["seed"], "loss": d["loss"], "seed_loss": base["loss"],
                         "loss_difference": d["loss"] / base["loss"] - 1,
                         "psnr": psnr(load_image(d["image"]), load_image(base["image"]))})
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


def _curves(records, path: Path, inits, ks) -> None:
    plt = _plt()
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
            n = min(len(r["log"]) for r in curves)
            its = np.array([e["iteration"] for e in curves[0]["log"][:n]], float)
            ys = np.array([[r["log"][i]["loss"] / best[r["pair"]] for i in range(n)] for r in curves])
            keep = its >= 1
            ax.plot(its[keep], np.median(ys, 0)[keep], color=colour, lw=1.4, label=init)
            ax.fill_between(its[keep], ys.min(0)[keep], ys.max(0)[keep], color=colour, alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"k = {k:g}", fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("loss / best final loss")
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def _front(rows, path: Path, inits, ks, pairs) -> None:
    plt = _plt()
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
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(pair, fontsize=9)
        ax.set_xlabel("content loss")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("style loss")
    handles = [plt.Line2D([], [], color="grey", marker=markers[i % len(markers)], lw=0, label=f"k = {k:g}")
               for i, k in enumerate(ks)]
    axes[0][-1].legend(handles=axes[0][-1].get_legend_handles_labels()[0] + handles, fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def _iteration_sheet(records, inits, path: Path) -> None:
    from nst_jax.report import contact_sheet
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
        contact_sheet(rows, path, thumb=112)


# ------------------------------------------------------------------------------------ 3.5 statistics

def statistics_section(out: Path, scale, experiment, rows: list[dict] | None, command: str) -> str:
    head = "## 3.5 Other ways to remove spatial information: statistics that imply each other\n\n"
    if not rows:
        return not_run(head, command, "statistics")
    folder = out / "statistics"
    write_csv(folder / "cross.csv", rows)
    stats = [s for s in scale.statistics if any(r["optimised"] == s for r in rows)]
    pairs = sorted({r["pair"] for r in rows})
    ratio = {(a, b): [r["ratio"] for r in rows if r["optimised"] == a and r["measured"] == b] for a in stats
             for b in stats}
    med = {key: float(np.median(v)) for key, v in ratio.items() if v}
    _cross_figure(med, stats, folder / "cross.png")
    sheet_rows = []
    for pair, named in experiment.runs().items():
        by = {cfg.style_statistic: Path(cfg.output) for _, cfg in named}
        c = named[0][1]
        sheet_rows.append((pair, [("content", Path(c.content)), ("style", Path(c.styles[0]))] +
                           [(s, by.get(s)) for s in stats]))
    from nst_jax.report import contact_sheet
    contact_sheet(sheet_rows, folder / "results.png", thumb=96)
    table = markdown_table(["optimised ↓ / measured →"] + stats,
                           [[a] + [f"**{med[(a, b)]:.3g}**" if a == b else f"{med[(a, b)]:.3g}" for b in stats]
                            for a in stats])
    its = scale.statistics_iterations
    text = [head.rstrip(), "", f"The same transfer (content start, k = 100 in each statistic's calibrated units, "
            f"{its} L-BFGS iterations at {scale.size} px, default layers) optimised with each statistic A (rows), "
            f"then measured with every statistic B (columns): B's style loss of the result over B's style loss of "
            f"the content image it started from — 1 means A did nothing for B, 0 that A matched B exactly. Median "
            f"over {len(pairs)} pairs ({', '.join(pairs)}); the range of every cell is in the CSV. The random "
            "statistics (mmd-gauss, sliced_wasserstein) are measured with one fixed key.", "",
            f"Made by `{command} --only statistics`.", "", "### Findings", ""]
    text += _statistics_findings(ratio, med, stats, len(pairs))
    text += ["", "### Cross-evaluation (median ratio)", "", table, "", "![cross evaluation](statistics/cross.png)",
             "", "CSV: [statistics/cross.csv](statistics/cross.csv).", "", "### Results", "",
             "![results per statistic](statistics/results.png)", ""]
    return "\n".join(text)


def _statistics_findings(ratio, med, stats, n_pairs) -> list[str]:
    lines = []
    for a in stats:
        implied = [b for b in stats if b != a and ratio[(a, b)] and max(ratio[(a, b)]) <= 0.1]
        lines.append(f"- Optimising **{a}** brings {', '.join(implied) if implied else 'no other statistic'} "
                     f"below 10 % of its starting distance on every pair"
                     + (f" (its own: median {med[(a, a)]:.3g})." if (a, a) in med else "."))
    own_best = [b for b in stats if min(stats, key=lambda a: med[(a, b)]) == b]
    not_best = {b: min(stats, key=lambda a: med[(a, b)]) for b in stats if b not in own_best}
    lines.append(f"- Each statistic is best reduced by optimising itself for: {', '.join(own_best) or 'none'}"
                 + ("; the others were reduced most by optimising another: " +
                    ", ".join(f"{b} by {a}" for b, a in not_best.items())
                    if not_best else "") + ".")
    strict = {a: float(np.exp(np.mean([np.log(max(med[(a, b)], 1e-12)) for b in stats if b != a]))) for a in stats}
    order = sorted(strict.items(), key=lambda kv: kv[1])
    lines.append("- Strictest (lowest geometric mean of the other statistics' ratios): "
                 + ", ".join(f"{a} {v:.3g}" for a, v in order) + ".")
    if ("gram", "mean_std") in med:
        lines.append(f"- Is Gram matching also mean/std matching? Optimising gram leaves mean_std at "
                     f"{spread(ratio[('gram', 'mean_std')])} of its starting distance (over {n_pairs} pairs), "
                     f"mean_std's own optimisation {spread(ratio[('mean_std', 'mean_std')])}.")
    if "sliced_wasserstein" in stats:
        rank = [a for a, _ in order].index("sliced_wasserstein") + 1
        lines.append(f"- Is sliced Wasserstein the strictest? It ranks {rank} of {len(stats)} by the measure above.")
    return lines


def _cross_figure(med, stats, path: Path) -> None:
    plt = _plt()
    m = np.array([[med[(a, b)] for b in stats] for a in stats])
    fig, ax = plt.subplots(figsize=(1.0 * len(stats) + 2.5, 0.8 * len(stats) + 1.5))
    im = ax.imshow(np.log10(np.maximum(m, 1e-6)), cmap="viridis_r", vmin=-3, vmax=0.3)
    for i in range(len(stats)):
        for j in range(len(stats)):
            ax.text(j, i, f"{m[i, j]:.2g}", ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] < 0.03 else "black")
    ax.set_xticks(range(len(stats)), stats, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(stats)), stats, fontsize=8)
    ax.set_xlabel("measured with")
    ax.set_ylabel("optimised with")
    fig.colorbar(im, ax=ax, label="log10(ratio to the start)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------- 3.4 the Gram matrix

def gram_section(out: Path, scale, experiment, mmd: list[dict] | None, command: str) -> str:
    head = "## 3.4 The Gram matrix: what each layer's statistics hold, and the MMD view"
    if not mmd:
        return not_run(head, command, "gram")
    folder = out / "gram"
    write_csv(folder / "mmd.csv", mmd)
    rows = []
    losses = []
    for style, named in experiment.runs().items():
        cells = [("style", Path(named[0][1].content))]
        for _, cfg in named:
            last = cfg.style_layers[-1]
            cells.append((f"relu1_1…{last}" if len(cfg.style_layers) > 1 else last, Path(cfg.output)))
            side = RunFiles(cfg.output).read_sidecar()
            if side:
                losses.append({"style": style, "layers": "+".join(cfg.style_layers), "iteration": side["iteration"],
                               "style_loss": side["parts"]["style"]})
        rows.append((style, cells))
    from nst_jax.report import contact_sheet
    contact_sheet(rows, folder / "reconstructions.png", thumb=128)
    write_csv(folder / "reconstructions.csv", losses)
    layers = list(dict.fromkeys(r["layer"] for r in mmd))
    table = markdown_table(["layer", "channels C", "positions M", "MMD² (median)", "|C⁴·Gram loss / MMD² − 1| (max)"],
                           [[l, str(next(r["channels"] for r in mmd if r["layer"] == l)),
                             spread([r["positions"] for r in mmd if r["layer"] == l]),
                             _num(float(np.median([r["mmd2"] for r in mmd if r["layer"] == l]))),
                             f"{max(abs(r['relative_difference']) for r in mmd if r['layer'] == l):.1e}"]
                            for l in layers])
    worst = max(abs(r["relative_difference"]) for r in mmd)
    n_pairs = len({r["pair"] for r in mmd})
    its = scale.reconstruction_iterations
    text = [head, "", "**Style reconstructions.** From white noise (seed "
            f"{scale.seed}), {its} L-BFGS iterations at {scale.size} px matching only the Gram matrices of relu1_1 up "
            "to each layer (no content, no total variation): what the Gram matrices of a layer set keep of a "
            "painting (columns: relu1_1 alone, then one more layer each).", "",
            "![style reconstructions](gram/reconstructions.png)", "",
            "Final style losses: [gram/reconstructions.csv](gram/reconstructions.csv).", "",
            "**The Gram loss is an MMD.** With the quadratic kernel k(x, y) = (xᵀy)², the squared maximum mean "
            "discrepancy between the content's and the style's feature vectors is "
            "MMD² = mean k(f_i, f_j) + mean k(s_i, s_j) − 2 mean k(f_i, s_j) = ‖FᵀF/M − SᵀS/N‖²_F, and nst_jax's "
            "Gram loss (the mean over C² of (FᵀF/(C·M) − SᵀS/(C·N))²) is that divided by C⁴ (Li et al. 2017). "
            f"Checked on the real VGG19 features of {n_pairs} pairs at {scale.size} px: MMD² computed from its "
            "definition (every pair of positions, float64) against the Gram loss (float32): the largest relative "
            f"difference over all pairs and layers is {worst:.1e} — float32 rounding, the identity holds.", "",
            table, "", "CSV: [gram/mmd.csv](gram/mmd.csv).", "",
            f"Made by `{command} --only gram`.", ""]
    return "\n".join(text)


# --------------------------------------------------------------------------------------- network reduction

def reduction_section(out: Path, scale, rows: list[dict] | None, command: str) -> str:
    head = "## Network reduction: how much of VGG19 does style transfer need?"
    if not rows:
        return not_run(head, command, "reduction")
    folder = out / "reduction"
    pairs = sorted({r["pair"] for r in rows})
    base = {p: next(r for r in rows if r["pair"] == p and r["fraction"] == 0.0) for p in pairs}
    for r in rows:
        for key in ("full_loss", "full_style", "full_content"):
            r[f"{key}_vs_full"] = r[key] / base[r["pair"]][key]
    write_csv(folder / "reduction.csv", rows)
    criteria = list(dict.fromkeys(r["criterion"] for r in rows))
    fractions = sorted({r["fraction"] for r in rows})
    total_channels = base[pairs[0]]["channels_kept"]
    trows = []
    for c in criteria:
        for f in fractions:
            sel = [r for r in rows if r["criterion"] == c and r["fraction"] == f]
            if f == 0.0 and c != criteria[0]:
                continue
            trows.append([c if f > 0 else "none (full VGG19)", f"{f:.0%}", f"{sel[0]['channels_kept']} "
                          f"({sel[0]['channels_kept'] / total_channels:.0%})",
                          spread([r["seconds_per_iteration"] for r in sel]),
                          spread([r["full_loss_vs_full"] for r in sel]), spread([r["full_style_vs_full"] for r in sel]),
                          spread([r["full_content_vs_full"] for r in sel])])
    table = markdown_table(["channels removed by", "fraction removed", "channels kept", "s / iteration",
                            "full-network loss ÷ unpruned", "style ÷ unpruned", "content ÷ unpruned"], trows)
    sheet = []
    for p in pairs:
        for c in criteria:
            found = {r["fraction"]: Path(r["image"]) for r in rows if r["pair"] == p and r["criterion"] == c}
            if c != criteria[0]:  # the unpruned result is the same for every criterion
                found.setdefault(0.0, next(Path(r["image"]) for r in rows if r["pair"] == p and r["fraction"] == 0.0))
            sheet.append((f"{p.split('+')[0]} {c}", [(f"−{f:.0%}", found.get(f)) for f in fractions]))
    from nst_jax.report import contact_sheet
    contact_sheet(sheet, folder / "results.png", thumb=96)
    lines = []
    for c in criteria:
        ok = [f for f in fractions if f > 0 and all(r["full_loss_vs_full"] <= 1.10 for r in rows
                                                     if r["criterion"] == c and r["fraction"] == f)]
        most = max(ok) if ok else None
        lines.append(f"- **{c}**: " + (f"up to {most:.0%} of the channels removed with the full network's loss "
                                        f"within 10 % of the unpruned result's on every pair"
                                        if most is not None else "no fraction tried keeps the full network's loss "
                                        "within 10 % of the unpruned result's on every pair") + "; at "
                     f"{fractions[-1]:.0%} removed the loss is {spread([r['full_loss_vs_full'] for r in rows if r['criterion'] == c and r['fraction'] == fractions[-1]])}× "
                     "the unpruned one.")
    text = [head, "", f"Rank each convolution's channels (activation: mean ReLU output; style: share of the Gram "
            "difference between content and style; distinct: angle to the nearest other channel, Gedeon & Harris "
            "1991), remove the lowest fraction physically (smaller kernels), run the transfer "
            f"({scale.reduction_iterations} L-BFGS iterations at {scale.size} px) with the smaller network, and "
            "measure the result with the full network's default objective. Values: median [min – max] over "
            f"{len(pairs)} pairs ({', '.join(pairs)}), relative to the unpruned network's result on the same pair.",
            "", f"Made by `{command} --only reduction`.", "", "### Findings", ""] + lines + \
           ["", table, "", "![reduction results](reduction/results.png)", "",
            "CSV: [reduction/reduction.csv](reduction/reduction.csv).", ""]
    return "\n".join(text)


# --------------------------------------------------------------------------------------------- README

def write(out: Path, scale, experiments: dict, seconds: dict, command: str) -> Path:
    import jax
    runs = out / "runs"
    total = sum(seconds.values())
    plain = f"python -m nst_jax.paper --out {out} --scale {scale.name}"
    parts = [f"# Dissecting Neural Style Transfer: the results, regenerated", "",
             f"Results for the experiments of *Dissecting Neural Style Transfer* (Xi Du, ANU), made by nst_jax "
             f"with `{command}` at the **{scale.name}** scale ({scale.size} px). The paper's own scale (512 px, up "
             "to 5000 iterations) is `--scale cluster` (for a GPU node or, with `--engine ray --address auto`, a "
             "Ray cluster). Rerunning the command continues unfinished runs and redraws everything from the runs' "
             "files.", "",
             f"Machine: {platform.machine()} {platform.processor() or ''}, {jax.device_count()} "
             f"{jax.default_backend().upper()} device(s), JAX {jax.__version__}; written {time.strftime('%Y-%m-%d')}. "
             "Wall time (summed over the invocations that did the work): "
             + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()) + f"; total {total / 60:.1f} min.", "",
             "Contents: [3.4 the Gram matrix](#34-the-gram-matrix-what-each-layers-statistics-hold-and-the-mmd-view) · "
             "[3.5 statistics](#35-other-ways-to-remove-spatial-information-statistics-that-imply-each-other) · "
             "[3.6 hyper-parameters](#36-hyper-parameters-initial-image-k-iterations) · "
             "[network reduction](#network-reduction-how-much-of-vgg19-does-style-transfer-need)", ""]
    parts.append(gram_section(out, scale, experiments["gram"], _read(runs / "mmd.json"), plain))
    parts.append(statistics_section(out, scale, experiments["statistics"], _read(runs / "statistics.json"), plain))
    parts.append(hyper_section(out, scale, experiments["hyper"], plain))
    parts.append(reduction_section(out, scale, _read(runs / "reduction.json"), plain))
    path = out / "README.md"
    write_text(path, "\n".join(parts))
    return path
