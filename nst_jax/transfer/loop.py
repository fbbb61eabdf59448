"""The one driver loop of every run: single runs, batched (vmapped) runs, and whatever comes later.

`drive` takes a compiled step, a solver state and one `Member` per run in the state (one for a single
run; N for a state vmapped over N runs, whose leaves then carry a leading run axis). Per step it does
exactly: one step call, one host read of the values and parts, one log line per member, then — when
due — intermediate images and checkpoints (always after that iteration's log line, so a resumed log
has no gap; when they are due is a `checkpoints.Schedule`: by iterations, by the run's time, or both).
A member whose loss becomes NaN or inf keeps its last good image and stops logging; the others go on.
While a stopping rule runs, each member's lowest-loss image is kept (in its checkpoints too), and a member
the rule stops ends with that image, not the last one.
Ctrl-C or SIGTERM writes every member's checkpoint (unless checkpoints are off) and its image so far
(marked interrupted in its sidecar), then re-raises.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from nst_jax.model import convforms
from nst_jax.scale import hosts
from nst_jax.files.checkpoints import Schedule
from nst_jax.files.runfiles import RunFiles
from nst_jax.transfer.stopping import StopRule


class Hooks(NamedTuple):
    """What the loop calls besides the step, as one record (each optional): save_at(iteration) chooses
    intermediate images; on_step(iteration, members still running, total loss of member 0, its parts)
    reports progress; on_checkpoint(iteration) follows each interval's checkpoints; on_image(iteration,
    RGB image of member 0, a host copy) every `image_every` iterations and at the last (for a live view:
    it must not block)."""

    save_at: Callable[[int], bool] | None = None
    on_step: Callable[[int, int, float, dict], None] | None = None
    on_checkpoint: Callable[[int], None] | None = None
    on_image: Callable[[int, np.ndarray], None] | None = None
    image_every: int = 0


class Member(NamedTuple):
    """One run inside the driven state: its files, settings hash, solver and target, how its x becomes
    RGB, and `finish(state, iteration, seconds, interrupted, converged=False, best=None)`, which writes its
    result (`best`: the lowest-loss iterate, whose image a run stopped by the rule ends with)."""

    files: RunFiles
    config_hash: str
    solver: str
    target: int
    to_rgb: Callable[[np.ndarray], np.ndarray]   # x (H, W, C) → RGB (H, W, 3)
    finish: Callable[..., None]
    light: bool = False                           # checkpoints hold the image only
    forms: convforms.Forms | None = None          # the convolution forms, recorded in each checkpoint


class Best(NamedTuple):
    """A member's lowest-loss iterate so far: its iteration, loss, loss parts and image x (H, W, C)."""

    iteration: int
    value: float
    parts: dict
    x: np.ndarray


class Outcome(NamedTuple):
    state: Any
    iteration: int
    seconds: float
    failures: dict[int, str]   # member index → message
    stopped: dict[int, tuple[int, float, Any, Best]]   # member index → (iteration, seconds, state, best)
    # where the stopping rule ended it (already finished by `drive`; a batched member's state is a host copy)
    best: list[Best] | None = None   # each member's lowest-loss iterate, while a stopping rule runs


