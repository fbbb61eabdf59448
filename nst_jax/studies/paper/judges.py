"""3.7 of the paper, evaluating the result: every result judged by the nine statistics of 3.5 (each
an independent measure of style that the run did not optimise, except the one it did) and by the
content loss; the objective's own ranking set against the judges'; a content–style trade-off per k;
and the smallest network (the reduction study) whose results stay within 10 % of the full network's
on every judge."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from nst_jax.base.errors import NSTError
from nst_jax.studies.figures import log_axes, pyplot, save_figure
from nst_jax.studies.paper.tables import largest_passing, markdown_table, not_run, spread, write_csv

HEAD = "## 3.7 Evaluating the result: independent judges, the trade-off, and how much network is needed"
WITHIN = 0.10   # 'within 10 % of the full network's judges'


def measure_images(cfg, images: dict[str, np.ndarray], statistics: tuple[str, ...], seed: int, weights) -> dict:
    """{judge: {label: value, 'start': the content image's value}}: each statistic's style loss (judge
    named by the statistic) and the content loss ('content') of every image of one pair. Random
    statistics are measured with one fixed key."""
    import jax
    import jax.numpy as jnp

    from nst_jax.machine import compiler
    from nst_jax.objective import losses
    from nst_jax.transfer.problem import prepare

    key = jax.random.PRNGKey(seed)
    judged = {}
    for statistic in statistics:
        problem = prepare(dataclasses.replace(cfg, style_statistic=statistic), weights)
        fun = compiler.jit(lambda x, aux, spec=problem.spec: losses.make_objective(spec)(x, aux)[1])
        aux = problem.aux(key)
        start = fun(jnp.asarray(problem.content[None]), aux)
        judged[statistic] = {"start": float(start["style"])}
        if statistic == statistics[0]:
            judged["content"] = {"start": float(start["content"])}
        for label, img in images.items():
            if img.shape[:2] != problem.content.shape[:2]:
                raise NSTError(f"{label}: a result of another size than its content ({img.shape[:2]})")
            parts = fun(jnp.asarray(img[None]), aux)
            judged[statistic][label] = float(parts["style"])
            if statistic == statistics[0]:
                judged["content"][label] = float(parts["content"])
    return judged


def measure(scale, hyper_experiment, reduction_rows: list[dict] | None) -> list[dict]:
    """One row per (pair, result, judge): 3.6's results at every k and the reduction study's results."""
    from nst_jax.files.image import load_image
    from nst_jax.model import weights as vgg_weights
    from nst_jax.studies.paper.hyper import hyper_records

    w = vgg_weights.load()
    by_pair: dict[str, dict] = {}
    for r in hyper_records(hyper_experiment):
        if r["seed"] == scale.seed:
            by_pair.setdefault(r["pair"], {"cfg": r["cfg"], "items": {}})["items"][f"hyper {r['init']} {r['k']:g}"] = (
                {"source": "hyper", "init": r["init"], "k": r["k"], "loss": r["loss"]}, r["image"])
    for r in reduction_rows or []:
        if r["pair"] in by_pair and Path(r["image"]).exists():
            by_pair[r["pair"]]["items"][f"reduction {r['criterion']} {r['fraction']:g}"] = (
                {"source": "reduction", "criterion": r["criterion"], "fraction": r["fraction"]}, Path(r["image"]))
    rows = []
    for pair, found in sorted(by_pair.items()):
        images = {label: load_image(path) for label, (_, path) in found["items"].items()}
        judged = measure_images(found["cfg"], images, scale.statistics, scale.seed, w)
        for judge, values in judged.items():
            for label, (what, _) in found["items"].items():
                rows.append({"pair": pair, **what, "judge": judge, "value": values[label], "start": values["start"]})
    return rows


def _at(rows, **match) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def section(out: Path, scale, rows: list[dict] | None, command: str) -> str:
    if not rows:
        return not_run(HEAD, command, "hyper,reduction")
    folder = out / "judges"
    write_csv(folder / "judges.csv", rows)
    judges = list(scale.statistics)
    pairs = sorted({r["pair"] for r in rows})
    text = [HEAD, "", "A result is usually scored by the loss it was optimised for. Here every result is also judged "
            f"by the style losses of all {len(judges)} statistics of 3.5 ({', '.join(judges)}) — each a different "
            "way to remove spatial information, so all but one are measures the run never saw — and by the content "
            "loss. A judge's score is its style loss of the result over its style loss of the content image (1: no "
            f"closer to the style than the photograph, 0: a perfect match). Measured on {len(pairs)} pairs "
            f"({', '.join(pairs)}) at {scale.size} px. Measured by `{command}` on what `--only hyper,reduction` made.", ""]
    text += _objective_against_judges(rows, judges, pairs, scale)
    text += _tradeoff(rows, judges, pairs, scale, folder)
    text += _reduction(rows, judges, pairs)
    text += ["", "CSV (every result × judge): [judges/judges.csv](judges/judges.csv).", ""]
    return "\n".join(text)


def score(rows: list[dict], judge: str) -> dict:
    return {(r["pair"], r.get("init"), r.get("k"), r.get("criterion"), r.get("fraction")): r["value"] / r["start"]
            for r in rows if r["judge"] == judge and r["start"] > 0}


def _objective_against_judges(rows, judges, pairs, scale) -> list[str]:
    """Do the judges rank the initial images (at the k every one ran) as the objective does?"""
    k = scale.init_k if scale.init_k is not None else scale.ks[len(scale.ks) // 2]
    hyper = [r for r in rows if r["source"] == "hyper" and r["k"] == k]
    inits = [i for i in scale.inits if any(r["init"] == i for r in hyper)]
    if len(inits) < 2:
        return []
    lines = ["### Does the lowest objective win on the judges?", "",
             f"The {len(inits)} initial images at k = {k:g}: the Spearman correlation between the ranking by the "
             "final objective and by each judge (1: the same order), and on how many pairs the initial image with "
             "the lowest objective is also best for that judge.", ""]
    table = []
    for judge in judges + ["content"]:
        rhos, wins = [], 0
        for pair in pairs:
            sel = [r for r in hyper if r["pair"] == pair and r["judge"] == judge]
            if len(sel) < len(inits):
                continue
            loss = np.array([r["loss"] for r in sel])
            value = np.array([r["value"] for r in sel])
            rhos.append(spearman(loss, value))
            wins += int(np.argmin(loss) == np.argmin(value))
        table.append([judge + (" (the objective's own statistic)" if judge == "gram" else ""), spread(rhos),
                      f"{wins} of {len(rhos)}"])
    lines += [markdown_table(["judge", "rank correlation with the objective", "lowest objective also best"], table), ""]
    return lines


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if np.std(ra) == 0 or np.std(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _geomean_score(rows, pair, judges, **match) -> float:
    values = []
    for judge in judges:
        sel = _at(rows, pair=pair, judge=judge, **match)
        if sel and sel[0]["start"] > 0:
            values.append(max(sel[0]["value"] / sel[0]["start"], 1e-12))
    return float(np.exp(np.mean(np.log(values)))) if len(values) == len(judges) else float("nan")


def _tradeoff(rows, judges, pairs, scale, folder: Path) -> list[str]:
    """Content loss against the judges' style score, one point per k, per initial image that ran every k."""
    hyper = [r for r in rows if r["source"] == "hyper"]
    ks = sorted({r["k"] for r in hyper})
    inits = [i for i in scale.inits if all(_at(hyper, init=i, k=k) for k in ks)]
    if len(ks) < 2 or not inits:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(inits), figsize=(4.8 * len(inits), 4.0), squeeze=False)
    colours = plt.get_cmap("tab10")(np.arange(len(pairs)))
    table = []
    for ax, init in zip(axes[0], inits):
        for colour, pair in zip(colours, pairs):
            xs = [(_at(hyper, pair=pair, init=init, k=k, judge="content") or [{"value": np.nan}])[0]["value"] for k in ks]
            ys = [_geomean_score(hyper, pair, judges, init=init, k=k) for k in ks]
            ax.plot(xs, ys, "-o", color=colour, ms=3, lw=1, label=pair)
            for x, y, k in zip(xs, ys, ks):
                ax.annotate(f"{k:g}", (x, y), fontsize=6, alpha=0.7)
        log_axes(ax, f"{init} start", "content loss")
    axes[0][0].set_ylabel("style score: geometric mean of the judges")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    save_figure(fig, folder / "tradeoff.png", dpi=110)
    plt.close(fig)
    for init in inits:
        for k in ks:
            table.append([init, f"{k:g}", spread([_at(hyper, pair=p, init=init, k=k, judge="content")[0]["value"]
                                                  for p in pairs if _at(hyper, pair=p, init=init, k=k, judge="content")]),
                          spread([_geomean_score(hyper, p, judges, init=init, k=k) for p in pairs])]
                         + [spread([score(hyper, j).get((p, init, k, None, None)) for p in pairs]) for j in judges])
    mono = {init: sum(all(a >= b for a, b in zip(ys, ys[1:])) for p in pairs
                      if not np.isnan(ys := [_geomean_score(hyper, p, judges, init=init, k=k) for k in ks]).any())
            for init in inits}
    return ["### The content–style trade-off per k", "",
            "Each point is one result: its content loss against the judges' style score (geometric mean over the "
            f"{len(judges)} judges), one point per k; a line per pair.", "", "![trade-off](judges/tradeoff.png)", "",
            "- The judges' style score falls as k grows (every step, k = " + " → ".join(f"{k:g}" for k in ks) + ") on "
            + "; ".join(f"{mono[i]} of {len(pairs)} pairs from the {i} start" for i in inits) + ".", "",
            markdown_table(["start", "k", "content loss", "judges' style score (geometric mean)"] + judges, table), ""]


def reduction_worst(rows: list[dict], judges: list[str]) -> dict[tuple, float]:
    """(criterion, fraction, pair) → the largest ratio, over the judges and the content loss, of a reduced
    network's result to the full network's result on the same pair."""
    red = [r for r in rows if r["source"] == "reduction"]
    worst = {}
    for c in dict.fromkeys(r["criterion"] for r in red if r["fraction"] > 0):
        for f in sorted({r["fraction"] for r in red if r["fraction"] > 0}):
            for p in sorted({r["pair"] for r in red}):
                ratios = []
                for judge in judges + ["content"]:
                    full = _at(red, pair=p, fraction=0.0, judge=judge)
                    mine = _at(red, pair=p, criterion=c, fraction=f, judge=judge)
                    if full and mine and full[0]["value"] > 0:
                        ratios.append(mine[0]["value"] / full[0]["value"])
                if len(ratios) == len(judges) + 1:
                    worst[(c, f, p)] = max(ratios)
    return worst


def most_removed(rows: list[dict], judges: list[str]) -> dict[str, float | None]:
    """Per criterion, the largest fraction such that it and every smaller one keep every judge within
    `WITHIN` of the full network's result on every pair the reduction has reached (None: not even the
    smallest)."""
    red = [r for r in rows if r["source"] == "reduction"]
    pairs = sorted({r["pair"] for r in red})
    worst = reduction_worst(rows, judges)
    fractions = {r["fraction"] for r in red if r["fraction"] > 0}
    return {c: largest_passing(fractions, lambda f: all(worst.get((c, f, p), np.inf) <= 1 + WITHIN for p in pairs))
            for c in dict.fromkeys(r["criterion"] for r in red if r["fraction"] > 0)}


def _reduction(rows, judges, pairs) -> list[str]:
    red = [r for r in rows if r["source"] == "reduction"]
    if not red:
        return []
    pairs = sorted({r["pair"] for r in red})   # the pairs the reduction has reached
    fractions = sorted({r["fraction"] for r in red if r["fraction"] > 0})
    worst = reduction_worst(rows, judges)
    table, lines = [], []
    for c, most in most_removed(rows, judges).items():
        lines.append(f"- **{c}**: " + (f"up to {most:.0%} of the channels removed with every judge within "
                                       f"{WITHIN:.0%} of the full network's result on all {len(pairs)} pairs"
                                       if most else f"no fraction tried keeps every judge within {WITHIN:.0%} "
                                       f"of the full network's result on all {len(pairs)} pairs") + ".")
        for f in fractions:
            table.append([c, f"{f:.0%}", spread([worst.get((c, f, p)) for p in pairs]),
                          f"{sum(worst.get((c, f, p), np.inf) <= 1 + WITHIN for p in pairs)} of {len(pairs)}"])
    return ["### The smallest network that keeps the result", "",
            "Each reduced network's result judged by the same judges, over the full network's result on the same "
            "pair; the worst judge counts (a network is within 10 % when no judge, content loss included, rates its "
            "result more than 10 % worse).", ""] + lines + ["", markdown_table(
                ["channels removed by", "fraction removed", "worst judge ÷ full network", "pairs within 10 %"],
                table), ""]
