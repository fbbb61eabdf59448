"""The compiled step of a run: a solver's init and step jitted once per (spec, solver, batch, layout)
and cached, with the state donated; the PRNG key policy of the random statistics; and XLA's own
memory figure for a step compiled for abstract arrays.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from nst_jax.machine import compiler
from nst_jax.files import image
from nst_jax.objective import losses
from nst_jax import solvers
from nst_jax.model import weights as vgg_weights
from nst_jax.transfer.config import Config
from nst_jax.transfer.problem import objective_spec, run_params
from nst_jax.transfer.planning import RunPlan
from nst_jax.scale.sharding import Layout


class Compiled(NamedTuple):
    """A solver's jitted init and step (state donated) for one spec, and how often the step was traced."""

    solver: solvers.Solver
    init: Callable
    step: Callable
    traces: list


@functools.lru_cache(maxsize=32)
def compiled_solver(spec: losses.ObjectiveSpec, optimizer: str, lr: float | None, history: int,
                    batched: bool = False, history_dtype: str = "float32", layout: Layout = Layout()) -> Compiled:
    """The jitted solver for an objective spec; `batched`: vmapped over runs (their x0, loss weights
    and keys; parameters and targets shared); `layout`: the state split along the height of the image
    (see `sharding`). Cached, so runs that share the spec, the solver and the layout (a sweep) compile
    once."""
    solver = solvers.make_solver(optimizer, losses.make_objective(spec), lr, history, history_dtype=history_dtype)
    init, step = solver.init, solver.step
    if batched:
        in_axes = (0, losses.ObjectiveAux(None, None, 0, 0))
        init, step = jax.vmap(init, in_axes=in_axes), jax.vmap(step, in_axes=in_axes)
    if layout.split:
        split = lambda f: lambda *a: layout.constrain(f(*a))
        init, step = split(init), split(step)
    traces = [0]

    def counted_step(state, aux):
        traces[0] += 1  # runs only while tracing
        return step(state, aux)

    bf16 = spec.precision == "bfloat16"
    return Compiled(solver, compiler.jit(init, xla_defaults=bf16),
                    compiler.jit(counted_step, xla_defaults=bf16, donate_argnums=0), traces)


def step_key(cfg: Config, iteration: int):
    """The PRNG key of the random statistics at an iteration: resampled every step for solvers that
    ask for it (Adam), fixed for a whole run otherwise (L-BFGS: its curvature pairs assume one
    objective). A function of the seed and the iteration (both in the checkpoint), so runs are
    reproducible and resumable."""
    base = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 0x5747)
    return jax.random.fold_in(base, iteration) if solvers.get(cfg.optimizer).fresh_key_per_step else base


def xla_memory(cfg: Config, plan: RunPlan, loaded_weights: vgg_weights.Weights | None = None) -> dict[str, int]:
    """XLA's own figure for one step of a run (devices that are here), from the step compiled for
    abstract arrays — nothing of the image's size is allocated: the bytes per device of the
    temporaries (the activations kept for the gradient and the workspace), of the arguments (the
    state, the weights, the targets) and of the outputs not written in place."""
    w = loaded_weights if loaded_weights is not None else vgg_weights.load(cfg.weights)
    image_shape = plan.layout.image_shape
    height, width, channels = image_shape
    spec, params = objective_spec(cfg, w, plan), run_params(cfg, w, plan)
    f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
    longest = max(1, round(max(height, width) * cfg.style_scale))
    styles = [f32(1, *image.fit_size(image.image_size(p), longest), channels) for p in cfg.styles]
    blend = None if cfg.style_blend_weights is None else tuple(cfg.style_blend_weights)
    targets = jax.eval_shape(lambda p, c, s: losses.compute_targets(p, spec, c, s, blend), params,
                             f32(1, height, width, channels), styles)
    aux = losses.ObjectiveAux(params, targets, losses.LossWeights(f32(), f32(), f32(), f32()),
                              jax.eval_shape(lambda: step_key(cfg, 0)))
    compiled = compiled_solver(spec, cfg.optimizer, cfg.lr, cfg.history, False, plan.history_dtype, plan.step_layout)
    state = jax.eval_shape(compiled.init, f32(1, *image_shape), aux)
    state, aux = plan.layout.abstract(state), plan.layout.abstract(aux)
    stats = compiled.step.lower(state, aux).compile().memory_analysis()
    return {"temporaries": int(stats.temp_size_in_bytes), "arguments": int(stats.argument_size_in_bytes),
            "outputs": int(stats.output_size_in_bytes - stats.alias_size_in_bytes)}
