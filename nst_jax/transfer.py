"""A run: prepare images and targets, compile one step, and hand it to the driver loop.

`load_inputs(cfg)` reads and resizes the images (and masks, and an initial image file);
`build_problem(cfg, weights, inputs)` is the pure core — colour handling, the objective's static spec,
its targets and the initial image — which the bench and the calibration call with their own arrays;
`prepare(cfg)` is both. `run_many(cfgs)` optimises one run, or several that share a compiled program
as one vmapped batch, through `loop.drive`, resuming from checkpoints, and writes each run's files
through `RunFiles`; `run(cfg)` is one of them. Steps are jitted once per (spec, solver, batch) and
cached, with their state donated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import compiler, hardware, hosts, image, layers, losses, memory, sharding, solvers, statistics, vgg
from nst_jax import weights as vgg_weights
from nst_jax.config import INITS, Config, input_files
from nst_jax.errors import NSTError
from nst_jax.loop import Member, drive, log_record
from nst_jax.preprocessing import mean_rgb
from nst_jax.planning import check_disk, check_memory, checkpoint_bytes, plan_memory, require_fit
from nst_jax.progress import header
from nst_jax.runfiles import RunFiles, remove_empty


class Inputs(NamedTuple):
    """What a run reads from disk, resized: content (H, W, 3), styles, masks, an initial image file."""

    content: np.ndarray
    styles: list[np.ndarray]
    content_masks: list[np.ndarray] | None = None   # (H, W) in [0, 1], one per style
    style_masks: list[np.ndarray] | None = None     # (h, w) at each style's size
    init_image: np.ndarray | None = None            # --init FILE, at the content's size
    content_shape: tuple[int, int] = (0, 0)          # the content image's size before resizing


class Problem(NamedTuple):
    """Everything a solver needs, computed once: images (H, W, C), x0, the objective's parts."""

    content: np.ndarray
    styles: list[np.ndarray]
    x0: np.ndarray
    spec: losses.ObjectiveSpec
    params: Any
    targets: losses.Targets
    loss_weights: losses.LossWeights
    weights_info: dict
    chroma: np.ndarray | None = None  # the content's I, Q (H, W, 2) when optimising luminance only

    def to_rgb(self, x: np.ndarray) -> np.ndarray:
        """The optimised variable (H, W, 3 or 1) as an RGB image (recombined with the content's chroma)."""
        x = np.asarray(x, np.float32)
        if self.chroma is None:
            return x
        return image.yiq_to_rgb(np.concatenate([x[..., :1], self.chroma], axis=-1))

    def aux(self, key) -> losses.ObjectiveAux:
        return losses.ObjectiveAux(self.params, self.targets, self.loss_weights, key)


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


# ------------------------------------------------------------------------------------------ inputs

def _resize_any(img: np.ndarray, size) -> np.ndarray:
    """Resize (H, W, C) for C = 1 or 3 (luminance images have one channel)."""
    if img.shape[-1] == 3:
        return image.resize(img, size)
    return image.resize(np.repeat(img, 3, axis=-1), size)[..., :1]


def _load_mask(path: str, image_path: str, size: tuple[int, int]) -> np.ndarray:
    """A mask file as grey values in [0, 1], checked against its image's size, resized to `size`."""
    mask = image.load_image(path)
    want = image.load_image(image_path).shape[:2]
    if mask.shape[:2] != want:
        raise NSTError(f"mask {path}: {mask.shape[1]}×{mask.shape[0]} px, but its image {image_path} is "
                       f"{want[1]}×{want[0]} px; masks must have their image's size")
    return image.resize(mask, size).mean(axis=-1)


