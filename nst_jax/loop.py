"""The one driver loop of every run: single runs, batched (vmapped) runs, and whatever comes later.

`drive` takes a compiled step, a solver state and one `Member` per run in the state (one for a single
run; N for a state vmapped over N runs, whose leaves then carry a leading run axis). Per step it does
exactly: one step call, one host read of the values and parts, one log line per member, then — when
due — intermediate images and checkpoints (always after that iteration's log line, so a resumed log
has no gap). A member whose loss becomes NaN or inf keeps its last good image and stops logging; the
others go on. Ctrl-C writes every member's checkpoint (unless checkpoints are off) and its image so far
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

from nst_jax import hosts
from nst_jax.runfiles import RunFiles
from nst_jax.stopping import StopRule


class Member(NamedTuple):
    """One run inside the driven state: its files, settings hash, solver and target, how its x becomes
    RGB, and `finish(state, iteration, seconds, interrupted, converged=False)`, which writes its result."""

    files: RunFiles
    config_hash: str
    solver: str
    target: int
    to_rgb: Callable[[np.ndarray], np.ndarray]   # x (H, W, C) → RGB (H, W, 3)
    finish: Callable[..., None]
    light: bool = False                           # checkpoints hold the image only


class Outcome(NamedTuple):
    state: Any
    iteration: int
    seconds: float
    failures: dict[int, str]   # member index → message
    stopped: dict[int, tuple[int, float, Any]]   # member index → (iteration, seconds, state) where the
    # stopping rule ended it (already finished by `drive`; a batched member's state is a host copy)


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
                     seconds: float) -> None:
    for i, m in enumerate(members):
        if i not in skip:
            m.files.save_checkpoint(member_state(state, i, batched), config_hash=m.config_hash, solver=m.solver,
                                    iteration=iteration, offset=offset, target=m.target, seconds=seconds,
                                    light=m.light)


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
          batched: bool, checkpoint_every: int, save_at: Callable[[int], bool], offset: int = 0,
          elapsed: float = 0.0, on_step: Callable[[int, int, float, dict], None] | None = None,
          stop_rule: StopRule | None = None) -> Outcome:
    """Step `state` until `target` iterations (see the module docstring).

    The run's iteration is `offset` + the solver's own count (a run continued from its image starts a
    fresh solver state at its earlier iteration). aux_at(iteration) gives the step's aux;
    save_at(iteration) chooses intermediate images; on_step(iteration, members still running, total
    loss of member 0, its parts) reports progress. A member that meets `stop_rule` is finished at that
    iteration (its result written, `converged`) and leaves the loop; the others go on."""
    n = len(members)
    it = offset + state_iteration(state)
    logged = it
    failures: dict[int, str] = {}
    stopped: dict[int, tuple[int, float, Any]] = {}
    rule = stop_rule if stop_rule is not None and stop_rule.active else None
    recent = recent_losses(members, rule, it) if rule is not None else None
    last_good = np.array(hosts.to_host(state.x)).reshape((n,) + tuple(state.x.shape[1:] if batched else state.x.shape))
    logs = [m.files.open_log() for m in members]
    t0 = time.perf_counter()
    stop = _GracefulInterrupt()

    def write_log_lines(st, iteration, now):
        values, parts = host_values(st, n)
        for i in range(n):
            if i not in failures and i not in stopped and math.isfinite(values[i]):
                logs[i].write(json.dumps(log_record(iteration, float(values[i]),
                                                    {k: float(v[i]) for k, v in parts.items()}, now)) + "\n")
        return values, parts

    try:
        while it < target and len(failures) + len(stopped) < n:
            state = step(state, aux_at(it))
            it += 1
            now = elapsed + time.perf_counter() - t0
            values, parts = write_log_lines(state, it, now)
            logged = it
            for i, m in enumerate(members):
                if i not in failures and not math.isfinite(values[i]):
                    m.files.write_image(m.to_rgb(last_good[i][0]))
                    failures[i] = (f"the loss became {values[i]} at iteration {it}; kept the last good image in "
                                   f"{m.files.image} (try a smaller --lr or --style-weight)")
            x = np.array(hosts.to_host(state.x)).reshape(last_good.shape)  # a copy: the next step donates state.x
            ok = np.isfinite(values)
            last_good = x if ok.all() else np.where(ok.reshape((n,) + (1,) * (x.ndim - 1)), x, last_good)
            if rule is not None:
                for i, m in enumerate(members):
                    if i in failures or i in stopped:
                        continue
                    recent[i].append(float(values[i]))
                    if rule.met(recent[i]):
                        st = jax.device_get(member_state(state, i, True)) if batched else state
                        logs[i].flush()
                        m.finish(st, it, now, False, converged=True)
                        stopped[i] = (it, now, st)
            skip = set(failures) | set(stopped)
            if it < target and save_at(it):
                for i, m in enumerate(members):
                    if i not in skip:
                        m.files.write_intermediate(it, m.to_rgb(last_good[i][0]))
            if checkpoint_every and it % checkpoint_every == 0 and it < target:
                for log in logs:
                    log.flush()
                save_checkpoints(state, members, batched, skip, it, offset, now)
            if on_step is not None:
                on_step(it, n - len(skip), float(values[0]), {k: float(v[0]) for k, v in parts.items()})
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt as interrupt:
        if not any(leaf.is_deleted() for leaf in jax.tree.leaves(state)):
            done = offset + state_iteration(state)
            now = elapsed + time.perf_counter() - t0
            if done > logged:  # interrupted between the step and its log line: the log stays gap-free
                write_log_lines(state, done, now)
            for log in logs:
                log.flush()
            skip = set(failures) | set(stopped)
            if checkpoint_every:
                save_checkpoints(state, members, batched, skip, done, offset, now)
            for i, m in enumerate(members):
                if i not in skip:
                    m.finish(member_state(state, i, batched), done, now, True)
            interrupt.image_written = True  # the command line words its message by this
        raise
    finally:
        stop.restore()
        for log in logs:
            log.close()
    return Outcome(state, it, elapsed + time.perf_counter() - t0, failures, stopped)
