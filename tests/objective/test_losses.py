"""Exact values of the losses on small arrays, and the invariances they promise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nst_jax.objective import losses, statistics

KEY = np.array([0, 3], np.uint32)  # jax.random.PRNGKey(3), made without starting JAX at collection (see conftest)


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


def _unit(g):
    """neural-style's normalisation of a loss module's gradient: g / (‖g‖₁ + 1e-8)."""
    g = np.asarray(g, np.float64)
    return g / (np.abs(g).sum() + 1e-8)


@pytest.mark.parametrize("statistic", ["gram", "mean_std"])    # Statistic.scale 1 and 1.34
def test_normalized_gradients_keep_the_value_and_give_each_layer_term_a_unit_gradient(statistic):
    rng = np.random.default_rng(2)
    stat = statistics.get(statistic)
    feats = {"a": jnp.asarray(rng.random((1, 4, 4, 3), np.float32)),
             "b": jnp.asarray(rng.random((1, 2, 2, 5), np.float32))}
    style = {n: (losses.StyleTarget(1.0, stat.target(jnp.asarray(rng.random((9, f.shape[-1]), np.float32)), KEY)),)
             for n, f in feats.items()}
    content = {"a": jnp.asarray(rng.random((1, 4, 4, 3), np.float32))}
    lw, wc, k = {"a": 0.25, "b": 2.0}, 3.0, 7.0

    def total(f, normalize):
        return (wc * losses.content_loss(f, content, normalize)
                + k * losses.statistic_style_loss(f, style, lw, statistic, KEY, normalize))

    assert float(total(feats, True)) == float(total(feats, False))
    got = jax.grad(total)(feats, True)
    # each term's own, un-normalised gradient (the style terms' include Statistic.scale, which the norm removes)
    g_content = jax.grad(lambda f: losses.content_loss({"a": f}, content))(feats["a"])
    g_style = {n: jax.grad(lambda f, n=n: losses.statistic_style_loss({n: f}, {n: style[n]}, {n: 1.0}, statistic,
                                                                       KEY))(feats[n]) for n in feats}
    expect_a = wc * _unit(g_content) + k * stat.scale * 0.25 * _unit(g_style["a"])
    expect_b = k * stat.scale * 2.0 * _unit(g_style["b"])
    np.testing.assert_allclose(got["a"], expect_a, rtol=1e-5, atol=1e-7 * np.abs(expect_a).max())
    np.testing.assert_allclose(got["b"], expect_b, rtol=1e-5, atol=1e-7 * np.abs(expect_b).max())
    assert np.abs(np.asarray(got["b"], np.float64)).sum() == pytest.approx(k * stat.scale * 2.0, rel=1e-5)
    plain = jax.grad(total)(feats, False)
    assert not np.allclose(plain["b"], got["b"], rtol=0.1)


def test_normalized_gradients_reach_the_image_through_the_network_unnormalised(embedded):
    """Only each term's own gradient is normalised: the features that go on to deeper layers are not, nor TV."""
    rng = np.random.default_rng(3)
    content, style, x = (jnp.asarray(rng.random((1, 16, 16, 3), np.float32)) for _ in range(3))
    spec = losses.ObjectiveSpec(("relu2_1",), ("relu1_1", "relu2_1"), (0.25, 0.75), "max", embedded.preprocessing,
                                normalize_gradients=True)
    params = embedded.params
    targets = losses.compute_targets(params, spec, content, [style])
    lw = losses.LossWeights(jnp.float32(2.0), jnp.float32(50.0), jnp.float32(30.0))
    value, grad = jax.value_and_grad(lambda v: losses.objective(v, params, targets, lw, spec)[0])(x)
    plain = losses.objective(x, params, targets, lw, spec._replace(normalize_gradients=False))[0]
    assert float(value) == float(plain)

    feats, pullback = jax.vjp(lambda v: losses.features(params, v, spec, ("relu1_1", "relu2_1")), x)
    g_content = jax.grad(lambda f: losses.content_loss({"relu2_1": f}, targets.content))(feats["relu2_1"])
    g_style = {n: jax.grad(lambda f, n=n: losses.statistic_style_loss({n: f}, {n: targets.style[n]}, {n: 1.0}))(
        feats[n]) for n in feats}
    cotangent = {"relu1_1": jnp.float32(50.0 * 0.25 * _unit(g_style["relu1_1"])),
                 "relu2_1": jnp.float32(50.0 * 0.75 * _unit(g_style["relu2_1"]) + 2.0 * _unit(g_content))}
    expect = np.asarray(pullback(cotangent)[0]) + 30.0 * np.asarray(jax.grad(losses.total_variation)(x))
    np.testing.assert_allclose(grad, expect, rtol=1e-4, atol=1e-5 * np.abs(expect).max())


def _neural_style_tv_gradients(x):
    """neural-style's TVLoss:updateGradInput (strength 1) on an image (H, W, C), split into its vertical and
    horizontal parts: the gradient of ½·Σ_{i<H−1, j<W−1} [(x_ij − x_i,j+1)² + (x_ij − x_i+1,j)²]."""
    x = np.asarray(x, np.float64)
    x_diff, y_diff = x[:-1, :-1] - x[:-1, 1:], x[:-1, :-1] - x[1:, :-1]
    horizontal, vertical = np.zeros_like(x), np.zeros_like(x)
    horizontal[:-1, :-1] += x_diff
    horizontal[:-1, 1:] -= x_diff
    vertical[:-1, :-1] += y_diff
    vertical[1:, :-1] -= y_diff
    return vertical, horizontal


def test_neural_style_tv_weight_maps_onto_tv_weight():
    """docs/running.md's table: -tv_weight w on 0–255 pixels is --tv-weight w·½·255²·3·(H−1)(W−1); away
    from the last row and column the gradients differ only by (W−1)/W vertically and (H−1)/H horizontally."""
    h, w, w_tv = 24, 40, 1e-3
    x = np.random.default_rng(4).random((h, w, 3)).astype(np.float32)
    mapped = w_tv * 0.5 * 255.0 ** 2 * 3 * (h - 1) * (w - 1)
    got = mapped * np.asarray(jax.grad(losses.total_variation)(jnp.asarray(x[None])), np.float64)[0]
    # neural-style's gradient w.r.t. its pixels (0–255), times 255 for the gradient w.r.t. nst_jax's (0–1)
    vertical, horizontal = (255.0 * w_tv * g for g in _neural_style_tv_gradients(255.0 * x))
    inner = (slice(0, h - 1), slice(0, w - 1))
    expect = (w - 1) / w * vertical + (h - 1) / h * horizontal
    np.testing.assert_allclose(got[inner], expect[inner], rtol=1e-4, atol=1e-5 * np.abs(expect).max())
    neural_style = vertical + horizontal
    assert np.abs(got - neural_style)[inner].max() <= np.abs(neural_style).max() / min(h, w)
    assert not np.allclose(got[-1], neural_style[-1], rtol=0.1)   # the last row and column: neural-style
    assert not np.allclose(got[:, -1], neural_style[:, -1], rtol=0.1)   # leaves out their differences
