"""A run in named steps: what was asked (a `Config`), what was planned (`planning.plan_run` → a
`RunPlan`), where each run starts (`start.find` → a `Start`), the driver loop (`loop.drive`), and
how it ends (`finish`). `run_many(cfgs)` runs one run, or several that share a compiled program as one
vmapped batch; `run(cfg)` is one of them; `run_multiscale` runs coarse to fine.

    inputs.load_inputs → problem.build_problem → steps.compiled_solver → Start.begin → loop.drive
    → finish.results

Every run's files go through `RunFiles` (paths) and `checkpoints` (the solver state on disk).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from nst_jax.transfer import finish, planning, start, steps
from nst_jax.model import weights as vgg_weights
from nst_jax.transfer.config import Config
from nst_jax.base.errors import NSTError
from nst_jax.transfer.finish import RunResult
from nst_jax.transfer.identity import input_files
from nst_jax.transfer.inputs import load_inputs
from nst_jax.transfer.loop import Hooks, Member, drive
from nst_jax.transfer.problem import build_problem
from nst_jax.files.runfiles import RunFiles, remove_empty
from nst_jax.transfer.planning import RunPlan
from nst_jax.transfer.start import Batch, Start, make_batch

# Config fields that may differ between the runs of one batch (one compiled, vmapped program)
BATCHABLE = frozenset({"init", "seed", "style_weight", "content_weight", "tv_weight", "output"})


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def batch_key(cfg: Config) -> tuple:
    """Runs with equal keys can share one batched program."""
    return tuple((k, str(v)) for k, v in sorted(cfg.to_dict().items()) if k not in BATCHABLE)


def run_many(cfgs: list[Config], progress: bool = False, restart: bool = False,
             loaded_weights: vgg_weights.Weights | None = None, save_at: Callable[[int], bool] | None = None,
             on_step: Callable | None = None, say: Callable[[str], None] | None = None,
             on_checkpoint: Callable[[int], None] | None = None, watch=None,
             overwrite: bool = False) -> list[RunResult]:
    """Optimise runs that differ only in their initial image and loss weights (`BATCHABLE`), as one
    vmapped batch when they start alike (afresh, or from checkpoints at one iteration), else one by
    one; see `loop.Hooks` for the callbacks (save_at: default every --save-every), `start` for where each
    starts; say(line) receives what the run decided; `watch` is a live view (`web.live.LiveState`). A single run whose loss
    becomes NaN raises NSTError; in a batch, the failed run's RunResult carries the error. A file at an
    output that nst_jax did not write is refused before anything runs, or with `overwrite` replaced by
    runs that start over (`RunFiles.check_output`)."""
    hooks, say = Hooks(save_at, on_step, on_checkpoint), say or _say
    if len({batch_key(c) for c in cfgs}) > 1 or len({c.iterations for c in cfgs}) > 1:
        raise ValueError("run_many: the runs of one batch may differ only in " + ", ".join(sorted(BATCHABLE)))
    files = [RunFiles(c.output) for c in cfgs]
    created = []
    replacing = [f.check_output(input_files(c), overwrite) for c, f in zip(cfgs, files)]
    restart = restart or any(replacing)
    for f in files:
        created += f.check_writable()
    try:
        with contextlib.ExitStack() as locks:  # one process per output; stale temporary files removed
            for f in files:
                locks.enter_context(f.lock())
            w = loaded_weights if loaded_weights is not None else vgg_weights.load(cfgs[0].weights)
            return [r for group in start.batches(cfgs, files, restart, say)
                    for r in _run_batch(*group, w, progress, hooks, say, watch)]
    except BaseException:
        remove_empty(created)  # a run that failed before writing leaves no new folder behind
        raise


def _run_batch(cfgs: list[Config], files: list[RunFiles], found: list[Start], plan: RunPlan, hashes: list[str],
               w: vgg_weights.Weights, progress: bool, hooks: Hooks, say: Callable[[str], None],
               watch=None) -> list[RunResult]:
    """Build, begin and drive one batch (one run or several vmapped), and finish its runs."""
    if found[0].kind == "done":
        return [finish.nothing_to_do(files[0], found[0].iteration)]
    c0, n, batched = cfgs[0], len(cfgs), len(cfgs) > 1
    planning.require_fit(c0, plan.figure, str(c0.output), n)
    planning.check_disk(c0, plan.figure, n)
    plan = planning.with_forms(c0, plan, start.recorded_forms(found[0], files[0]), say)
    inputs = [load_inputs(c) for c in cfgs]
    problems = [build_problem(c, w, i, plan) for c, i in zip(cfgs, inputs)]
    compiled = steps.compiled_solver(problems[0].spec, c0.optimizer, c0.lr, c0.history, batched,
                                     plan.history_dtype, plan.step_layout)
    traces_before = compiled.traces[0]
    batch = make_batch(cfgs, files, problems, hashes, plan, compiled, batched)
    begun = found[0].begin(batch)
    members = [Member(f, h, c.optimizer, c.iterations, p.to_rgb,
                      finish.finisher(c, plan, p, f, h, begun.offset, n), c.light_checkpoint, plan.forms)
               for f, h, c, p in zip(files, hashes, cfgs, problems)]
    first = begun.offset + int(np.reshape(np.asarray(begun.state.iteration), (-1,))[0])
    reporter = _reporter(c0, plan, problems[0], inputs[0], batch, first, watch, progress) \
        if (progress or watch is not None) and not batched else None
    on_step = [f for f in (reporter.on_step if reporter and progress else None, hooks.on_step,
                           watch.step if watch is not None else None) if f is not None]
    hooks = hooks._replace(
        save_at=hooks.save_at or (lambda it: bool(c0.save_every) and it % c0.save_every == 0),
        on_step=(lambda *a: [f(*a) for f in on_step]) if on_step else None,
        on_image=watch.image if watch is not None else None,
        image_every=max(c0.print_every, 1) if watch is not None else 0)
    try:
        outcome = drive(compiled.step, begun.state, batch.aux_at, members, c0.iterations, batched=batched,
                        checkpoints=c0.checkpoints, offset=begun.offset, elapsed=begun.elapsed,
                        stop_rule=c0.stop_rule, hooks=hooks)
    finally:
        if reporter is not None:
            reporter.close()
    return finish.results(outcome, problems, files, members, batched, compiled.traces[0] - traces_before)


def _reporter(cfg: Config, plan: RunPlan, problem, inputs, batch: Batch, first: int, watch=None,
              show: bool = True):
    """The progress lines of a single run that has iterations to do: its header (also to a live view),
    then one per step."""
    from nst_jax.transfer.progress import Reporter, header
    if cfg.iterations <= first:
        return None
    reporter = Reporter(Path(cfg.output).name, first, cfg.iterations, cfg.print_every,
                        cfg.loss_weights)
    lines = header(cfg, plan, problem, inputs.content_shape, first,
                   planning.checkpoint_bytes(batch.template, cfg.light_checkpoint))
    if watch is not None:
        watch.header(lines, first, cfg.iterations, cfg.loss_weights)
    for line in lines if show else ():
        reporter.say(line)
    return reporter


def run(cfg: Config, progress: bool = True, restart: bool = False,
        loaded_weights: vgg_weights.Weights | None = None, save_at=None, on_step=None, say=None,
        watch=None, overwrite: bool = False) -> RunResult:
    """Optimise the image for cfg, continuing what an earlier run left when it can (see `run_many`)."""
    result = run_many([cfg], progress, restart, loaded_weights, save_at, on_step, say, watch=watch,
                      overwrite=overwrite)[0]
    if result.error is not None:
        raise NSTError(result.error)
    return result


def scale_configs(cfg: Config) -> list[Config]:
    """The per-scale Configs of a coarse-to-fine run: each scale's result (`<stem>_s<size>.png`)
    initialises the next; the last writes cfg.output."""
    scales = list(cfg.scales or (cfg.size,))
    its = list(cfg.scale_iterations or [cfg.iterations] * len(scales))
    out = Path(cfg.output)
    cfgs, init = [], cfg.init
    for i, (size, n) in enumerate(zip(scales, its)):
        last = i == len(scales) - 1
        output = str(out) if last else str(RunFiles(out).scale_output(size))
        cfgs.append(dataclasses.replace(cfg, size=size, iterations=n, output=output, init=init,
                                        scales=None, scale_iterations=None))
        init = output
    return cfgs


def run_multiscale(cfg: Config, progress: bool = True, restart: bool = False,
                   loaded_weights: vgg_weights.Weights | None = None, watch=None,
                   overwrite: bool = False) -> list[RunResult]:
    """Coarse to fine (Gatys' high-resolution procedure): run each scale, the upsampled result of one
    initialising the next. Every scale is an ordinary resumable run with its own files."""
    cfgs = scale_configs(cfg)
    for c in cfgs:  # every scale is planned and its files checked before the first one runs
        planning.check_memory(c, f"scale {c.size} of {cfg.output}")
        RunFiles(c.output).check_ours(overwrite)
    weights = loaded_weights if loaded_weights is not None else vgg_weights.load(cfg.weights)
    return [run(c, progress=progress, restart=restart, loaded_weights=weights, watch=watch, overwrite=overwrite)
            for c in cfgs]
