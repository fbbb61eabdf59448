"""The style statistics' registry entry type and the registry every statistic module adds itself to."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from nst_jax.base.registry import Registry


class Statistic(NamedTuple):
    """A style statistic: its target from style features, its loss, and how targets blend."""

    name: str
    target: Callable[..., Any]   # (S (M, C), key, mask=None) -> target pytree
    loss: Callable[..., Any]     # (F (M, C), target, key, mask=None) -> scalar
    blendable: bool              # targets are moments: blend styles by weighted average
    stochastic: bool             # the loss depends on the key
    scale: float                 # calibrated multiplier (see the package docstring)
    masks: bool = False          # supports spatial control (mask weights over positions)
    native: Statistic | None = None   # the same statistic by nst_jax's native library (`model.fused`)


REGISTRY: Registry[Statistic] = Registry("style statistic")


def register(stat: Statistic) -> Statistic:
    """Add a statistic to the registry (called by each module of the package)."""
    return REGISTRY.register(stat.name, stat)