def load_inputs(cfg: Config) -> Inputs:
    """Content resized to `size` on its longer side; styles to `style_scale` × that size; masks and
    an --init image file at their images' sizes."""
    content = image.load_image(cfg.content)
    original = content.shape[:2]
    h, w = image.fit_size(original, cfg.size)
    content = image.resize(content, (h, w))
    styles = []
    for path in cfg.styles:
        style = image.load_image(path)
        longest = max(1, round(max(h, w) * cfg.style_scale))
        styles.append(image.resize(style, image.fit_size(style.shape[:2], longest)))
    check_sizes(cfg, content, styles)
    cm = sm = None
    if cfg.content_masks is not None:
        cm = [_load_mask(p, cfg.content, (h, w)) for p in cfg.content_masks]
        if cfg.style_masks is not None:
            sm = [_load_mask(p, sp, s.shape[:2]) for p, sp, s in zip(cfg.style_masks, cfg.styles, styles)]
    init = None if cfg.init in INITS else image.resize(image.load_image(cfg.init), (h, w))
    return Inputs(content, styles, cm, sm, init, original)


def check_sizes(cfg: Config, content: np.ndarray, styles: list[np.ndarray]) -> None:
    """Every image must reach the deepest layer it is used at with at least 1×1 features."""
    checks = [("content image " + cfg.content, content, cfg.content_layers + cfg.style_layers)]
    checks += [("style image " + p, s, cfg.style_layers) for p, s in zip(cfg.styles, styles)]
    for what, img, names in checks:
        need = vgg.min_input_side(names)
        if min(img.shape[:2]) < need:
            deepest = max(names, key=vgg.depth_index)
            raise NSTError(f"{what}: {img.shape[1]}×{img.shape[0]} px after resizing is too small for "
                           f"layer {deepest} (needs at least {need} px per side); raise --size "
                           f"or --style-scale, or use shallower layers")


def initial_image(cfg: Config, content: np.ndarray, styles: list[np.ndarray], prep,
                  init_image: np.ndarray | None = None) -> np.ndarray:
    """The starting image (H, W, C) for cfg.init, C as the content's (3, or 1 for luminance)."""
    shape = content.shape
    if cfg.init == "noise":
        return np.asarray(jax.random.uniform(jax.random.PRNGKey(cfg.seed), shape, jnp.float32))
    if cfg.init == "white":
        return np.ones(shape, np.float32)
    if cfg.init == "black":
        return np.zeros(shape, np.float32)
    if cfg.init == "mean":
        mean = mean_rgb(prep)
        mean = mean if shape[-1] == 3 else image.rgb_to_yiq(mean)[..., :1]
        return np.broadcast_to(mean, shape).astype(np.float32)
    if cfg.init == "content":
        return content.copy()
    if cfg.init in ("style", "average"):
        style0 = _resize_any(styles[0], shape[:2])
        return style0 if cfg.init == "style" else 0.5 * (content + style0)
    return init_image if shape[-1] == 3 else image.rgb_to_yiq(init_image)[..., :1]


# ----------------------------------------------------------------------------------------- problem

def build_problem(cfg: Config, weights: vgg_weights.Weights, inputs: Inputs) -> Problem:
    """The pure core of a run: colour handling, the objective's static spec and its targets, the
    initial image and the loss weights, from images already in memory. cfg.memory and cfg.devices are
    taken as resolved (`plan_memory`): 'auto' and 0 build the plain one-device problem."""
    content, styles = inputs.content, list(inputs.styles)
    chroma = None
    if cfg.original_colors == "histogram":
        styles = [image.match_color_histogram(s, content) for s in styles]
    elif cfg.original_colors == "luminance":
        yiq = image.rgb_to_yiq(content)
        chroma = yiq[..., 1:]
        content = yiq[..., :1]
        styles = [image.match_luminance(image.rgb_to_yiq(s)[..., :1], content) for s in styles]
    spec, params = objective_spec(cfg, weights), run_params(cfg, weights)
    blend = None if cfg.style_blend_weights is None else tuple(cfg.style_blend_weights)
    as_masks = lambda ms: None if ms is None else [jnp.asarray(m) for m in ms]
    targets = _targets_fn(spec, blend)(params, jnp.asarray(content[None]), [jnp.asarray(s[None]) for s in styles],
                                       as_masks(inputs.content_masks), as_masks(inputs.style_masks))
    x0 = initial_image(cfg, content, styles, weights.preprocessing, inputs.init_image)
    if chroma is not None and x0.shape[-1] == 3:
        x0 = image.rgb_to_yiq(x0)[..., :1]
    loss_weights = losses.LossWeights(jnp.float32(cfg.content_weight), jnp.float32(cfg.style_weight),
                                      jnp.float32(cfg.tv_weight))
    return Problem(content, styles, x0, spec, params, targets, loss_weights, weights.info, chroma)


