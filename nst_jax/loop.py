"""The one driver loop of every run: single runs, batched (vmapped) runs, and whatever comes later.

`drive` takes a compiled step, a solver state and one `Member` per run in the state (one for a single
run; N for a state vmapped over N runs, whose leaves then carry a leading run axis). Per step it does
exactly: one step call, one host read of the values and parts, one log line per member, then — when
due — intermediate images and checkpoints (always after that iteration's log line, so a resumed log
has no gap). A member whose loss becomes NaN or inf keeps its last good image and stops logging; the
others go on. Ctrl-C saves every member's checkpoint and re-raises.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from nst_jax.runfiles import RunFiles


class Member(NamedTuple):
    """One run inside the driven state: its files, its settings hash, and how its x becomes RGB."""

    files: RunFiles
    config_hash: str
    solver: str
    to_rgb: Callable[[np.ndarray], np.ndarray]   # x (H, W, C) → RGB (H, W, 3)


class Outcome(NamedTuple):
    state: Any
    seconds: float
    failures: dict[int, str]   # member index → message


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


def save_checkpoints(state, members: list[Member], batched: bool, skip, iteration: int, seconds: float) -> None:
    for i, m in enumerate(members):
        if i not in skip:
            m.files.save_checkpoint(member_state(state, i, batched),
                                    {"config_hash": m.config_hash, "solver": m.solver, "iteration": iteration,
                                     "seconds": seconds})


def drive(step: Callable, state, aux_at: Callable[[int], Any], members: list[Member], target: int, *,
          batched: bool, checkpoint_every: int, save_at: Callable[[int], bool], elapsed: float = 0.0,
          on_step: Callable[[int, int, float, dict], None] | None = None) -> Outcome:
    """Step `state` until `target` iterations (see the module docstring).

    aux_at(iteration) gives the step's aux; save_at(iteration) chooses intermediate images;
    on_step(iteration, members still running, total loss of member 0, its parts) reports progress."""
    n = len(members)
    it = int(np.reshape(jax.device_get(state.iteration), (-1,))[0])
    failures: dict[int, str] = {}
    last_good = np.array(state.x).reshape((n,) + tuple(state.x.shape[1:] if batched else state.x.shape))
    logs = [m.files.open_log() for m in members]
    t0 = time.perf_counter()
    try:
        while it < target and len(failures) < n:
            state = step(state, aux_at(it))
            it += 1
            values, parts = host_values(state, n)
            now = elapsed + time.perf_counter() - t0
            for i, m in enumerate(members):
                if i in failures:
                    continue
                if not math.isfinite(values[i]):
                    m.files.write_image(m.to_rgb(last_good[i][0]))
                    failures[i] = (f"the loss became {values[i]} at iteration {it}; kept the last good image in "
                                   f"{m.files.image} (try a smaller --lr or --style-weight)")
                    continue
                logs[i].write(json.dumps(log_record(it, float(values[i]),
                                                    {k: float(v[i]) for k, v in parts.items()}, now)) + "\n")
            x = np.array(state.x).reshape(last_good.shape)  # a host copy: the next step donates state.x
            ok = np.isfinite(values)
            last_good = x if ok.all() else np.where(ok.reshape((n,) + (1,) * (x.ndim - 1)), x, last_good)
            if it < target and save_at(it):
                for i, m in enumerate(members):
                    if i not in failures:
                        m.files.write_intermediate(it, m.to_rgb(last_good[i][0]))
            if checkpoint_every and it % checkpoint_every == 0 and it < target:
                for log in logs:
                    log.flush()
                save_checkpoints(state, members, batched, failures, it, now)
            if on_step is not None:
                on_step(it, n - len(failures), float(values[0]), {k: float(v[0]) for k, v in parts.items()})
    except KeyboardInterrupt:
        for log in logs:
            log.flush()
        if not any(leaf.is_deleted() for leaf in jax.tree.leaves(state)):
            save_checkpoints(state, members, batched, failures, int(np.reshape(jax.device_get(state.iteration), (-1,))[0]),
                             elapsed + time.perf_counter() - t0)
        raise
    finally:
        for log in logs:
            log.close()
    return Outcome(state, elapsed + time.perf_counter() - t0, failures)
