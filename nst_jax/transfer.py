"""The run loop: prepare images and targets, compile one step, drive it from Python, save as it goes.

`prepare(cfg)` loads weights and images and precomputes the targets; `run(cfg)` optimises, showing
progress, writing intermediate images, a JSONL loss log, atomic checkpoints of the whole solver
state (resumable after Ctrl-C or kill -9, bit-identical on the same machine), the result PNG with
its parameters in a text chunk and a JSON sidecar. The step is jitted once with its state donated.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import compiler, image, layers, losses, solvers, statistics, vgg
from nst_jax import weights as weights_mod
from nst_jax.config import INITS, Config
from nst_jax.errors import NSTError
from nst_jax.fileio import atomic_write_bytes


class Problem(NamedTuple):
    """Everything a solver needs, computed once: images (1, H, W, 3), x0, the objective's parts."""

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


class RunResult(NamedTuple):
    image: np.ndarray
    iteration: int
    loss: float
    parts: dict
    seconds: float
    compiles: int
    evaluations: int
    paths: dict


def output_paths(output: str | os.PathLike) -> dict[str, Path]:
    """The files a run writes next to its output image."""
    out = Path(output)
    stem = out.with_suffix("")
    return {"image": out, "sidecar": stem.with_suffix(".json"), "log": Path(f"{stem}.losses.jsonl"),
            "checkpoint": Path(f"{stem}.ckpt.npz"), "stem": stem}


def intermediate_path(output: str | os.PathLike, iteration: int) -> Path:
    out = Path(output)
    return out.with_name(f"{out.stem}_iter{iteration:05d}{out.suffix}")


def load_images(cfg: Config) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content resized to `size` on its longer side; styles to `style_scale` × that size."""
    content = image.load_image(cfg.content)
    h, w = image.fit_size(content.shape[:2], cfg.size)
    content = image.resize(content, (h, w))
    styles = []
    for path in cfg.styles:
        style = image.load_image(path)
        longest = max(1, round(max(h, w) * cfg.style_scale))
        styles.append(image.resize(style, image.fit_size(style.shape[:2], longest)))
    return content, styles


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


def _load_mask(path: str, image_path: str, size: tuple[int, int]) -> np.ndarray:
    """A mask file as grey values in [0, 1], checked against its image's size, resized to `size`."""
    mask = image.load_image(path)
    want = image.load_image(image_path).shape[:2]
    if mask.shape[:2] != want:
        raise NSTError(f"mask {path}: {mask.shape[1]}×{mask.shape[0]} px, but its image {image_path} is "
                       f"{want[1]}×{want[0]} px; masks must have their image's size")
    return image.resize(mask, size).mean(axis=-1)


def load_masks(cfg: Config, content: np.ndarray, styles: list[np.ndarray]):
    """(content masks, style masks) at the resized images' sizes, or (None, None) without masks."""
    if cfg.content_masks is None:
        return None, None
    cm = [jnp.asarray(_load_mask(p, cfg.content, content.shape[:2])) for p in cfg.content_masks]
    sm = None
    if cfg.style_masks is not None:
        sm = [jnp.asarray(_load_mask(p, sp, s.shape[:2])) for p, sp, s in zip(cfg.style_masks, cfg.styles, styles)]
    return cm, sm


def initial_image(cfg: Config, content: np.ndarray, styles: list[np.ndarray], prep) -> np.ndarray:
    """The starting image (H, W, 3) in [0, 1] for cfg.init."""
    shape = content.shape
    style0 = _resize_any(styles[0], shape[:2])
    if cfg.init == "noise":
        key = jax.random.PRNGKey(cfg.seed)
        return np.asarray(jax.random.uniform(key, shape, jnp.float32))
    if cfg.init == "white":
        return np.ones(shape, np.float32)
    if cfg.init == "black":
        return np.zeros(shape, np.float32)
    if cfg.init == "mean":
        mean = weights_mod.mean_rgb(prep)
        mean = mean if shape[-1] == 3 else image.rgb_to_yiq(mean)[..., :1]
        return np.broadcast_to(mean, shape).astype(np.float32)
    if cfg.init == "content":
        return content.copy()
    if cfg.init == "style":
        return style0
    if cfg.init == "average":
        return 0.5 * (content + style0)
    start = image.resize(image.load_image(cfg.init), shape[:2])
    return start if shape[-1] == 3 else image.rgb_to_yiq(start)[..., :1]


