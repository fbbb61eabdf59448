"""jaxopt.LBFGS with the classic step rule: one evaluation per iteration (see the package doc)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from nst_jax.solvers._base import Fun, Settings, Solver, SolverInfo, register


class JaxoptState(NamedTuple):
    x: jnp.ndarray
    value: jnp.ndarray
    parts: dict
    grad: jnp.ndarray
    iteration: jnp.ndarray
    evaluations: jnp.ndarray
    first_step: jnp.ndarray
    inner: Any


def jaxopt_lbfgs(fun: Fun, history: int = 100, lr: float = 1.0) -> Solver:
    """jaxopt.LBFGS with the classic step rule (first step min(1, 1/‖g‖₁)·lr, then lr): one
    evaluation per iteration. A fixed step of 1 from the start goes NaN (the first step is −g)."""
    import jaxopt

    def make(first_step):
        rule = lambda it: jnp.where(it == 0, first_step, lr)
        return jaxopt.LBFGS(fun=fun, has_aux=True, history_size=history, stepsize=rule,
                            maxiter=1 << 30, tol=0.0, jit=False, unroll=False)

    def init(x0, aux) -> JaxoptState:
        inner = make(jnp.asarray(1.0, x0.dtype)).init_state(x0, aux)
        g = inner.grad
        first = (jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * lr).astype(x0.dtype)
        return JaxoptState(x0, inner.value, inner.aux, g, jnp.int32(0), jnp.int32(1), first, inner)

    def step(st: JaxoptState, aux) -> JaxoptState:
        x, inner = make(st.first_step).update(st.x, st.inner, aux)
        return JaxoptState(x, inner.value, inner.aux, inner.grad, st.iteration + 1,
                           jnp.asarray(inner.num_fun_eval, jnp.int32), st.first_step, inner)

    return Solver("jaxopt", init, step)


def make(fun: Fun, settings: Settings) -> Solver:
    return jaxopt_lbfgs(fun, settings.history, settings.lr)   # jaxopt's own line of steps: no safeguard


register(SolverInfo("jaxopt", make, 1.0, False,
                    "jaxopt.LBFGS with the classic step rule"))
