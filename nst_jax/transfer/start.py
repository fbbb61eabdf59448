"""Where a run starts: which kind of start its files call for (`find`), and the solver state, offset and
time that start makes (`Start.begin`).

| found beside the output | same settings | other settings |
|---|---|---|
| a result at ≥ the target, or one the stopping rule (`--tol`) ended | nothing to do | start over (the result is replaced) |
| a checkpoint | continue exactly from it (a light one, `--light-checkpoint`: from its image x, with a fresh solver state) | unfinished: set aside as `out.ckpt-<hash>.npz` (restored when those settings are run again); finished: removed; start over |
| only a result below the target (finished without a kept checkpoint, or interrupted) | continue from that image with a fresh solver state | start over |
| nothing | start | start |

Every decision except "start" is said in one line, so a rerun never silently loses or repeats work.

Each kind makes its state with one function:

- `fresh`: the initial image; the loss log begins at iteration 0;
- `from_checkpoint`: the whole solver state, exactly as it was saved;
- `from_light`: a light checkpoint's image, with a fresh solver state;
- `from_image`: the result image of an earlier run, with a fresh solver state.

Every read goes through `hosts.from_writer`, so every process of a multi-host run starts from process
0's files. A `Batch` carries what the kinds need; it is built once per batch (`make_batch`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import solvers
from nst_jax.base.errors import NSTError
from nst_jax.files import image, records
from nst_jax.files.runfiles import RunFiles
from nst_jax.model import convforms
from nst_jax.objective import losses, statistics
from nst_jax.scale import hosts
from nst_jax.scale.sharding import Layout
from nst_jax.transfer import planning, steps
from nst_jax.transfer.config import Config
from nst_jax.transfer.identity import settings_hash
from nst_jax.transfer.inputs import as_variable
from nst_jax.transfer.loop import log_record
from nst_jax.transfer.planning import RunPlan


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
    """The Batch of runs `cfgs` (their `problem.Problem`s, the `planning.RunPlan`, the compiled solver of
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
KINDS = ("fresh", "checkpoint", "light", "image", "done")


class Group(NamedTuple):
    """Runs that go through the loop together (one, or a vmapped batch), decided before any runs."""

    cfgs: list[Config]
    files: list[RunFiles]
    starts: list[Start]
    plan: RunPlan
    hashes: list[str]


def batches(cfgs: list[Config], files: list[RunFiles], restart: bool, say: Callable[[str], None]) -> list[Group]:
    """The batches to run, decided before any runs: all together when every run starts alike and in a
    way a batch can, else each on its own (with its own plan, and its start decided again if that plan
    changes its settings hash)."""
    plan = planning.plan_run(cfgs[0], runs=len(cfgs))  # before the settings hash: it knows the history's precision
    hashes = [settings_hash(c, plan) for c in cfgs]
    found = find_each(cfgs, files, hashes, restart, say)
    if len(cfgs) == 1 or (len(set(found)) == 1 and found[0].batchable):
        return [Group(cfgs, files, found, plan, hashes)]
    groups = []
    for c, f, h, s in zip(cfgs, files, hashes, found):
        alone = planning.plan_run(c)
        h_alone = settings_hash(c, alone)
        if h_alone != h:
            s = find_each([c], [f], [h_alone], False, say)[0]
        groups.append(Group([c], [f], [s], alone, [h_alone]))
    return groups


def recorded_forms(start: Start, files: RunFiles) -> convforms.Forms | None:
    """The convolution forms (and whether the Gram's product was native) a run continued from its checkpoint
    recorded there, so that it continues bit for bit as it started; else None."""
    if start.kind in ("checkpoint", "light") and hosts.is_writer():
        meta = files.checkpoint_meta() or {}
        if meta.get("conv_forms") is None:
            return None
        rows = records.known_forms(meta["conv_forms"], convforms.FORMS, files.checkpoint)
        return convforms.Forms(tuple(tuple(r) for r in rows), "recorded", native_gram=meta.get("native_gram", False))
    return None


def cannot_continue_here(files: RunFiles, h: str) -> str | None:
    """Why the checkpoint of a run with settings hash `h` cannot continue on this machine: it records fused
    forms whose kernel or bfloat16 units this CPU lacks (a continued run keeps its forms); None when it
    can, and when there is no readable checkpoint of these settings (`find` deals with those)."""
    meta = files.checkpoint_meta() if files.checkpoint.exists() else None
    if not meta or meta.get("config_hash") != h or meta.get("conv_forms") is None:
        return None
    rows = records.known_forms(meta["conv_forms"], convforms.FORMS, files.checkpoint)
    for form in sorted({f for _, *both in rows for f in both}):
        missing = planning.fused_missing(form)
        if missing:
            return f"its checkpoint records the form {form}, not available here ({missing})"
    return None


def find_each(cfgs: list[Config], files: list[RunFiles], hashes: list[str], restart: bool,
              say: Callable[[str], None]) -> list[Start]:
    """Each run's start (`find`); in a multi-host run, every process starts where process 0's files
    say (see `hosts`)."""
    found = [find(c, f, h, restart, say) for c, f, h in zip(cfgs, files, hashes)]
    if hosts.count() > 1:
        agreed = hosts.agree(np.array([[KINDS.index(s.kind), s.iteration] for s in found], np.int64))
        found = [Start(KINDS[k], int(i)) for k, i in agreed]
    return found


def find(cfg: Config, files: RunFiles, h: str, restart: bool, say: Callable[[str], None]) -> Start:
    """Decide (see the module docstring) for settings hash `h`, moving a stale checkpoint aside or
    back as needed."""
    if restart:
        files.remove_checkpoint()
        return Start("fresh")
    record = files.read_sidecar() if files.image.exists() else None
    same_result = record is not None and record.get("settings_hash") == h
    finished = record is not None and (record.get("iteration", -1) >= cfg.iterations or cfg.stop_rule.covers(record))
    if same_result and finished and not record.get("interrupted"):
        return Start("done", int(record["iteration"]))
    if not files.checkpoint.exists() and files.aside(h).exists():
        files.restore(h)
        say(f"{files.image}: continuing the unfinished run with these settings that was set aside earlier")
    if files.checkpoint.exists():
        meta = files.checkpoint_meta()
        if meta is None:
            raise NSTError(f"checkpoint {files.checkpoint}: unreadable (truncated or corrupt); delete it or pass "
                           f"--restart to start over")
        if meta.get("config_hash") == h:
            return Start("light" if meta.get("light") else "checkpoint", int(meta.get("iteration", 0)))
        done, target = int(meta.get("iteration", 0)), int(meta.get("target", 1 << 62))
        if done < target:
            aside = files.set_aside(str(meta.get("config_hash")))
            say(f"settings changed: starting over; the unfinished run ({done} of {target} iterations) is kept in "
                f"{aside} and continues when run again with its settings")
        else:
            files.remove_checkpoint()
            say(f"settings changed: starting over ({files.image} will be replaced)")
        return Start("fresh")
    if same_result:   # the image on disk is from `image_iteration` when the stopping rule kept an earlier one
        done = int(record.get("image_iteration", record["iteration"]))
        say(f"{files.image}: continuing from its image at iteration {done} with a fresh solver state (no "
            f"checkpoint was kept; --keep-checkpoint makes a continuation exact)")
        return Start("image", done)
    if record is not None:
        say(f"settings changed: starting over ({files.image} will be replaced)")
    return Start("fresh")
