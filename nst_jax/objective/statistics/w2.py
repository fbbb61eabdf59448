"""Wasserstein-2 distance between the Gaussians fitted to F and S (Dowson & Landau 1982)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nst_jax.objective.statistics._base import Statistic, register
from nst_jax.objective.statistics._common import check, mm, no_mask

EPS_COV = 1e-4


@jax.custom_vjp
def trace_sqrtm(a):
    """tr(A^½) for a symmetric PSD matrix: Σ √λ_i with eigenvalues clamped at 0.

    The gradient is ½ A^{-½} (eigenvalues clamped at 1e-6·λ_max), written from the eigenvectors
    alone: unlike differentiating `eigh`, it never divides by gaps between eigenvalues, so it stays
    finite for repeated eigenvalues and for the rank-deficient covariances of dead ReLU channels."""
    return _trace_sqrtm_fwd(a)[0]


def _trace_sqrtm_fwd(a):
    w, v = jnp.linalg.eigh(0.5 * (a + a.T))
    return jnp.sum(jnp.sqrt(jnp.clip(w, 0.0))), (w, v)


def _trace_sqrtm_bwd(res, g):
    w, v = res
    floor = 1e-6 * jnp.maximum(jnp.max(w), 1e-30)
    return (g * mm(v * (0.5 / jnp.sqrt(jnp.maximum(w, floor))), v.T),)


trace_sqrtm.defvjp(_trace_sqrtm_fwd, _trace_sqrtm_bwd)


def sqrtm_eigh(a):
    """Square root of a symmetric PSD matrix by eigen-decomposition, eigenvalues clamped at 0 (targets only)."""
    w, v = jnp.linalg.eigh(a)
    return mm(v * jnp.sqrt(jnp.clip(w, 0.0)), v.T)


def gaussian(f):
    """(μ, Σ + εI) of features (M, C): the Gaussian that w2 compares."""
    f = check(f)
    m, c = f.shape
    mu = jnp.mean(f, axis=0)
    fc = f - mu
    return mu, mm(fc.T, fc) / m + EPS_COV * jnp.eye(c, dtype=f.dtype)


def w2_distance(mu1, cov1, mu2, cov2, cov2_sqrt=None):
    """Squared Wasserstein-2 distance between N(μ₁, Σ₁) and N(μ₂, Σ₂)."""
    r = sqrtm_eigh(cov2) if cov2_sqrt is None else cov2_sqrt
    inner = mm(mm(r, cov1), r)
    cross = trace_sqrtm(inner)
    return jnp.sum(jnp.square(mu1 - mu2)) + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * cross


def _target(s, key, mask=None):
    no_mask("w2", mask)
    mu, cov = gaussian(s)
    return mu, cov, sqrtm_eigh(cov)


def _loss(f, t, key, mask=None):
    no_mask("w2", mask)
    mu, cov = gaussian(f)
    return w2_distance(mu, cov, t[0], t[1], t[2]) / f.shape[1]


register(Statistic("w2", _target, _loss, blendable=False, stochastic=False, scale=0.6485))