def _resize_any(img: np.ndarray, size) -> np.ndarray:
    """Resize (H, W, C) for C = 1 or 3 (luminance images have one channel)."""
    if img.shape[-1] == 3:
        return image.resize(img, size)
    return image.resize(np.repeat(img, 3, axis=-1), size)[..., :1]


def prepare(cfg: Config, loaded_weights: weights_mod.Weights | None = None) -> Problem:
    """Load weights and images, check sizes, build the objective's static spec and its targets."""
    w = loaded_weights if loaded_weights is not None else weights_mod.load(cfg.weights)
    content, styles = load_images(cfg)
    check_sizes(cfg, content, styles)
    chroma = None
    if cfg.original_colors == "histogram":
        styles = [image.match_color_histogram(s, content) for s in styles]
    elif cfg.original_colors == "luminance":
        yiq = image.rgb_to_yiq(content)
        chroma = yiq[..., 1:]
        content = yiq[..., :1]
        styles = [image.match_luminance(image.rgb_to_yiq(s)[..., :1], content) for s in styles]
    content_masks, style_masks = load_masks(cfg, content, styles)
    statistic = "gram-masked" if content_masks is not None else cfg.style_statistic
    spec = losses.ObjectiveSpec(cfg.content_layers, cfg.style_layers, tuple(cfg.layer_weights),
                                cfg.pooling, w.preprocessing, statistic)
    params = layers.prepare_params(vgg.params_upto(w.params, cfg.content_layers + cfg.style_layers))
    blend = None
    if cfg.style_blend_weights is not None:
        total = float(sum(cfg.style_blend_weights))
        blend = [b / total for b in cfg.style_blend_weights]
    targets = _targets_fn(spec, None if blend is None else tuple(blend))(
        params, jnp.asarray(content[None]), [jnp.asarray(s[None]) for s in styles], content_masks, style_masks)
    x0 = initial_image(cfg, content, styles, w.preprocessing)
    if chroma is not None and x0.shape[-1] == 3:
        x0 = image.rgb_to_yiq(x0)[..., :1]
    lw = losses.LossWeights(jnp.float32(cfg.content_weight), jnp.float32(cfg.style_weight),
                            jnp.float32(cfg.tv_weight))
    return Problem(content, styles, x0, spec, params, targets, lw, w.info, chroma)


@functools.lru_cache(maxsize=32)
def _targets_fn(spec: losses.ObjectiveSpec, blend: tuple | None):
    return compiler.jit(lambda p, c, s, cm, sm: losses.compute_targets(p, spec, c, s, blend, None, cm, sm))


@functools.lru_cache(maxsize=32)
def compiled_solver(spec: losses.ObjectiveSpec, optimizer: str, lr: float | None, history: int):
    """(solver, jitted init, jitted step with donated state, trace counter) for an objective spec.

    Cached, so runs that share the spec, the solver and the image shape (a sweep) compile once."""
    solver = solvers.make_solver(optimizer, make_fun(spec), lr, history)
    traces = [0]

    def counted_step(state, aux):
        traces[0] += 1  # runs only while tracing
        return solver.step(state, aux)

    return solver, compiler.jit(solver.init), compiler.jit(counted_step, donate_argnums=0), traces


def make_fun(spec: losses.ObjectiveSpec):
    """The objective as `fun(x, aux)` with aux = (params, targets, loss weights, key); x is (1, H, W, 3)."""
    def fun(x, aux):
        params, targets, lw, key = aux
        return losses.objective(x, params, targets, lw, spec, key)
    return fun


def step_key(cfg: Config, iteration: int):
    """The PRNG key of the random statistics at an iteration: fixed for a whole L-BFGS run (its
    curvature pairs assume one objective), resampled every step for Adam. A function of the seed
    and the iteration (both in the checkpoint), so runs are reproducible and resumable."""
    base = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 0x5747)
    return jax.random.fold_in(base, iteration) if cfg.optimizer == "adam" else base