def objective_spec(cfg: Config, weights: vgg_weights.Weights) -> losses.ObjectiveSpec:
    return losses.ObjectiveSpec(cfg.content_layers, cfg.style_layers, tuple(cfg.layer_weights), cfg.pooling,
                                weights.preprocessing, cfg.style_statistic, memory.remat(cfg.memory),
                                hardware.resolve_precision(cfg.precision))


def run_params(cfg: Config, weights: vgg_weights.Weights):
    """The network's parameters a run uses, with their derived kernels (no Winograd kernels for an image
    split across devices: see `sharding`)."""
    return layers.prepare_params(vgg.params_upto(weights.params, cfg.content_layers + cfg.style_layers),
                                 winograd=False if cfg.devices > 1 else None,
                                 dtype=jnp.dtype(hardware.resolve_precision(cfg.precision)))


def xla_memory(cfg: Config, loaded_weights: vgg_weights.Weights | None = None) -> dict[str, int]:
    """XLA's own figure for one step of a run (cfg resolved by `plan_memory`; devices that are here),
    from the step compiled for abstract arrays — nothing of the image's size is allocated: the bytes
    per device of the temporaries (the activations kept for the gradient and the workspace), of the
    arguments (the state, the weights, the targets) and of the outputs not written in place."""
    w = loaded_weights if loaded_weights is not None else vgg_weights.load(cfg.weights)
    height, width = image.fit_size(image.image_size(cfg.content), cfg.size)
    channels = 1 if cfg.original_colors == "luminance" else 3
    spec, params = objective_spec(cfg, w), run_params(cfg, w)
    f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
    longest = max(1, round(max(height, width) * cfg.style_scale))
    styles = [f32(1, *image.fit_size(image.image_size(p), longest), channels) for p in cfg.styles]
    blend = None if cfg.style_blend_weights is None else tuple(cfg.style_blend_weights)
    targets = jax.eval_shape(lambda p, c, s: losses.compute_targets(p, spec, c, s, blend), params,
                             f32(1, height, width, channels), styles)
    aux = losses.ObjectiveAux(params, targets, losses.LossWeights(f32(), f32(), f32()),
                              jax.eval_shape(lambda: step_key(cfg, 0)))
    image_shape = (height, width, channels)
    compiled = compiled_solver(spec, cfg.optimizer, cfg.lr, cfg.history, False, history_dtype(cfg), cfg.devices,
                               image_shape)
    state = jax.eval_shape(compiled.init, f32(1, *image_shape), aux)
    if cfg.devices > 1:
        mesh = sharding.mesh(cfg.devices)
        lay = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=jax.sharding.NamedSharding(
            mesh, sharding.spec(a.shape, image_shape)))
        state, aux = jax.tree.map(lay, state), jax.tree.map(lay, aux)
    stats = compiled.step.lower(state, aux).compile().memory_analysis()
    return {"temporaries": int(stats.temp_size_in_bytes), "arguments": int(stats.argument_size_in_bytes),
            "outputs": int(stats.output_size_in_bytes - stats.alias_size_in_bytes)}


def prepare(cfg: Config, loaded_weights: vgg_weights.Weights | None = None) -> Problem:
    """Load weights (unless given) and the inputs, and build the problem."""
    w = loaded_weights if loaded_weights is not None else vgg_weights.load(cfg.weights)
    return build_problem(cfg, w, load_inputs(cfg))


@functools.lru_cache(maxsize=32)
def _targets_fn(spec: losses.ObjectiveSpec, blend: tuple | None):
    return compiler.jit(lambda p, c, s, cm, sm: losses.compute_targets(p, spec, c, s, blend, None, cm, sm))


