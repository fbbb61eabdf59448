"""The solvers' common types and the registry every solver module adds itself to."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from nst_jax.registry import Registry

Fun = Callable[[jnp.ndarray, Any], tuple[jnp.ndarray, dict]]


class Solver(NamedTuple):
    """A pure optimiser: `init(x0, aux) -> state`, `step(state, aux) -> state`. Every state has the
    fields x, value, parts, grad, iteration and evaluations (the run loop reads them)."""

    name: str
    init: Callable
    step: Callable


class SolverInfo(NamedTuple):
    """A registry entry: how to make the solver and what the run loop needs to know about it."""

    name: str
    make: Callable[..., Solver]     # (fun, lr, history, safeguard) -> Solver
    default_lr: float
    fresh_key_per_step: bool        # random statistics get a new key every step
    description: str


REGISTRY: Registry[SolverInfo] = Registry("solver")


def register(info: SolverInfo) -> SolverInfo:
    """Add a solver to the registry (called by each module of the package)."""
    return REGISTRY.register(info.name, info)


def value_and_grad(fun: Fun):
    """`call(x, aux) -> (value, parts, grad)` for an objective returning (value, parts)."""
    vg = jax.value_and_grad(lambda x, aux: fun(x, aux), has_aux=True)

    def call(x, aux):
        (value, parts), grad = vg(x, aux)
        return value, parts, grad
    return call
