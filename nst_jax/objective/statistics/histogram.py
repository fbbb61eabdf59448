"""Per-channel histogram matching treated as a constant target (Risser et al. 2017)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nst_jax.objective.statistics._base import Statistic, register
from nst_jax.objective.statistics._common import check, no_mask, ranked, resample_sorted, sort_columns


def histogram_match(f, s_sorted):
    """Each channel of F mapped to the style's value of the same quantile (rank matching)."""
    f = check(f)
    return ranked(resample_sorted(s_sorted, f.shape[0]), f)


def _target(s, key, mask=None):
    no_mask("histogram", mask)
    return sort_columns(check(s))


def _loss(f, s_sorted, key, mask=None):
    no_mask("histogram", mask)
    f = check(f)
    return jnp.mean(jnp.square(f - jax.lax.stop_gradient(histogram_match(f, s_sorted))))


register(Statistic("histogram", _target, _loss, blendable=False, stochastic=False, scale=1.078))