class Compiled(NamedTuple):
    """A solver's jitted init and step (state donated) for one spec, and how often the step was traced."""

    solver: solvers.Solver
    init: Callable
    step: Callable
    traces: list


@functools.lru_cache(maxsize=32)
def compiled_solver(spec: losses.ObjectiveSpec, optimizer: str, lr: float | None, history: int,
                    batched: bool = False, history_dtype: str = "float32", devices: int = 1,
                    image_shape: tuple[int, int, int] | None = None) -> Compiled:
    """The jitted solver for an objective spec; `batched`: vmapped over runs (their x0, loss weights
    and keys; parameters and targets shared); `devices` > 1: the state split along the height of
    images of `image_shape` (see `sharding`). Cached, so runs that share the spec, the solver and
    the image shape (a sweep) compile once."""
    solver = solvers.make_solver(optimizer, losses.make_objective(spec), lr, history, history_dtype=history_dtype)
    init, step = solver.init, solver.step
    if batched:
        in_axes = (0, losses.ObjectiveAux(None, None, 0, 0))
        init, step = jax.vmap(init, in_axes=in_axes), jax.vmap(step, in_axes=in_axes)
    if devices > 1:
        mesh = sharding.mesh(devices)
        split = lambda f: lambda *a: sharding.constrain(f(*a), mesh, image_shape)
        init, step = split(init), split(step)
    traces = [0]

    def counted_step(state, aux):
        traces[0] += 1  # runs only while tracing
        return step(state, aux)

    bf16 = spec.precision == "bfloat16"
    return Compiled(solver, compiler.jit(init, xla_defaults=bf16),
                    compiler.jit(counted_step, xla_defaults=bf16, donate_argnums=0), traces)


def history_dtype(cfg: Config) -> str:
    return "bfloat16" if cfg.memory == "remat-bf16" else "float32"


def step_key(cfg: Config, iteration: int):
    """The PRNG key of the random statistics at an iteration: resampled every step for solvers that
    ask for it (Adam), fixed for a whole run otherwise (L-BFGS: its curvature pairs assume one
    objective). A function of the seed and the iteration (both in the checkpoint), so runs are
    reproducible and resumable."""
    base = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 0x5747)
    return jax.random.fold_in(base, iteration) if solvers.get(cfg.optimizer).fresh_key_per_step else base


# ---------------------------------------------------------------------------------------- the runs

def _record(cfg: Config, state, iteration: int, problem: Problem, seconds: float, extra: dict) -> dict:
    """The sidecar's record of a run: enough to reproduce it."""
    return {"config": cfg.to_dict(), "settings_hash": cfg.result_hash(), "iteration": iteration,
            "loss": float(state.value), "parts": {k: float(v) for k, v in state.parts.items()},
            "seconds": round(seconds, 3), "evaluations": int(state.evaluations),
            "weights": {k: str(v) for k, v in problem.weights_info.items()},
            "image_size": list(problem.content.shape[:2]), "device": str(jax.devices()[0]),
            "command": shlex.join(["python", *sys.orig_argv[1:]]), **_device_peak(), **extra}


def _device_peak() -> dict:
    """An accelerator's peak bytes in use so far (the most on any device), for the plan's comparison."""
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in jax.local_devices() if d.platform != "cpu"]
    peaks = [p for p in peaks if p is not None]
    return {"peak_device_bytes": max(peaks)} if peaks else {}


def _result_from_files(files: RunFiles, note: str) -> RunResult:
    """The result a finished run left on disk (nothing to do); `note` unless the stopping rule ended it."""
    record = files.read_sidecar()
    converged = record.get("converged")
    if isinstance(converged, dict):
        note = (f"stopped at {record['iteration']} iterations by the stopping rule (--tol {converged['tol']:g}, "
                f"--tol-window {converged['window']})")
    return RunResult(image.load_image(files.image), int(record["iteration"]), float(record["loss"]),
                     dict(record["parts"]), float(record["seconds"]), 0, int(record.get("evaluations", 0)),
                     files.paths(), None, note, isinstance(converged, dict))


