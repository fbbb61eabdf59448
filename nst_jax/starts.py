"""Where a run starts, as what it produces: the solver state, the iteration it counts from (`offset`)
and the time already spent. One function per kind of start (`resume` decides which kind):

- `fresh`: the initial image; the loss log begins at iteration 0;
- `from_checkpoint`: the whole solver state, exactly as it was saved;
- `from_light`: a light checkpoint's image, with a fresh solver state;
- `from_image`: the result image of an earlier run, with a fresh solver state.

Every read goes through `hosts.from_writer`, so every process of a multi-host run starts from process
0's files. A `Batch` carries what the kinds need; it is built once per batch by `transfer`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import hosts, image, losses, solvers, statistics, steps
from nst_jax.errors import NSTError
from nst_jax.inputs import as_variable
from nst_jax.loop import log_record
from nst_jax.runfiles import RunFiles
from nst_jax.sharding import Layout


class Start(NamedTuple):
    kind: str            # 'fresh', 'checkpoint', 'light' (checkpoint), 'image' or 'done'
    iteration: int = 0   # the iteration the run continues from (or has reached, for 'done')

    @property
    def batchable(self) -> bool:
        """Runs that start this way can share one vmapped state (from their own checkpoints or afresh)."""
        return self.kind in ("fresh", "checkpoint")

    def begin(self, batch: "Batch") -> "Begun":
        return BEGIN[self.kind](batch, self.iteration)


class Batch(NamedTuple):
    """A batch about to run (one run, or several vmapped): what a start needs to make its state."""

    init: Callable                  # the compiled solver's init(x0, aux)
    x0s: list[np.ndarray]           # each run's initial image (H, W, C)
    files: list[RunFiles]
    hashes: list[str]               # each run's settings hash
    layout: Layout
    aux_at: Callable[[int], Any]
    template: Any                   # one run's abstract state (jax.eval_shape)
    batched: bool

    def stack(self, values):
        return jnp.stack(values) if self.batched else values[0]


class Begun(NamedTuple):
    state: Any
    offset: int       # the run's iteration = offset + the solver's own count
    elapsed: float    # seconds spent before this process took over


def _initialise(batch: Batch, xs: list[np.ndarray]):
    """A fresh solver state at these images; NSTError when the loss is not finite there."""
    x0 = batch.layout.place(batch.stack([jnp.asarray(x[None]) for x in xs]))
    state = batch.init(x0, batch.aux_at(0))
    values = np.reshape(np.asarray(state.value), (len(xs),))
    if not np.all(np.isfinite(values)):
        raise NSTError("the loss is NaN or inf at the initial image; check the weights and images")
    return state


def fresh(batch: Batch, iteration: int) -> Begun:
    state = _initialise(batch, batch.x0s)
    n = len(batch.files)
    values = np.reshape(np.asarray(state.value), (n,))
    for i, f in enumerate(batch.files):
        f.clear_error()
        f.start_log(log_record(0, float(values[i]), {k: float(np.reshape(v, (n,))[i])
                                                     for k, v in state.parts.items()}, 0.0))
    return Begun(state, 0, 0.0)


def from_checkpoint(batch: Batch, iteration: int) -> Begun:
    states, offset, elapsed = [], 0, 0.0
    zeros = jax.tree.map(lambda t: np.zeros(t.shape, t.dtype), batch.template)
    for f, h in zip(batch.files, batch.hashes):
        def read(f=f, h=h):
            st, meta = f.load_checkpoint(batch.template, h)
            return st, np.array([meta.get("offset", 0), meta.get("seconds", 0.0), meta["iteration"]], np.float64)
        st, numbers = hosts.from_writer(read, (zeros, np.zeros(3, np.float64)))
        states.append(st)
        offset = int(numbers[0])
        elapsed = max(elapsed, float(numbers[1]))
        f.rewind_log(int(numbers[2]))
    return Begun(batch.layout.place(jax.tree.map(lambda *v: batch.stack(v), *states)), offset, elapsed)


def from_light(batch: Batch, iteration: int) -> Begun:
    files, shape = batch.files[0], (1,) + tuple(batch.x0s[0].shape)

    def read():
        x, meta = files.load_light_checkpoint(shape, batch.hashes[0])
        return x, np.float64(meta["seconds"])
    x, seconds = hosts.from_writer(read, (np.zeros(shape, np.float32), np.float64(0.0)))
    files.rewind_log(iteration)
    return Begun(_initialise(batch, [np.asarray(x)[0]]), iteration, float(seconds))


def from_image(batch: Batch, iteration: int) -> Begun:
    files, (h, w, channels) = batch.files[0], batch.x0s[0].shape
    img = hosts.from_writer(lambda: image.resize(image.load_image(files.image), (h, w)),
                            np.zeros((h, w, 3), np.float32))
    seconds = hosts.from_writer(lambda: np.float64(files.read_sidecar().get("seconds", 0.0)), np.float64(0.0))
    files.rewind_log(iteration)
    return Begun(_initialise(batch, [as_variable(img, channels)]), iteration, float(seconds))


def make_batch(cfgs, files, problems, hashes, plan, compiled, batched: bool) -> Batch:
    """The Batch of runs `cfgs` (their `problem.Problem`s, the `runplan.RunPlan`, the compiled solver of
    `steps`): the shared arrays placed once, its aux schedule (keys resampled per step only for the
    random statistics under a solver that asks for it) and one run's abstract state."""
    c0, layout = cfgs[0], plan.layout
    stack = lambda *v: jnp.stack(v) if batched else v[0]
    loss_weights = jax.tree.map(stack, *[p.loss_weights for p in problems])
    shared = layout.place((problems[0].params, problems[0].targets, loss_weights))

    def make_aux(it):
        return losses.ObjectiveAux(*shared, layout.place(stack(*[steps.step_key(c, it) for c in cfgs])))

    fixed_aux = make_aux(0)
    stochastic = statistics.get(c0.style_statistic).stochastic
    aux_at = make_aux if stochastic and solvers.get(c0.optimizer).fresh_key_per_step else (lambda it: fixed_aux)
    template = jax.eval_shape(compiled.solver.init, jnp.asarray(problems[0].x0[None]),
                              problems[0].aux(steps.step_key(c0, 0)))
    return Batch(compiled.init, [p.x0 for p in problems], files, hashes, layout, aux_at, template, batched)


BEGIN: dict[str, Callable[[Batch, int], Begun]] = {
    "fresh": fresh, "checkpoint": from_checkpoint, "light": from_light, "image": from_image}
KINDS_BEGUN = tuple(BEGIN)   # every kind but 'done' (a run with nothing to do is never begun)
