"""How a run ends: its sidecar record, its result files and checkpoint, and the `RunResult` it returns.

The record is what reproduces a run: the Config as planned (`RunPlan.record`), the settings hash,
the final losses, the time, the weights, the device and the command. `finisher` makes each run's
`finish(state, iteration, seconds, interrupted, converged)` for the driver loop; `results` turns the
loop's outcome into one `RunResult` per run; `nothing_to_do` is a run that had already finished.
"""

from __future__ import annotations

import math
import shlex
import sys
from typing import Callable, NamedTuple

import jax
import numpy as np

from nst_jax.scale import hosts
from nst_jax.files import image
from nst_jax.transfer.config import Config
from nst_jax.transfer.problem import Problem
from nst_jax.transfer.progress import weighted_parts
from nst_jax.files.runfiles import RunFiles
from nst_jax.transfer.planning import RunPlan


class RunResult(NamedTuple):
    image: np.ndarray
    iteration: int
    loss: float
    parts: dict
    seconds: float
    compiles: int
    evaluations: int
    paths: dict
    error: str | None = None   # why the run stopped early (batched runs report instead of raising)
    note: str | None = None    # e.g. 'already at 300 iterations' when there was nothing to do
    converged: bool = False    # the stopping rule (--tol) ended it
    image_iteration: int | None = None   # where its image is from, when not its last iteration (the lowest loss)


def record(cfg: Config, plan: RunPlan, settings_hash: str, state, iteration: int, problem: Problem,
           seconds: float, extra: dict) -> dict:
    """The sidecar's record of a run: enough to reproduce it. `parts` are the objective's terms as computed,
    `weighted_parts` the same times their weights: these add up to `loss`, as the console shows them."""
    parts = {k: float(v) for k, v in state.parts.items()}
    return {"config": plan.record(cfg), "settings_hash": settings_hash, "iteration": iteration,
            "loss": float(state.value), "parts": parts, "weighted_parts": weighted_parts(parts, cfg.loss_weights),
            "seconds": round(seconds, 3), "evaluations": int(state.evaluations),
            "weights": {k: str(v) for k, v in problem.weights_info.items()},
            "image_size": list(problem.content.shape[:2]), "device": str(jax.devices()[0]),
            "command": shlex.join(["python", *sys.orig_argv[1:]]), **device_peak(), **extra}


def device_peak() -> dict:
    """An accelerator's peak bytes in use so far (the most on any device), for the plan's comparison."""
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in jax.local_devices() if d.platform != "cpu"]
    peaks = [p for p in peaks if p is not None]
    return {"peak_device_bytes": max(peaks)} if peaks else {}


def finisher(cfg: Config, plan: RunPlan, problem: Problem, files: RunFiles, settings_hash: str, offset: int,
             runs: int) -> Callable[..., None]:
    """The `loop.Member.finish` of one run of `runs` batched ones: writes its result and sidecar, then
    keeps its checkpoint (--keep-checkpoint) or removes it; an interrupted run keeps its checkpoint."""
    mem = plan.figure

    def finish(st, iteration, seconds, interrupted, converged=False, best=None):
        extra = {"batched_with": runs} if runs > 1 else {}
        if converged:
            extra["converged"] = cfg.stop_rule.record()
        shown, x = st, hosts.to_host(st.x)[0]
        if converged and best is not None and best.iteration != iteration:  # the lowest-loss image, not the last
            shown, x = st._replace(value=best.value, parts=best.parts), best.x
            extra["image_iteration"] = best.iteration
        extra["memory_plan"] = {"way": mem.way, "devices": plan.devices, "bytes": round(mem.needed),
                                "available": round(mem.available) if mem.available < float("inf") else None}
        if plan.forms.by_layer:
            extra["conv_forms"] = {"forms": [list(r) for r in plan.forms.by_layer], "source": plan.forms.source,
                                   "native_gram": plan.forms.native_gram}
        if interrupted:
            extra["interrupted"] = True
        files.write_result(problem.to_rgb(x), record(cfg, plan, settings_hash, shown, iteration, problem, seconds,
                                                     extra))
        if interrupted:
            return
        if cfg.keep_checkpoint:
            files.save_checkpoint(st, config_hash=settings_hash, solver=cfg.optimizer, iteration=iteration,
                                  offset=offset, target=cfg.iterations, seconds=seconds, light=cfg.light_checkpoint,
                                  forms=plan.forms, gather=hosts.to_host,
                                  best=None if best is None else (best.iteration, best.x))
        else:
            files.remove_checkpoint()
    return finish


def results(outcome, problems: list[Problem], files: list[RunFiles], members, batched: bool,
            compiles: int) -> list[RunResult]:
    """One RunResult per run of a driven batch, finishing the runs the loop did not finish itself."""
    out = []
    for i, (p, f, m) in enumerate(zip(problems, files, members)):
        best = None
        if i in outcome.stopped:  # finished by the stopping rule inside the loop, with its lowest-loss image
            iteration, seconds, st, best = outcome.stopped[i]
        else:
            iteration, seconds = outcome.iteration, outcome.seconds
            st = jax.tree.map(lambda a: a[i], outcome.state) if batched else outcome.state
        error = outcome.failures.get(i)
        if error is None and i not in outcome.stopped:
            m.finish(st, iteration, seconds, False, best=None if outcome.best is None else outcome.best[i])
        x, value, parts = (hosts.to_host(st.x)[0], st.value, st.parts) if best is None else \
            (best.x, best.value, best.parts)
        out.append(RunResult(p.to_rgb(x), iteration, float(value), {k: float(v) for k, v in parts.items()},
                             seconds, compiles, int(st.evaluations), f.paths(), error, None, i in outcome.stopped,
                             None if best is None or best.iteration == iteration else best.iteration))
    return out


def nothing_to_do(files: RunFiles, iteration: int) -> RunResult:
    """The result a finished run left on disk (process 0 reads it; the others return a placeholder)."""
    note = f"already at {iteration} iterations"
    if not hosts.is_writer():
        return RunResult(np.zeros((1, 1, 3), np.float32), iteration, math.nan, {}, 0.0, 0, 0, {}, None, note)
    rec = files.read_sidecar()
    converged = rec.get("converged")
    if isinstance(converged, dict):
        note = (f"stopped at {rec['iteration']} iterations by the stopping rule (--tol {converged['tol']:g}, "
                f"--tol-window {converged['window']})")
    return RunResult(image.load_image(files.image), int(rec["iteration"]), float(rec["loss"]),
                     dict(rec["parts"]), float(rec["seconds"]), 0, int(rec.get("evaluations", 0)),
                     files.paths(), None, note, isinstance(converged, dict), rec.get("image_iteration"))
