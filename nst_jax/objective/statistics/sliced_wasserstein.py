"""Sliced Wasserstein distance: sorted projections on random directions (Heitz et al. CVPR 2021)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nst_jax.objective.statistics._base import Statistic, register
from nst_jax.objective.statistics._common import check, mm, no_mask, resample_sorted, sort_columns


def random_directions(key, c: int):
    """C random unit directions in R^C, as columns (C, C)."""
    v = jax.random.normal(key, (c, c), jnp.float32)
    return v / jnp.linalg.norm(v, axis=0, keepdims=True)


def _target(s, key, mask=None):
    no_mask("sliced_wasserstein", mask)
    return check(s)


def _loss(f, s, key, mask=None):
    no_mask("sliced_wasserstein", mask)
    f = check(f)
    v = random_directions(key, f.shape[1])
    pf = sort_columns(mm(f, v))
    ps = resample_sorted(sort_columns(mm(s, v)), f.shape[0])
    return jnp.mean(jnp.square(pf - ps))


register(Statistic("sliced_wasserstein", _target, _loss, blendable=False, stochastic=True, scale=1.631))
