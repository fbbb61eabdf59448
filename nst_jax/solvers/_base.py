"""The contract every solver meets, and the registry every solver module adds itself to.

A solver module registers a `SolverInfo` whose `make(fun, settings) -> Solver` takes the objective and
one `Settings` record, the same for every solver (each uses what applies to it: Adam keeps no history);
the `Solver` it returns is a pure `(init, step)` pair whose states all have the fields of `State`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from nst_jax.base.registry import Registry

Fun = Callable[[jnp.ndarray, Any], tuple[jnp.ndarray, dict]]


class Solver(NamedTuple):
    """A pure optimiser: `init(x0, aux) -> state`, `step(state, aux) -> state`. Every state has the
    fields x, value, parts, grad, iteration and evaluations (the run loop reads them)."""

    name: str
    init: Callable
    step: Callable


class State(Protocol):
    """What every solver's state holds (the run loop, checkpoints and the tests read these fields)."""

    x: jnp.ndarray            # the image
    value: jnp.ndarray        # the objective at x
    parts: dict               # its weighted parts by name
    grad: jnp.ndarray         # its gradient at x
    iteration: jnp.ndarray    # steps taken
    evaluations: jnp.ndarray  # objective evaluations made


class Settings(NamedTuple):
    """What a run asks of its solver, one record for every solver."""

    lr: float                       # the step size
    history: int = 100              # L-BFGS: curvature pairs kept
    safeguard: bool = True          # the classic L-BFGS: damp a step that blows the loss up
    history_dtype: str = "float32"  # the classic L-BFGS: the precision its history is kept in


class SolverInfo(NamedTuple):
    """A registry entry: how to make the solver and what the run loop needs to know about it."""

    name: str
    make: Callable[[Fun, Settings], Solver]
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
