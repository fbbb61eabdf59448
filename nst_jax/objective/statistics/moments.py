"""First and second moments per channel: mean/std (AdaIN) and the centred Gram (covariance)."""

from __future__ import annotations

import jax.numpy as jnp

from nst_jax.objective.statistics._base import Statistic, register
from nst_jax.objective.statistics._common import check, mm, no_mask

EPS_STD = 1e-5


def mean_std(f):
    """Per-channel mean and standard deviation √(var + 1e-5) of features (M, C)."""
    f = check(f)
    mu = jnp.mean(f, axis=0)
    return mu, jnp.sqrt(jnp.mean(jnp.square(f - mu), axis=0) + EPS_STD)


def covariance(f):
    """(centred Gram (F − μ)ᵀ(F − μ)/(C·M), mean μ) of features (M, C)."""
    f = check(f)
    m, c = f.shape
    mu = jnp.mean(f, axis=0)
    fc = f - mu
    return mm(fc.T, fc) / (c * m), mu


def _mean_std_target(s, key, mask=None):
    no_mask("mean_std", mask)
    return mean_std(s)


def _mean_std_loss(f, t, key, mask=None):
    mu, sd = _mean_std_target(f, key, mask)
    return jnp.mean(jnp.square(mu - t[0]) + jnp.square(sd - t[1]))


def _cov_target(s, key, mask=None):
    no_mask("covariance", mask)
    return covariance(s)[0]


def _cov_loss(f, t, key, mask=None):
    return jnp.mean(jnp.square(_cov_target(f, key, mask) - t))


register(Statistic("mean_std", _mean_std_target, _mean_std_loss, blendable=True, stochastic=False, scale=1.34))
register(Statistic("covariance", _cov_target, _cov_loss, blendable=True, stochastic=False, scale=10.09))
