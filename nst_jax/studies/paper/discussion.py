"""Sections 4 (results and discussion) and 5 (conclusion) of the write-up: a few sentences per study,
each computed from the same records as its section, saying on how many pairs it holds, and where
the earlier laptop-scale (128 px, not converged) results differ, what changed."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from nst_jax.studies.paper import judges
from nst_jax.studies.paper.gram import identity_holds, largest_difference
from nst_jax.studies.paper.judges import spearman
from nst_jax.studies.paper.reduction import most_removed
from nst_jax.studies.paper.tables import spread

LAPTOP = "laptop-128px"   # the 128 px CSVs kept beside the write-up for comparison


def _laptop(out: Path, name: str) -> list[dict]:
    path = out / LAPTOP / name
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def best_inits(rows: list[dict], k: float) -> dict[str, str]:
    """Per pair, the initial image with the lowest final loss at k."""
    best = {}
    for r in rows:
        if float(r["k"]) == k:
            p = r["pair"]
            if p not in best or float(r["final_loss"]) < best[p][1]:
                best[p] = (r["init"], float(r["final_loss"]))
    return {p: v[0] for p, v in best.items()}


def strictest(cross: list[dict]) -> list[str]:
    """Statistics ordered by the geometric mean of the other statistics' median ratios after optimising them."""
    stats = list(dict.fromkeys(r["optimised"] for r in cross))
    med = {(a, b): float(np.median([float(r["ratio"]) for r in cross if r["optimised"] == a and r["measured"] == b]))
           for a in stats for b in stats}
    score = {a: float(np.mean([math.log(max(med[(a, b)], 1e-12)) for b in stats if b != a])) for a in stats}
    return sorted(stats, key=score.get)


def write(out: Path, scale, found: dict) -> str:
    """`found`: what the sections computed — 'hyper' (rows of `hyper.analyse_hyper`), 'cross' (3.5's
    rows), 'mmd', 'reduction' (rows with the ratios to the unpruned), 'judges' (3.7's rows),
    'stopped' ({study: (stopped by the rule, runs)})."""
    lines, conclusions = ["## 4 Results and discussion", ""], []
    for part in (_gram, _statistics, _hyper, _judges, _reduction, _convergence):
        said, concluded = part(out, scale, found)
        lines += said
        conclusions += concluded
    lines += ["", "## 5 Conclusion", ""]
    lines += [f"{i}. {c}" for i, c in enumerate(conclusions, 1)] or ["Not enough of the study has run yet."]
    return "\n".join(lines) + "\n"


def _gram(out, scale, found):
    mmd = found.get("mmd") or []
    if not mmd:
        return [], []
    worst, holds = largest_difference(mmd), identity_holds(mmd)
    n = len({r['pair'] for r in mmd})
    if not holds:
        return [f"- **3.4** The Gram loss and the squared MMD of the kernel (xᵀy)² divided by C⁴ differ by up to "
                f"{worst:.1e} (relative) over {n} pairs: more than float32 rounding."], []
    return ([f"- **3.4** The Gram loss equals the squared MMD of the kernel (xᵀy)² divided by C⁴ on every layer of "
             f"{n} pairs (largest relative difference {worst:.1e}): matching Gram "
             "matrices is matching the feature distributions in that kernel's space."],
            ["Style transfer with Gram matrices is distribution matching (an MMD with a quadratic kernel), checked "
             "to float32 rounding."])


def _statistics(out, scale, found):
    cross = found.get("cross") or []
    if not cross:
        return [], []
    order = strictest(cross)
    line = (f"- **3.5** Over {len({r['pair'] for r in cross})} pairs, optimising {order[0]} brings the other "
            f"statistics closest to the style (strictest), {order[-1]} least; full order: {', '.join(order)}.")
    old = _laptop(out, "cross.csv")
    if old:
        before = strictest(old)
        line += f" At 128 px (3 pairs, not converged) the order was {', '.join(before)}"
        line += (" — the same." if before == order else
                 f"; the strictest {'stays' if before[0] == order[0] else f'changes from {before[0]} to {order[0]}'}.")
    return [line], [f"Of the {len(order)} ways to remove spatial information, {order[0]} implies the others most "
                    f"strongly at {scale.size} px."]


