"""3.5 of the paper, statistics that imply each other: the same transfer under each style statistic,
each result measured with every statistic, and the section with its figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nst_jax.studies.figures import pyplot, save_figure
from nst_jax.studies.paper.common import Experiment, Scale, base, pair_name
from nst_jax.studies.paper.tables import iterations, markdown_table, not_run, spread, write_csv

def experiment(scale: Scale, runs: Path) -> Experiment:
    """3.5: the same transfer under each style statistic (each in its calibrated units)."""
    return Experiment("statistics", [
        (pair_name(c, s), runs / "statistics" / pair_name(c, s), {"style_statistic": list(scale.statistics)},
         base(scale, c, s), scale.statistics_iterations) for c, s in scale.pairs])


def measure(scale: Scale, experiment: Experiment) -> list[dict]:
    """Each result (optimised with statistic A) measured with every statistic B: B's style loss of
    the result over B's style loss of the initial image (the content), per pair (`judges.measure_images`;
    random statistics are measured with one fixed key)."""
    from nst_jax.files.image import load_image
    from nst_jax.model import weights as vgg_weights
    from nst_jax.studies.paper.judges import measure_images

    w = vgg_weights.load()
    rows = []
    for label, named in experiment.runs().items():
        results = {cfg.style_statistic: load_image(cfg.output) for _, cfg in named if Path(cfg.output).exists()}
        judged = measure_images(named[0][1], results, scale.statistics, scale.seed, w)
        for measured in scale.statistics:
            start = judged[measured]["start"]
            for optimised in results:
                value = judged[measured][optimised]
                rows.append({"pair": label, "optimised": optimised, "measured": measured, "loss": value,
                             "start": start, "ratio": value / start if start > 0 else float("nan")})
    return rows


def section(out: Path, scale, experiment, rows: list[dict] | None, command: str) -> str:
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
    from nst_jax.studies.report import contact_sheet
    contact_sheet(sheet_rows, folder / "results.png", thumb=scale.size)
    table = markdown_table(["optimised ↓ / measured →"] + stats,
                           [[a] + [f"**{spread(ratio[(a, b)])}**" if a == b else spread(ratio[(a, b)]) for b in stats]
                            for a in stats])
    its = scale.statistics_iterations
    text = [head.rstrip(), "", f"The same transfer (content start, k = 100 in each statistic's calibrated units, "
            f"{iterations(scale, its)} at {scale.size} px, default layers) optimised with each statistic A (rows), "
            f"then measured with every statistic B (columns): B's style loss of the result over B's style loss of "
            f"the content image it started from — 1 means A did nothing for B, 0 that A matched B exactly. Each "
            f"cell is the median [min – max] over {len(pairs)} pairs ({', '.join(pairs)}). The random "
            "statistics (mmd-gauss, sliced_wasserstein) are measured with one fixed key.", "",
            f"Made by `{command} --only statistics`.", "", "### Findings", ""]
    text += _statistics_findings(ratio, med, stats, len(pairs), _strictest_per_pair(rows, stats))
    text += ["", "### Cross-evaluation (ratio: median [range] over the pairs)", "", table, "",
             "![cross evaluation](statistics/cross.png)",
             "", "CSV: [statistics/cross.csv](statistics/cross.csv).", "", "### Results", "",
             "![results per statistic](statistics/results.png)", ""]
    return "\n".join(text)


def _strictest_per_pair(rows: list[dict], stats: list[str]) -> dict[str, str]:
    """Per pair, the statistic whose optimisation leaves the others lowest (geometric mean of their ratios)."""
    found = {}
    for pair in sorted({r["pair"] for r in rows}):
        at = {(r["optimised"], r["measured"]): r["ratio"] for r in rows
              if r["pair"] == pair and r["ratio"] is not None and np.isfinite(r["ratio"])}
        means = {a: float(np.mean([np.log(max(at[(a, b)], 1e-12)) for b in stats if b != a and (a, b) in at]))
                 for a in stats if any((a, b) in at for b in stats if b != a)}
        if means:
            found[pair] = min(means, key=means.get)
    return found


def _statistics_findings(ratio, med, stats, n_pairs, strictest_at: dict[str, str]) -> list[str]:
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
    lines.append("- Strictest (lowest geometric mean of the other statistics' median ratios): "
                 + ", ".join(f"{a} {v:.3g}" for a, v in order) + f". Pair by pair, {order[0][0]} is the strictest on "
                 f"{sum(v == order[0][0] for v in strictest_at.values())} of {len(strictest_at)} pairs.")
    if ("gram", "mean_std") in med:
        lines.append(f"- Is Gram matching also mean/std matching? Optimising gram leaves mean_std at "
                     f"{spread(ratio[('gram', 'mean_std')])} of its starting distance (over {n_pairs} pairs), "
                     f"mean_std's own optimisation {spread(ratio[('mean_std', 'mean_std')])}.")
    if "sliced_wasserstein" in stats:
        rank = [a for a, _ in order].index("sliced_wasserstein") + 1
        lines.append(f"- Is sliced Wasserstein the strictest? It ranks {rank} of {len(stats)} by the measure above, "
                     f"and is the strictest on {sum(v == 'sliced_wasserstein' for v in strictest_at.values())} of "
                     f"{len(strictest_at)} pairs.")
    return lines


def _cross_figure(med, stats, path: Path) -> None:
    plt = pyplot()
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
