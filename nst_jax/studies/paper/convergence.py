"""The stopping rule's evidence: runs from white noise (the slowest start) to the cap with no
stopping rule, on every pair, and where the study's rule would have stopped each of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nst_jax.files.runfiles import RunFiles
from nst_jax.studies.figures import pyplot, save_figure
from nst_jax.studies.paper.common import Experiment, Scale, base, finished, pair_name
from nst_jax.studies.paper.tables import markdown_table, spread, write_csv


def experiment(scale: Scale, runs: Path) -> Experiment:
    """With a stopping rule (`scale.tol`): noise and content starts, k as in 3.6, run to the cap."""
    if not scale.tol:
        return Experiment("convergence", [])
    k = scale.init_k if scale.init_k is not None else scale.ks[len(scale.ks) // 2]
    return Experiment("convergence", [
        (pair_name(c, s), runs / "convergence" / pair_name(c, s), {"init": ["noise", "content"]},
         base(scale, c, s, tol=0.0, style_weight=k), scale.hyper_iterations) for c, s in scale.hyper_pairs])


HEAD = "## Convergence: the stopping rule, its evidence, and how every study stopped"
OTHER_TOLS = (1e-4, 3e-5, 1e-5)


def stop_at(losses: list[float], tol: float, window: int) -> int | None:
    """The iteration at which the stopping rule (`StopRule`) would end a run with these losses."""
    from nst_jax.transfer.stopping import StopRule
    rule = StopRule(tol, window)
    recent = rule.tracker()
    for i, loss in enumerate(losses):
        recent.append(loss)
        if rule.met(recent):
            return i
    return None


def run_records(experiment: Experiment) -> list[dict]:
    """Per finished run of a sweep experiment: its label, iterations, and whether the rule stopped it."""
    out = []
    for label, named in experiment.runs().items():
        for name, cfg in named:
            side = finished(cfg)
            if side is not None:
                out.append({"sweep": label, "run": name, "iterations": side["iteration"], "cap": cfg.iterations,
                            "converged": isinstance(side.get("converged"), dict), "loss": side["loss"]})
    return out


def section(out: Path, scale: Scale, experiment: Experiment, studies: dict[str, list[dict]], command: str) -> str:
    """The evidence runs' curves with the rule's stopping points, and per study the share of runs the
    rule stopped (the rest ran to the cap)."""
    if not scale.tol:
        return ""
    folder = out / "convergence"
    curves = []
    for label, named in experiment.runs().items():
        for _, cfg in named:
            log = RunFiles(cfg.output).read_log() if finished(cfg) is not None else []
            if log:
                curves.append({"pair": label, "init": cfg.init, "losses": [r["loss"] for r in log]})
    text = [HEAD, "", f"Every run of this scale stops when its loss falls by less than {scale.tol:g} of itself per "
            f"iteration, averaged over the last {scale.tol_window} iterations (`--tol {scale.tol:g} --tol-window "
            f"{scale.tol_window}`), or at the cap of {scale.hyper_iterations} iterations. The image kept is the "
            "lowest-loss one.", ""]
    if curves:
        rows = []
        for c in curves:
            final = min(c["losses"])
            row = {"pair": c["pair"], "init": c["init"], "iterations": len(c["losses"]) - 1, "lowest_loss": final}
            for tol in OTHER_TOLS:
                at = stop_at(c["losses"], tol, scale.tol_window)
                row[f"stop_{tol:g}"] = at
                row[f"above_lowest_{tol:g}"] = None if at is None else c["losses"][at] / final - 1
            rows.append(row)
        write_csv(folder / "convergence.csv", rows)
        _curves_figure(curves, scale, folder / "curves.png")
        table = []
        for init in dict.fromkeys(r["init"] for r in rows):
            sel = [r for r in rows if r["init"] == init]
            for tol in OTHER_TOLS:
                stops = [r[f"stop_{tol:g}"] for r in sel]
                table.append([init, f"{tol:g}" + (" (used)" if tol == scale.tol else ""),
                              spread([s for s in stops if s is not None]),
                              f"{sum(s is None for s in stops)} of {len(sel)}",
                              spread([100 * r[f"above_lowest_{tol:g}"] for r in sel
                                      if r[f"above_lowest_{tol:g}"] is not None])])
        text += [f"**The evidence.** On each of the {len({r['pair'] for r in rows})} pairs, the noise and content "
                 f"starts (k as in 3.6) ran the full {scale.hyper_iterations} iterations with no stopping rule. The "
                 "table says where a rule would have stopped them, and how far their loss there was above the lowest "
                 f"loss of the {scale.hyper_iterations} iterations (median [range] over the pairs).", "",
                 markdown_table(["start", "tol (window " + str(scale.tol_window) + ")", "stops at iteration",
                                 "never stops", f"loss there above the lowest of {scale.hyper_iterations} (%)"], table),
                 "", "![convergence curves](convergence/curves.png)", "",
                 "CSV: [convergence/convergence.csv](convergence/convergence.csv).", ""]
    share = []
    for name, records in studies.items():
        if records:
            share.append([name, f"{sum(r['converged'] for r in records)} of {len(records)}",
                          spread([r["iterations"] for r in records]),
                          f"{sum(not r['converged'] and r['iterations'] >= r['cap'] for r in records)}"])
    if share:
        text += ["**How every study stopped.** Runs ended by the stopping rule, and the rest at the cap:", "",
                 markdown_table(["study", "stopped by the rule", "iterations", "at the cap"], share), ""]
    text.append(f"Made by `{command} --only convergence`.")
    return "\n".join(text) + "\n"


def _curves_figure(curves: list[dict], scale: Scale, path: Path) -> None:
    """Top: loss over the lowest of the run, less 1; bottom: the rule's quantity (the fall per iteration
    over the window, relative to the loss) with the tolerance drawn; dots where the rule stops."""
    plt = pyplot()
    inits = list(dict.fromkeys(c["init"] for c in curves))
    fig, axes = plt.subplots(2, len(inits), figsize=(5.0 * len(inits), 6.6), squeeze=False, sharex=True)
    colours = plt.get_cmap("tab10")(np.arange(10))
    w = scale.tol_window
    for column, init in enumerate(inits):
        top, bottom = axes[0][column], axes[1][column]
        for i, c in enumerate(x for x in curves if x["init"] == init):
            losses = np.array(c["losses"])
            above = losses / losses.min() - 1
            its = np.arange(len(losses))
            top.plot(its[1:], np.maximum(above[1:], 1e-6), color=colours[i % 10], lw=1, label=c["pair"])
            fall = (losses[:-w] - losses[w:]) / (w * losses[w:])
            bottom.plot(its[w:], np.maximum(fall, 1e-8), color=colours[i % 10], lw=1)
            at = stop_at(c["losses"], scale.tol, w)
            if at is not None:
                top.scatter([at], [max(above[at], 1e-6)], color=colours[i % 10], s=18, zorder=3)
                bottom.scatter([at], [max(fall[at - w], 1e-8)], color=colours[i % 10], s=18, zorder=3)
        bottom.axhline(scale.tol, color="black", lw=0.8, ls="--")
        top.set_title(f"{init} start; dots: where --tol {scale.tol:g} stops", fontsize=9)
        bottom.set_xlabel("iteration")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(f"loss / lowest of the {scale.hyper_iterations} − 1")
    axes[1][0].set_ylabel(f"fall per iteration over {w}, ÷ loss (dashed: tol)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