def _k(scale) -> float:
    return scale.init_k if scale.init_k is not None else scale.ks[len(scale.ks) // 2]


def _hyper(out, scale, found):
    hyper = found.get("hyper") or []
    if not hyper:
        return [], []
    k = _k(scale)
    best = best_inits(hyper, k)
    if not best:
        return [], []
    counts = {i: sum(v == i for v in best.values()) for i in dict.fromkeys(best.values())}
    top = max(counts, key=counts.get)
    others = ", ".join(f"{i} on {c}" for i, c in counts.items() if i != top)
    above = [r["above_best"] for r in hyper if float(r["k"]) == k]
    line = (f"- **3.6** At k = {k:g}, the lowest final objective came from the {top} start on {counts[top]} of "
            f"{len(best)} pairs" + (f" (others: {others})" if others else "") + ". Final losses of all starts: "
            f"{spread([100 * a for a in above])} % above the best of their pair.")
    old = _laptop(out, "hyper.csv")
    if old:
        before = best_inits(old, k)
        line += (f" At 128 px after 300 iterations the best start at k = {k:g} was "
                 f"{', '.join(sorted(set(before.values())))}; on the {sum(p in before for p in best)} pairs both "
                 f"scales ran, the same start won on {sum(before.get(p) == best.get(p) for p in best)}.")
    lines = [line] + _hyper_changes(out, hyper, found.get("draws") or [], old)
    stopped = sum(bool(r.get("converged")) for r in hyper)
    when = (f"Run to convergence ({stopped} of {len(hyper)} runs ended by the stopping rule)" if stopped
            else "After a fixed number of iterations (not converged)")
    return lines, [f"{when}, the initial image matters {'little' if max(above) <= 0.05 else 'measurably'} for the "
                   f"final objective (all starts within {100 * max(above):.1f} % of the best at k = {k:g})."]


def monotonic_pairs(rows: list[dict], init: str, ks: set[float]) -> tuple[int, int]:
    """(pairs on which, from the `init` start, each larger k of `ks` gives no higher style loss and no lower
    content loss, pairs with that start at two of them or more)."""
    mono, pairs = 0, 0
    for pair in sorted({r["pair"] for r in rows}):
        sel = sorted((float(r["k"]), float(r["content"]), float(r["style"])) for r in rows
                     if r["pair"] == pair and r["init"] == init and float(r["k"]) in ks)
        if len(sel) > 1:
            pairs += 1
            mono += all(a[1] <= b[1] and a[2] >= b[2] for a, b in zip(sel, sel[1:]))
    return mono, pairs


def _hyper_changes(out: Path, hyper: list[dict], draws: list[dict], old: list[dict]) -> list[str]:
    """The trade-off's monotonicity in k and the noise draws' differences, here and at 128 px, each over
    the k both scales ran."""
    lines = []
    ks = {float(r["k"]) for r in hyper if r["init"] == "content"}
    if old:
        ks &= {float(r["k"]) for r in old if r["init"] == "content"}
    mono, pairs = monotonic_pairs(hyper, "content", ks)
    if pairs:
        line = (f"  From the content start, k trades content for style monotonically over k ∈ "
                f"{{{', '.join(f'{k:g}' for k in sorted(ks))}}} on {mono} of {pairs} pairs")
        if old:
            m, n = monotonic_pairs(old, "content", ks)
            line += f" (at 128 px: {m} of {n})"
        lines.append(line + ".")
    for k in sorted({float(r["k"]) for r in draws}):
        here = [100 * abs(float(r["loss_difference"])) for r in draws if float(r["k"]) == k]
        line = (f"  At k = {k:g}, another noise draw ends at a final loss differing by {spread(here)} % "
                f"({len(here)} pairs)")
        before = [100 * abs(float(r["loss_difference"])) for r in _laptop(out, "noise_seeds.csv") if float(r["k"]) == k]
        if before:
            line += f"; at 128 px after 300 iterations, {spread(before)} % ({len(before)} pairs)"
        lines.append(line + ".")
    return lines


def _judges(out, scale, found):
    judged = found.get("judges") or []
    k, rhos = _k(scale), []
    for judge in [j for j in scale.statistics if j != "gram"]:   # the objective's own statistic is no judge of it
        for p in {r["pair"] for r in judged}:
            sel = [r for r in judged if r["source"] == "hyper" and r["k"] == k and r["pair"] == p
                   and r["judge"] == judge]
            if len(sel) > 2:
                rhos.append(spearman(np.array([r["loss"] for r in sel]), np.array([r["value"] for r in sel])))
    rhos = [r for r in rhos if not math.isnan(r)]
    if not rhos:
        return [], []
    fair = np.median(rhos) >= 0.5
    return ([f"- **3.7** Ranking the initial images' results by the objective and by each of the "
             f"{len(scale.statistics) - 1} judges other than the objective's own statistic (gram) agrees with a "
             f"rank correlation of {spread(rhos)} (over judges and pairs): " + ("the objective is a fair judge of its own results." if fair else
                           "the objective alone does not rank results as the other statistics do.")],
            [f"The optimised objective {'agrees' if fair else 'does not agree'} with independent statistics on "
             f"which result is best (median rank correlation {np.median(rhos):.2f})."])


def _reduction(out, scale, found):
    reduced = found.get("reduction") or []
    if not reduced:
        return [], []
    judged = found.get("judges") or []
    by_judges = judges.most_removed(judged, list(scale.statistics)) if judged else {}
    by_loss = most_removed(reduced)
    lines = []
    if by_judges:
        lines.append("- **Network reduction** (every judge of 3.7 within 10 % of the full network's result on every "
                     "pair): " + _removed(by_judges) + ".")
    lines.append(("  By" if by_judges else "- **Network reduction**, by") + " the full network's loss alone (the "
                 "128 px write-up's test): " + _removed(by_loss) + ".")
    old = _laptop(out, "reduction.csv")
    if old:
        before = most_removed(old)
        lines.append("  At 128 px, by that loss: "
                     + "; ".join(f"{c}: {format(f, '.0%') if f else 'none'}" for c, f in before.items())
                     + (" — unchanged." if before == by_loss else " — changed."))
    most = by_judges or by_loss
    if not any(most.values()):
        return lines, []
    c, f = max(((c, f) for c, f in most.items() if f), key=lambda cf: cf[1])
    test = "every judge of the result" if by_judges else "the result's loss (under the full network)"
    return lines, [f"Ranking channels by {c}, {f:.0%} of VGG19's channels can go with {test} within 10 % of the "
                   "full network's."]


def _removed(most: dict[str, float | None]) -> str:
    return "; ".join(f"{c}: " + (f"up to {f:.0%} of the channels removed" if f else "none of the fractions tried")
                     for c, f in most.items())


def _convergence(out, scale, found):
    stopped = found.get("stopped") or {}
    if not stopped or not scale.tol:
        return [], []
    done, total = sum(a for a, _ in stopped.values()), sum(b for _, b in stopped.values())
    return [f"- **Convergence**: {done} of {total} runs were ended by the stopping rule rather than the cap."], []
