"""Exact values of the losses on small arrays, and the invariances they promise."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from nst_jax.objective import losses


def _np_gram(f):
    b, h, w, c = f.shape
    m = f.reshape(b, h * w, c).astype(np.float64)
    return np.einsum("bmc,bmd->bcd", m, m) / (c * h * w)


def test_gram_hand_computed():
    f = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4) / 10
    g = np.asarray(losses.gram(jnp.asarray(f)))
    # entry (0, 1): Σ_positions f[..., 0]·f[..., 1] / (C·H·W)
    manual = sum((4 * p) / 10 * (4 * p + 1) / 10 for p in range(6)) / 24
    assert abs(g[0, 0, 1] - manual) < 1e-6
    np.testing.assert_allclose(g, _np_gram(f), rtol=1e-6)
    np.testing.assert_allclose(g[0], g[0].T)


def test_content_loss_hand_computed():
    rng = np.random.default_rng(0)
    a, b = rng.random((1, 3, 3, 2), np.float32), rng.random((1, 3, 3, 2), np.float32)
    c, d = rng.random((1, 2, 2, 4), np.float32), rng.random((1, 2, 2, 4), np.float32)
    got = losses.content_loss({"x": a, "y": c, "unused": b}, {"x": b, "y": d})
    expect = np.mean((a.astype(np.float64) - b) ** 2) + np.mean((c.astype(np.float64) - d) ** 2)
    assert abs(float(got) - expect) < 1e-6


def test_style_loss_hand_computed():
    rng = np.random.default_rng(1)
    f1, f2 = rng.random((1, 4, 4, 3), np.float32), rng.random((1, 2, 2, 5), np.float32)
    t1, t2 = rng.random((1, 3, 3), np.float32), rng.random((1, 5, 5), np.float32)
    got = losses.style_loss({"a": f1, "b": f2}, {"a": t1, "b": t2}, {"a": 0.25, "b": 2.0})
    expect = 0.25 * np.mean((_np_gram(f1) - t1) ** 2) + 2.0 * np.mean((_np_gram(f2) - t2) ** 2)
    assert abs(float(got) - expect) < 1e-6 * max(1, expect)


def test_total_variation_hand_computed():
    x = np.zeros((1, 3, 3, 1), np.float32)
    x[0, 1, 1, 0] = 1.0
    # vertical: 6 pairs, 2 differ by 1 → 2/6; horizontal the same
    assert abs(float(losses.total_variation(jnp.asarray(x))) - 4 / 6) < 1e-7
    assert float(losses.total_variation(jnp.ones((1, 5, 4, 3)))) == 0.0


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_gram_invariant_under_spatial_permutation(h, w, c, seed):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((1, h, w, c)).astype(np.float32)
    perm = rng.permutation(h * w)
    shuffled = f.reshape(1, h * w, c)[:, perm].reshape(1, h, w, c)
    np.testing.assert_allclose(losses.gram(jnp.asarray(shuffled)), losses.gram(jnp.asarray(f)),
                               rtol=1e-5, atol=1e-6)


def test_losses_are_jittable_and_importable():
    from nst_jax.objective.losses import content_loss, gram, style_loss, total_variation  # noqa: F401
    f = jnp.ones((1, 4, 4, 2))
    jitted = jax.jit(lambda a: style_loss({"l": a}, {"l": gram(a)}) + total_variation(a))
    assert float(jitted(f)) == 0.0
