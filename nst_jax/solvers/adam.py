"""Adam on the pixels (optax)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from nst_jax.solvers._base import Fun, Settings, Solver, SolverInfo, register, value_and_grad


class AdamState(NamedTuple):
    x: jnp.ndarray
    value: jnp.ndarray
    parts: dict
    grad: jnp.ndarray
    iteration: jnp.ndarray
    evaluations: jnp.ndarray
    opt: Any


def adam(fun: Fun, lr: float = 0.02) -> Solver:
    """optax.adam on the pixels; lr is in units of the [0, 1] pixel range."""
    import optax

    tx = optax.adam(lr)
    vg = value_and_grad(fun)

    def init(x0, aux) -> AdamState:
        value, parts, grad = vg(x0, aux)
        return AdamState(x0, value, parts, grad, jnp.int32(0), jnp.int32(1), tx.init(x0))

    def step(st: AdamState, aux) -> AdamState:
        updates, opt = tx.update(st.grad, st.opt, st.x)
        x = st.x + updates
        value, parts, grad = vg(x, aux)
        return AdamState(x, value, parts, grad, st.iteration + 1, st.evaluations + 1, opt)

    return Solver("adam", init, step)


def make(fun: Fun, settings: Settings) -> Solver:
    return adam(fun, settings.lr)   # no history, no safeguard: Adam's steps are bounded by lr


register(SolverInfo("adam", make, 0.02, True,
                    "Adam (optax); lr in units of the [0, 1] pixel range"))
