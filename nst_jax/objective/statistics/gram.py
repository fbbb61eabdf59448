"""The Gram matrix (Gatys et al. 2016), and over masked positions for spatial control (Gatys et al. 2017)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from nst_jax.objective.statistics._base import Statistic, register
from nst_jax.objective.statistics._common import check, mm, tmm


def _native_tmm(f):
    """FᵀF by the native library's product where it takes C channels, else XLA's (the library is looked up
    when a native Gram is traced: importing the statistics loads no kernel builder)."""
    from nst_jax.model import fused
    return fused.gram(f) if fused.gram_fits(f.shape[-1]) else tmm(f, f)


def _with_cotangent(product):
    """FᵀF by `product`, whose cotangent is F(G̅ + G̅ᵀ) (d(FᵀF) = dFᵀF + FᵀdF): one (M×C)·(C×C) product
    instead of the two (with transposed copies of F) that autodiff gives — 40 % of the Gram's value+grad
    at 256²."""
    gram = jax.custom_vjp(product)
    gram.defvjp(lambda f: (product(f), f), lambda f, g: (mm(f, g + g.T),))
    return gram


_gram = _with_cotangent(lambda f: tmm(f, f))
_gram_native = _with_cotangent(_native_tmm)


def gram_matrix(f, native: bool = False):
    """FᵀF / (C·M) for features (M, C); `native`: FᵀF by nst_jax's native library (`fused.gram`)."""
    f = check(f)
    m, c = f.shape
    return (_gram_native if native else _gram)(f) / jnp.float32(c * m)  # C·M passes int32 at print sizes


def masked_gram_matrix(f, m):
    """Gram matrix over the masked positions: Σ_i m_i f_i f_iᵀ / (C·Σ_i m_i), mask m (M,) in [0, 1]
    (Gatys et al. 2017, "Controlling Perceptual Factors"); equals `gram_matrix` for m = 1."""
    f = check(f)
    m = m.reshape(-1).astype(jnp.float32)
    return tmm(f * m[:, None], f) / (f.shape[1] * jnp.maximum(jnp.sum(m), 1e-6))


def _target(s, key, mask=None, native=False):
    return gram_matrix(s, native) if mask is None else masked_gram_matrix(s, mask)


def _loss(f, t, key, mask=None, native=False):
    return jnp.mean(jnp.square(_target(f, key, mask, native) - t))


register(Statistic("gram", _target, _loss, blendable=True, stochastic=False, scale=1.0, masks=True,
                   native=Statistic("gram", functools.partial(_target, native=True),
                                    functools.partial(_loss, native=True), blendable=True, stochastic=False,
                                    scale=1.0, masks=True)))