# Config fields that may differ between the runs of one batch (one compiled, vmapped program)
BATCHABLE = frozenset({"init", "seed", "style_weight", "content_weight", "tv_weight", "output"})


def batch_key(cfg: Config) -> tuple:
    """Runs with equal keys can share one batched program."""
    return tuple((k, str(v)) for k, v in sorted(cfg.to_dict().items()) if k not in BATCHABLE)


def run_many(cfgs: list[Config], progress: bool = False, restart: bool = False,
             loaded_weights: vgg_weights.Weights | None = None, save_at: Callable[[int], bool] | None = None,
             on_step: Callable | None = None, say: Callable[[str], None] | None = None) -> list[RunResult]:
    """Optimise runs that differ only in their initial image and loss weights (`BATCHABLE`), as one
    vmapped batch when there are several; see the module doc and `resume` for where each starts.

    A batch runs together only if its runs start from the same point (afresh, or checkpoints at the
    same iteration); otherwise they go one by one. save_at(iteration) chooses intermediate images
    (default: every cfg.save_every); on_step(iteration, runs still going, loss, parts) reports
    progress; say(line) receives what the run decided (default: stderr). A single run whose loss
    becomes NaN raises NSTError; in a batch, the failed run's RunResult carries the error."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    if len({batch_key(c) for c in cfgs}) > 1 or len({c.iterations for c in cfgs}) > 1:
        raise ValueError("run_many: the runs of one batch may differ only in " + ", ".join(sorted(BATCHABLE)))
    files = [RunFiles(c.output) for c in cfgs]
    created = []
    for c, f in zip(cfgs, files):
        f.check_output(input_files(c))
        created += f.check_writable()
    try:
        with contextlib.ExitStack() as locks:  # one process per output; stale temporary files removed
            for f in files:
                locks.enter_context(f.lock())
            return _run_locked(cfgs, files, progress, restart, loaded_weights, save_at, on_step, say)
    except BaseException:
        remove_empty(created)  # a run that failed before writing leaves no new folder behind
        raise


def _run_locked(cfgs, files, progress, restart, loaded_weights, save_at, on_step, say) -> list[RunResult]:
    from nst_jax import resume
    from nst_jax.progress import Reporter

    n = len(cfgs)
    resolved, mem = plan_memory(cfgs[0], runs=n)  # before the settings hash: it knows the history's precision
    cfgs = [dataclasses.replace(c, memory=resolved.memory, devices=resolved.devices, precision=resolved.precision)
            for c in cfgs]
    c0 = cfgs[0]
    w = loaded_weights if loaded_weights is not None else vgg_weights.load(c0.weights)
    plans = [resume.plan(c, f, restart, say) for c, f in zip(cfgs, files)]
    if hosts.count() > 1:  # every process starts where process 0's files say (see `hosts`)
        kinds = ("fresh", "checkpoint", "light", "image", "done")
        agreed = hosts.agree(np.array([[kinds.index(p.kind), p.iteration] for p in plans], np.int64))
        plans = [resume.Plan(kinds[k], int(i)) for k, i in agreed]
    if n > 1 and (len(set(plans)) > 1 or plans[0].kind not in ("fresh", "checkpoint")):
        return [r for c in cfgs for r in run_many([c], progress, False, w, save_at, on_step, say)]
    if plans[0].kind == "done":
        note = f"already at {plans[0].iteration} iterations"
        if not hosts.is_writer():
            return [RunResult(np.zeros((1, 1, 3), np.float32), plans[0].iteration, math.nan, {}, 0.0, 0, 0, {}, None, note)]
        return [_result_from_files(files[0], note)]
    require_fit(c0, mem, str(c0.output), n)
    check_disk(c0, mem, n)
    inputs = [load_inputs(c) for c in cfgs]
    if plans[0].kind == "image":  # continue from the result image with a fresh solver state
        img = hosts.from_writer(lambda: image.resize(image.load_image(files[0].image), inputs[0].content.shape[:2]),
                                np.zeros(inputs[0].content.shape[:2] + (3,), np.float32))
        inputs = [inputs[0]._replace(init_image=img)]
        cfgs = [dataclasses.replace(c0, init=str(files[0].image))]
    problems = [build_problem(c, w, i) for c, i in zip(cfgs, inputs)]
    if plans[0].kind == "light":  # continue from the checkpoint's image with a fresh solver state
        shape = (1,) + problems[0].x0.shape
        def read_light():
            x, meta = files[0].load_light_checkpoint(shape, c0.result_hash())
            return x, np.float64(meta["seconds"])
        x, light_seconds = hosts.from_writer(read_light, (np.zeros(shape, np.float32), np.float64(0.0)))
        problems[0] = problems[0]._replace(x0=np.asarray(x)[0])
    cfgs = [c0] if plans[0].kind == "image" else cfgs
    batched = n > 1
    image_shape = tuple(problems[0].x0.shape)
    compiled = compiled_solver(problems[0].spec, c0.optimizer, c0.lr, c0.history, batched, history_dtype(c0),
                               c0.devices, image_shape)
    split = ((lambda tree: sharding.place(tree, sharding.mesh(c0.devices), image_shape)) if c0.devices > 1
             else (lambda tree: tree))
    traces_before = compiled.traces[0]
    stochastic = statistics.get(c0.style_statistic).stochastic
    stack = lambda *v: jnp.stack(v) if batched else v[0]
    loss_weights = jax.tree.map(stack, *[p.loss_weights for p in problems])

    shared = split((problems[0].params, problems[0].targets, loss_weights))  # placed once

    def make_aux(it):
        return losses.ObjectiveAux(*shared, split(stack(*[step_key(c, it) for c in cfgs])))

    fixed_aux = make_aux(0)
    aux_at = make_aux if stochastic and solvers.get(c0.optimizer).fresh_key_per_step else (lambda it: fixed_aux)
    hashes = [c.result_hash() for c in cfgs]
    template = jax.eval_shape(compiled.solver.init, jnp.asarray(problems[0].x0[None]), problems[0].aux(step_key(c0, 0)))
    offset, elapsed = 0, 0.0
    if plans[0].kind == "checkpoint":
        states = []
        for f, h in zip(files, hashes):
            def read_checkpoint(f=f, h=h):
                st, meta = f.load_checkpoint(template, h)
                return st, np.array([meta.get("offset", 0), meta.get("seconds", 0.0), meta["iteration"]], np.float64)
            st, numbers = hosts.from_writer(read_checkpoint, (jax.tree.map(lambda t: np.zeros(t.shape, t.dtype),
                                                                           template), np.zeros(3, np.float64)))
            states.append(st)
            offset = int(numbers[0])
            elapsed = max(elapsed, float(numbers[1]))
            f.rewind_log(int(numbers[2]))
        state = split(jax.tree.map(stack, *states))
    else:
        if plans[0].kind == "light":
            offset, elapsed = plans[0].iteration, float(light_seconds)
            files[0].rewind_log(offset)
        if plans[0].kind == "image":
            offset = plans[0].iteration
            elapsed = float(hosts.from_writer(lambda: np.float64(files[0].read_sidecar().get("seconds", 0.0)),
                                              np.float64(0.0)))
            files[0].rewind_log(offset)
        x0 = split(stack(*[jnp.asarray(p.x0[None]) for p in problems]))
        state = compiled.init(x0, aux_at(0))
        values = np.reshape(np.asarray(state.value), (n,))
        if not np.all(np.isfinite(values)):
            raise NSTError("the loss is NaN or inf at the initial image; check the weights and images")
        if plans[0].kind == "fresh":
            for i, f in enumerate(files):
                f.clear_error()
                f.start_log(log_record(0, float(values[i]), {k: float(np.reshape(v, (n,))[i])
                                                             for k, v in state.parts.items()}, 0.0))
    start = offset + int(np.reshape(np.asarray(state.iteration), (-1,))[0])
    reporter = None
    if progress and not batched and c0.iterations > start:
        reporter = Reporter(Path(c0.output).name, start, c0.iterations, c0.print_every,
                            (c0.content_weight, c0.style_weight, c0.tv_weight))
        for line in header(c0, problems[0], inputs[0].content_shape, start,
                           checkpoint_bytes(template, c0.light_checkpoint), mem):
            reporter.say(line)
        on_step = reporter.on_step

    def finisher(c, p, f, h):
        def finish(st, iteration, seconds, interrupted, converged=False):
            extra = {"batched_with": n} if batched else {}
            if converged:
                extra["converged"] = c.stop_rule.record()
            extra["memory_plan"] = {"way": mem.way, "devices": c.devices, "bytes": round(mem.needed),
                                    "available": round(mem.available) if mem.available < float("inf") else None}
            if interrupted:
                extra["interrupted"] = True
            f.write_result(p.to_rgb(hosts.to_host(st.x)[0]), _record(c, st, iteration, p, seconds, extra))
            if interrupted:
                return
            if c.keep_checkpoint:
                f.save_checkpoint(st, config_hash=h, solver=c.optimizer, iteration=iteration, offset=offset,
                                  target=c.iterations, seconds=seconds, light=c.light_checkpoint)
            else:
                f.remove_checkpoint()
        return finish

    members = [Member(f, h, c.optimizer, c.iterations, p.to_rgb, finisher(c, p, f, h), c.light_checkpoint)
               for f, h, c, p in zip(files, hashes, cfgs, problems)]
    save_at = save_at or (lambda it: bool(c0.save_every) and it % c0.save_every == 0)
    try:
        outcome = drive(compiled.step, state, aux_at, members, c0.iterations, batched=batched,
                        checkpoint_every=c0.checkpoint_every, save_at=save_at, offset=offset, elapsed=elapsed,
                        on_step=on_step, stop_rule=c0.stop_rule)
    finally:
        if reporter is not None:
            reporter.close()
    compiles = compiled.traces[0] - traces_before
    results = []
    for i, (p, f, m) in enumerate(zip(problems, files, members)):
        if i in outcome.stopped:  # finished by the stopping rule inside the loop
            iteration, seconds, st = outcome.stopped[i]
        else:
            iteration, seconds = outcome.iteration, outcome.seconds
            st = jax.tree.map(lambda a: a[i], outcome.state) if batched else outcome.state
        error = outcome.failures.get(i)
        if error is None and i not in outcome.stopped:
            m.finish(st, iteration, seconds, False)
        results.append(RunResult(p.to_rgb(hosts.to_host(st.x)[0]), iteration, float(st.value),
                                 {k: float(v) for k, v in st.parts.items()}, seconds, compiles,
                                 int(st.evaluations), f.paths(), error, None, i in outcome.stopped))
    return results


def run(cfg: Config, progress: bool = True, restart: bool = False,
        loaded_weights: vgg_weights.Weights | None = None, save_at=None, on_step=None, say=None) -> RunResult:
    """Optimise the image for cfg, continuing what an earlier run left when it can (see `run_many`)."""
    result = run_many([cfg], progress, restart, loaded_weights, save_at, on_step, say)[0]
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
        output = str(out) if last else str(out.with_name(f"{out.stem}_s{size}{out.suffix}"))
        cfgs.append(dataclasses.replace(cfg, size=size, iterations=n, output=output, init=init,
                                        scales=None, scale_iterations=None))
        init = output
    return cfgs


def run_multiscale(cfg: Config, progress: bool = True, restart: bool = False,
                   loaded_weights: vgg_weights.Weights | None = None) -> list[RunResult]:
    """Coarse to fine (Gatys' high-resolution procedure): run each scale, the upsampled result of one
    initialising the next. Every scale is an ordinary resumable run with its own files."""
    cfgs = scale_configs(cfg)
    for c in cfgs:  # every scale is planned before the first one runs: no work lost to a scale too large
        check_memory(c, f"scale {c.size} of {cfg.output}")
    weights = loaded_weights if loaded_weights is not None else vgg_weights.load(cfg.weights)
    return [run(c, progress=progress, restart=restart, loaded_weights=weights) for c in cfgs]