class _GracefulInterrupt:
    """While the loop runs, the first Ctrl-C or SIGTERM asks it to stop after the current step (so the
    interrupt is never raised inside XLA's compilation or a library callback, where it could be lost); a
    second one stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("interrupted: stopping after the current step (Ctrl-C again to stop at once)", file=sys.stderr,
              flush=True)

    def restore(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}


def log_schedule(iteration: int) -> bool:
    """True at 1, 2, 5, 10, 20, 50, 100, … (the sweep's intermediate images)."""
    if iteration < 1:
        return False
    while iteration % 10 == 0:
        iteration //= 10
    return iteration in (1, 2, 5)


def member_state(state, i: int, batched: bool):
    return jax.tree.map(lambda a: a[i], state) if batched else state


def log_record(iteration: int, value: float, parts: dict[str, float], seconds: float) -> dict:
    return {"iteration": iteration, "loss": value, **parts, "seconds": round(seconds, 4)}


def host_values(state, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(values (n,), parts {name: (n,)}) of a state, read from the device once."""
    value, parts = jax.device_get((state.value, state.parts))
    return np.reshape(value, (n,)), {k: np.reshape(v, (n,)) for k, v in parts.items()}


def state_iteration(state) -> int:
    return int(np.reshape(jax.device_get(state.iteration), (-1,))[0])


def save_checkpoints(state, members: list[Member], batched: bool, skip, iteration: int, offset: int,
                     seconds: float, best: list[Best] | None = None) -> None:
    for i, m in enumerate(members):
        if i not in skip:
            m.files.save_checkpoint(member_state(state, i, batched), config_hash=m.config_hash, solver=m.solver,
                                    iteration=iteration, offset=offset, target=m.target, seconds=seconds,
                                    light=m.light, forms=m.forms, gather=hosts.to_host,
                                    best=None if best is None else (best[i].iteration, best[i].x))


def _stored_best(files: RunFiles, names: tuple[str, ...], shape: tuple[int, ...]):
    """(iteration, loss, parts in `names`' order, image) of the lowest-loss iterate a run's checkpoint records,
    its loss and parts from the run's log; None if it records none or the log lacks that iteration."""
    stored = files.load_best(shape)
    if stored is None:
        return None
    record = next((r for r in files.read_log() if r["iteration"] == stored[0]), None)
    numbers = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if record is None or not all(numbers(record.get(k)) for k in names):
        return None
    return (np.int64(stored[0]), np.float64(record["loss"]), np.array([record[k] for k in names], np.float64),
            stored[1])


def recent_losses(members: list[Member], rule: StopRule, iteration: int) -> list:
    """Each member's logged losses up to `iteration` that the stopping rule looks at (process 0's files
    decide, so every process of a run stops at the same step)."""
    def read():
        out = np.full((len(members), rule.window + 1), np.nan)
        for i, m in enumerate(members):
            values = [r["loss"] for r in m.files.read_log() if r.get("iteration", -1) <= iteration]
            values = values[-(rule.window + 1):]
            out[i, out.shape[1] - len(values):] = values
        return out
    table = hosts.from_writer(read, np.full((len(members), rule.window + 1), np.nan))
    return [rule.tracker(v for v in row if not np.isnan(v)) for row in table]


def drive(step: Callable, state, aux_at: Callable[[int], Any], members: list[Member], target: int, *,
          batched: bool, checkpoints: Schedule, offset: int = 0, elapsed: float = 0.0,
          stop_rule: StopRule | None = None, hooks: Hooks = Hooks()) -> Outcome:
    """Step `state` until `target` iterations (see the module docstring).

    The run's iteration is `offset` + the solver's own count (a run continued from its image starts a
    fresh solver state at its earlier iteration). aux_at(iteration) gives the step's aux; `hooks` what
    else is called (`Hooks`). A member that meets `stop_rule` is finished at that iteration (its result
    written, `converged`) and leaves the loop; the others go on."""
    save_at, on_step, on_checkpoint, on_image, image_every = hooks
    save_at = save_at or (lambda iteration: False)
    run = _Loop(members, batched, offset, elapsed, stop_rule, state)
    stop = _GracefulInterrupt()
    try:
        while run.it < target and run.alive:
            state = step(state, aux_at(run.it))
            run.it += 1
            now = run.now()
            values, parts = run.log(state, run.it, now)
            run.logged = run.it
            run.keep_good(state, values, parts)
            run.apply_stop_rule(state, values, now)
            if run.it < target and save_at(run.it):
                run.write_intermediates()
            if run.it < target and run.checkpoint_due(checkpoints, now):
                run.flush()
                save_checkpoints(state, members, batched, run.skip, run.it, offset, now, run.best)
                run.saved_at = run.now()
                if on_checkpoint is not None:
                    on_checkpoint(run.it)
            if on_step is not None:
                on_step(run.it, len(members) - len(run.skip), float(values[0]),
                        {k: float(v[0]) for k, v in parts.items()})
            if on_image is not None and image_every and (run.it % image_every == 0 or run.it >= target or not run.alive):
                on_image(run.it, members[0].to_rgb(run.last_good[0][0]))
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt as interrupt:
        run.interrupted(state, checkpoints.on)
        interrupt.image_written = True  # the command line words its message by this
        raise
    finally:
        stop.restore()
        run.close()
    return Outcome(state, run.it, run.now(), run.failures, run.stopped, run.best)


class _Loop:
    """The driver loop's running record: the iteration, each member's log, last good image, failure or
    stop, and the stopping rule's recent losses."""

    def __init__(self, members: list[Member], batched: bool, offset: int, elapsed: float,
                 stop_rule: StopRule | None, state):
        self.members, self.batched, self.offset, self.elapsed = members, batched, offset, elapsed
        self.n = len(members)
        self.it = self.logged = offset + state_iteration(state)
        self.failures: dict[int, str] = {}
        self.stopped: dict[int, tuple[int, float, Any]] = {}
        self.rule = stop_rule if stop_rule is not None and stop_rule.active else None
        self.recent = recent_losses(members, self.rule, self.it) if self.rule is not None else None
        shape = tuple(state.x.shape[1:] if batched else state.x.shape)
        self.last_good = np.array(hosts.to_host(state.x)).reshape((self.n,) + shape)
        self.best = self.first_best(state) if self.rule is not None else None
        self.logs = [m.files.open_log() for m in members]
        self.t0 = time.perf_counter()
        self.saved_at = elapsed   # the run's time at its last checkpoint (or where this process began)

    @property
    def skip(self) -> set[int]:
        return set(self.failures) | set(self.stopped)

    @property
    def alive(self) -> bool:
        return len(self.failures) + len(self.stopped) < self.n

    def now(self) -> float:
        return self.elapsed + time.perf_counter() - self.t0

    def checkpoint_due(self, schedule: Schedule, now: float) -> bool:
        """Whether `schedule` asks for a checkpoint now; by time, process 0's clock decides for every process
        (they all take part in writing it)."""
        if not schedule.on:
            return False
        due = schedule.due(self.it, now - self.saved_at)
        if schedule.minutes and hosts.count() > 1:
            due = bool(hosts.agree(np.array(due)))
        return due

    def log(self, state, iteration: int, now: float):
        """One log line per running member with a finite loss; the values and parts read once."""
        values, parts = host_values(state, self.n)
        for i in range(self.n):
            if i not in self.skip and math.isfinite(values[i]):
                self.logs[i].write(json.dumps(log_record(iteration, float(values[i]),
                                                         {k: float(v[i]) for k, v in parts.items()}, now)) + "\n")
        return values, parts

    def first_best(self, state) -> list[Best]:
        """Each member's lowest-loss iterate at the start: the one its checkpoint records (an earlier process's,
        its loss and parts from the log), else where it starts."""
        values, parts = host_values(state, self.n)
        best = []
        for i, m in enumerate(self.members):
            here = Best(self.it, float(values[i]), {k: float(v[i]) for k, v in parts.items()}, self.last_good[i][0])
            names = tuple(here.parts)
            none = (np.int64(-1), np.float64(np.inf), np.zeros(len(names)), here.x)
            it, value, stored_parts, x = hosts.from_writer(lambda: _stored_best(m.files, names, here.x.shape) or none,
                                                           none)
            if value < here.value:
                here = Best(int(it), float(value), dict(zip(names, map(float, stored_parts))), np.asarray(x))
            best.append(here)
        return best

    def keep_good(self, state, values, parts) -> None:
        """A member whose loss is not finite keeps its last good image and fails; the others' images
        are copied (the next step donates state.x), and a lower loss than any before becomes its best."""
        for i, m in enumerate(self.members):
            if i not in self.failures and not math.isfinite(values[i]):
                m.files.write_image(m.to_rgb(self.last_good[i][0]))
                self.failures[i] = (f"the loss became {values[i]} at iteration {self.it}; kept the last good image "
                                    f"in {m.files.image} (try a smaller --lr or --style-weight)")
        x = np.array(hosts.to_host(state.x)).reshape(self.last_good.shape)
        ok = np.isfinite(values)
        self.last_good = x if ok.all() else np.where(ok.reshape((self.n,) + (1,) * (x.ndim - 1)), x, self.last_good)
        for i in range(self.n) if self.best is not None else ():
            if ok[i] and values[i] < self.best[i].value:
                self.best[i] = Best(self.it, float(values[i]), {k: float(v[i]) for k, v in parts.items()}, x[i][0])

    def apply_stop_rule(self, state, values, now: float) -> None:
        if self.rule is None:
            return
        for i, m in enumerate(self.members):
            if i in self.skip:
                continue
            self.recent[i].append(float(values[i]))
            if self.rule.met(self.recent[i]):
                st = jax.device_get(member_state(state, i, True)) if self.batched else state
                self.logs[i].flush()
                m.finish(st, self.it, now, False, converged=True, best=self.best[i])
                self.stopped[i] = (self.it, now, st, self.best[i])

    def write_intermediates(self) -> None:
        for i, m in enumerate(self.members):
            if i not in self.skip:
                m.files.write_intermediate(self.it, m.to_rgb(self.last_good[i][0]))

    def interrupted(self, state, checkpoints_on: bool) -> None:
        """After Ctrl-C: every running member's checkpoint (unless checkpoints are off) and its image."""
        if any(leaf.is_deleted() for leaf in jax.tree.leaves(state)):
            return
        done = self.offset + state_iteration(state)
        now = self.now()
        if done > self.logged:  # interrupted between the step and its log line: the log stays gap-free
            self.log(state, done, now)
        self.flush()
        if checkpoints_on:
            save_checkpoints(state, self.members, self.batched, self.skip, done, self.offset, now, self.best)
        for i, m in enumerate(self.members):
            if i not in self.skip:
                m.finish(member_state(state, i, self.batched), done, now, True)

    def flush(self) -> None:
        for log in self.logs:
            log.flush()

    def close(self) -> None:
        for log in self.logs:
            log.close()