# ------------------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: Path, state, meta: dict) -> None:
    leaves = jax.tree.leaves(state)
    arrays = {f"leaf{i:03d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path: Path, template) -> tuple[Any, dict]:
    """The state stored at `path`, shaped like `template` (from jax.eval_shape); NSTError if broken."""
    try:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            leaves_t, treedef = jax.tree.flatten(template)
            leaves = [data[f"leaf{i:03d}"] for i in range(len(leaves_t))]
    except (OSError, KeyError, ValueError, EOFError) as err:
        raise NSTError(f"checkpoint {path}: unreadable ({err}); delete it to start over") from None
    for got, want in zip(leaves, leaves_t):
        if got.shape != want.shape or got.dtype != want.dtype:
            raise NSTError(f"checkpoint {path}: state shapes differ from this run's; delete it or pass "
                           f"--restart")
    return jax.tree.unflatten(treedef, [jnp.asarray(a) for a in leaves]), meta


def _rewrite_log(path: Path, upto: int) -> None:
    """Keep the log lines up to iteration `upto` (the checkpoint's), atomically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["iteration"] <= upto:
                kept.append(line)
        except (ValueError, KeyError):
            break
    atomic_write_bytes(path, lambda f: f.write(("\n".join(kept) + ("\n" if kept else "")).encode()))


# ---------------------------------------------------------------------------------------- the loop

def _parts_dict(state) -> dict:
    return {k: float(v) for k, v in state.parts.items()}


def _check_not_inputs(cfg: Config, paths: dict[str, Path]) -> None:
    inputs = [Path(cfg.content), *map(Path, cfg.styles)]
    if cfg.init not in INITS:
        inputs.append(Path(cfg.init))
    resolved = {p.resolve() for p in inputs}
    for key in ("image", "sidecar", "log", "checkpoint"):
        if paths[key].resolve() in resolved:
            raise NSTError(f"output {paths[key]} would overwrite an input image; choose another -o/--output")


def log_schedule(iteration: int) -> bool:
    """True at 1, 2, 5, 10, 20, 50, 100, … (the sweep's intermediate images)."""
    if iteration < 1:
        return False
    while iteration % 10 == 0:
        iteration //= 10
    return iteration in (1, 2, 5)


def finish(cfg: Config, state, problem: Problem, seconds: float, extra: dict | None = None) -> dict:
    """Write the final checkpoint, the result image (parameters in its text chunk) and the sidecar."""
    paths = output_paths(cfg.output)
    record = {"config": cfg.to_dict(), "iteration": int(state.iteration), "loss": float(state.value),
              "parts": _parts_dict(state), "seconds": round(seconds, 3), "evaluations": int(state.evaluations),
              "weights": {k: str(v) for k, v in problem.weights_info.items()},
              "image_size": list(problem.content.shape[:2]), "device": str(jax.devices()[0]),
              "nst_jax_command": "python -m nst_jax.run " + " ".join(map(str, sys.argv[1:])) if sys.argv else "",
              **(extra or {})}
    save_checkpoint(paths["checkpoint"], state, {"config_hash": cfg.result_hash(), "solver": cfg.optimizer,
                                                 "iteration": int(state.iteration), "seconds": seconds})
    image.save_image(paths["image"], problem.to_rgb(np.asarray(state.x)[0]), {"nst_jax": json.dumps(record, default=str)})
    atomic_write_bytes(paths["sidecar"], lambda f: f.write(json.dumps(record, indent=2, default=str).encode()))
    return record


def run(cfg: Config, progress: bool = True, restart: bool = False,
        loaded_weights: weights_mod.Weights | None = None, save_at=None, on_step=None) -> RunResult:
    """Optimise the image for cfg, resuming from its checkpoint when one matches; see module doc.

    save_at(iteration) -> bool chooses intermediate images (default: every cfg.save_every);
    on_step(iteration) is called after each step (progress of a caller such as the sweep)."""
    paths = output_paths(cfg.output)
    _check_not_inputs(cfg, paths)
    if paths["image"].suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"):
        raise NSTError(f"output {paths['image']}: use an image extension such as .png")
    problem = prepare(cfg, loaded_weights)
    solver, init, step, traces = compiled_solver(problem.spec, cfg.optimizer, cfg.lr, cfg.history)
    traces_before = traces[0]
    stochastic = statistics.get(cfg.style_statistic).stochastic
    aux = (problem.params, problem.targets, problem.loss_weights, step_key(cfg, 0))
    x0 = jnp.asarray(problem.x0[None])

    cfg_hash = cfg.result_hash()
    meta_base = {"config_hash": cfg_hash, "solver": cfg.optimizer}

    state, elapsed = None, 0.0
    if paths["checkpoint"].exists() and not restart:
        template = jax.eval_shape(solver.init, x0, aux)
        state, meta = load_checkpoint(paths["checkpoint"], template)
        if meta.get("config_hash") != cfg_hash:
            raise NSTError(f"checkpoint {paths['checkpoint']} was made with other settings; pass "
                           f"--restart to start over or choose another -o/--output")
        elapsed = float(meta.get("seconds", 0.0))
        _rewrite_log(paths["log"], int(state.iteration))
    if state is None:
        state = init(x0, aux)
        if not math.isfinite(float(state.value)):
            raise NSTError("the loss is NaN or inf at the initial image; check the weights and images")
        atomic_write_bytes(paths["log"], lambda f: f.write((json.dumps(
            {"iteration": 0, "loss": float(state.value), **_parts_dict(state), "seconds": 0.0}) + "\n").encode()))

    start = int(state.iteration)
    target = cfg.iterations
    last_good = np.asarray(state.x)
    bar = None
    if progress and target > start:
        from tqdm.auto import tqdm
        bar = tqdm(total=target, initial=start, desc=Path(cfg.output).name, unit="it",
                   dynamic_ncols=True, file=sys.stderr)
    t0 = time.perf_counter()
    log = open(paths["log"], "a")
    it = start
    try:
        while it < target:
            if stochastic:
                aux = aux[:3] + (step_key(cfg, it),)
            state = step(state, aux)
            it += 1
            value = float(state.value)
            if not math.isfinite(value):
                image.save_image(paths["image"], problem.to_rgb(last_good[0]), {"nst_jax": json.dumps(cfg.to_dict())})
                raise NSTError(f"the loss became {value} at iteration {it}; kept the last good image in "
                               f"{paths['image']} (try a smaller --lr or --style-weight)")
            last_good = np.asarray(state.x)
            now = elapsed + time.perf_counter() - t0
            parts = _parts_dict(state)
            log.write(json.dumps({"iteration": it, "loss": value, **parts, "seconds": round(now, 4)}) + "\n")
            if bar is not None:
                bar.update(1)
                if cfg.print_every and (it % cfg.print_every == 0 or it == target):
                    bar.set_postfix(loss=f"{value:.4g}", content=f"{parts['content']:.3g}",
                                    style=f"{parts['style']:.3g}", refresh=False)
            if (save_at(it) if save_at is not None else (cfg.save_every and it % cfg.save_every == 0)) \
                    and it < target:
                image.save_image(intermediate_path(cfg.output, it), problem.to_rgb(last_good[0]))
            if on_step is not None:
                on_step(it)
            if cfg.checkpoint_every and it % cfg.checkpoint_every == 0 and it < target:
                log.flush()
                save_checkpoint(paths["checkpoint"], state, {**meta_base, "iteration": it, "seconds": now})
    except KeyboardInterrupt:
        log.flush()
        if not any(leaf.is_deleted() for leaf in jax.tree.leaves(state)):
            save_checkpoint(paths["checkpoint"], state, {**meta_base, "iteration": int(state.iteration),
                                                         "seconds": elapsed + time.perf_counter() - t0})
        raise
    finally:
        log.close()
        if bar is not None:
            bar.close()
    seconds = elapsed + time.perf_counter() - t0
    if it > start or not (paths["image"].exists() and paths["sidecar"].exists()):
        finish(cfg, state, problem, seconds)
    return RunResult(problem.to_rgb(np.asarray(state.x)[0]), int(state.iteration), float(state.value), _parts_dict(state),
                     seconds, traces[0] - traces_before, int(state.evaluations), {k: str(v) for k, v in paths.items()})


def scale_configs(cfg: Config) -> list[Config]:
    """The per-scale Configs of a coarse-to-fine run: each scale's result (`<stem>_s<size>.png`)
    initialises the next; the last writes cfg.output."""
    import dataclasses
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
                   loaded_weights: weights_mod.Weights | None = None) -> list[RunResult]:
    """Coarse to fine (Gatys' high-resolution procedure): run each scale, the upsampled result of one
    initialising the next. Every scale is an ordinary resumable run with its own files."""
    w = loaded_weights if loaded_weights is not None else weights_mod.load(cfg.weights)
    results = []
    for c in scale_configs(cfg):
        results.append(run(c, progress=progress, restart=restart, loaded_weights=w))
    return results
