"""Maximum mean discrepancy with linear, quadratic and Gaussian kernels (Li et al. 2017, "Demystifying NST")."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nst_jax.objective.statistics._base import Statistic, register
from nst_jax.objective.statistics._common import check, mm, no_mask

FOURIER_FEATURES = 512


def gauss_bandwidth(s, key=None, pairs: int = 1024):
    """σ² of the Gaussian kernel: the mean squared distance between pairs of style positions."""
    s = check(s)
    key = jax.random.PRNGKey(0) if key is None else key
    i = jax.random.randint(key, (pairs,), 0, s.shape[0])
    j = jax.random.randint(jax.random.fold_in(key, 1), (pairs,), 0, s.shape[0])
    return jnp.maximum(jnp.mean(jnp.sum(jnp.square(s[i] - s[j]), axis=1)), 1e-12)


def fourier_features(f, sigma2, key, dim: int = FOURIER_FEATURES):
    """Mean random Fourier feature √(2/D)·cos(W f + b) over positions, W ~ N(0, I/σ²)."""
    f = check(f)
    c = f.shape[1]
    w = jax.random.normal(key, (c, dim), f.dtype) / jnp.sqrt(sigma2)
    b = jax.random.uniform(jax.random.fold_in(key, 1), (dim,), f.dtype, 0.0, 2 * jnp.pi)
    return jnp.sqrt(2.0 / dim) * jnp.mean(jnp.cos(mm(f, w) + b), axis=0)


def _linear_target(s, key, mask=None):
    no_mask("mmd-linear", mask)
    return jnp.mean(check(s), axis=0)


def _linear_loss(f, t, key, mask=None):
    return jnp.sum(jnp.square(_linear_target(f, key, mask) - t))


def _poly_target(s, key, mask=None):
    no_mask("mmd-poly", mask)
    s = check(s)
    return mm(s.T, s) / s.shape[0]


def _poly_loss(f, t, key, mask=None):
    return jnp.sum(jnp.square(_poly_target(f, key, mask) - t))


def _gauss_target(s, key, mask=None):
    no_mask("mmd-gauss", mask)
    return check(s), gauss_bandwidth(s)


def _gauss_loss(f, t, key, mask=None):
    no_mask("mmd-gauss", mask)
    s, sigma2 = t
    return jnp.sum(jnp.square(fourier_features(f, sigma2, key) - fourier_features(s, sigma2, key)))


register(Statistic("mmd-linear", _linear_target, _linear_loss, blendable=True, stochastic=False, scale=0.004543))
register(Statistic("mmd-poly", _poly_target, _poly_loss, blendable=True, stochastic=False, scale=1.538e-11))
register(Statistic("mmd-gauss", _gauss_target, _gauss_loss, blendable=False, stochastic=True, scale=6.013e5))
