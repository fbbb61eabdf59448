"""Property tests of every style statistic: zero at the target, invariant to spatial permutations,
finite gradients on random, constant and all-zero maps, hand-computed values, Li et al.'s identity."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings, strategies as st

from nst_jax.objective import statistics

KEY = np.array([0, 3], np.uint32)  # jax.random.PRNGKey(3), made without starting JAX at collection (see conftest)


def _features(seed, m=24, c=5, relu=True):
    f = np.random.default_rng(seed).standard_normal((m, c)).astype(np.float32)
    return np.maximum(f, 0) if relu else f


def _loss(name, f, s, key=KEY):
    stat = statistics.get(name)
    return float(stat.loss(jnp.asarray(f), stat.target(jnp.asarray(s), key), key))


@pytest.mark.parametrize("name", statistics.NAMES)
def test_zero_when_features_equal_target(name):
    f = _features(0, relu=False)
    value = _loss(name, f, f)
    scale = max(1.0, abs(_loss(name, f, _features(1, relu=False))))
    assert abs(value) <= 2e-4 * scale, (name, value)
    if name not in ("w2",):  # w2 subtracts traces: zero up to float32 rounding of tr(Σ)
        assert abs(value) <= 1e-5 * scale, (name, value)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(statistics.NAMES), st.integers(0, 2**31 - 1), st.integers(4, 40))
def test_invariant_under_spatial_permutation(name, seed, m):
    f, s = _features(seed, m=m), _features(seed + 1, m=m + 3)
    perm = np.random.default_rng(seed).permutation(m)
    a, b = _loss(name, f, s), _loss(name, f[perm], s)
    assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (name, a, b)


@pytest.mark.parametrize("name", statistics.NAMES)
@pytest.mark.parametrize("kind", ["random", "constant", "zeros"])
def test_gradients_finite(name, kind):
    f = {"random": _features(2), "constant": np.full((24, 5), 0.7, np.float32),
         "zeros": np.zeros((24, 5), np.float32)}[kind]
    s = _features(4)
    stat = statistics.get(name)
    t = stat.target(jnp.asarray(s), KEY)
    g = jax.grad(lambda x: stat.loss(x, t, KEY))(jnp.asarray(f))
    assert np.all(np.isfinite(np.asarray(g))), (name, kind)
    g_t = jax.grad(lambda x: stat.loss(jnp.asarray(s), stat.target(x, KEY), KEY))(jnp.asarray(f)) \
        if name in ("gram", "mean_std", "covariance") else None
    assert g_t is None or np.all(np.isfinite(np.asarray(g_t)))


def test_hand_computed_values():
    f = _features(5, m=6, c=3, relu=False).astype(np.float64)  # no ties: ranks are unique
    s = _features(6, m=6, c=3, relu=False).astype(np.float64)
    m, c = f.shape
    gram = lambda x: x.T @ x / (c * m)
    assert _loss("gram", f, s) == pytest.approx(np.mean((gram(f) - gram(s)) ** 2), rel=1e-5)
    mu_f, mu_s = f.mean(0), s.mean(0)
    sd = lambda x: np.sqrt(x.var(0) + 1e-5)
    assert _loss("mean_std", f, s) == pytest.approx(np.mean((mu_f - mu_s) ** 2 + (sd(f) - sd(s)) ** 2), rel=1e-5)
    cg = lambda x: (x - x.mean(0)).T @ (x - x.mean(0)) / (c * m)
    assert _loss("covariance", f, s) == pytest.approx(np.mean((cg(f) - cg(s)) ** 2), rel=1e-5)
    assert _loss("mmd-linear", f, s) == pytest.approx(np.sum((mu_f - mu_s) ** 2), rel=1e-5)
    # histogram: matching f to itself sorted the other way is exact; to s gives s's values by rank
    matched = np.asarray(statistics.histogram_match(jnp.asarray(f), jnp.sort(jnp.asarray(s), axis=0)))
    for ch in range(c):
        np.testing.assert_allclose(matched[np.argsort(f[:, ch]), ch], np.sort(s[:, ch]), rtol=1e-6)
    assert _loss("histogram", f, s) == pytest.approx(np.mean((f - matched) ** 2), rel=1e-5)
    # sliced Wasserstein with the same directions
    v = np.asarray(statistics.random_directions(KEY, c), np.float64)
    expect = np.mean((np.sort(f @ v, axis=0) - np.sort(s @ v, axis=0)) ** 2)
    assert _loss("sliced_wasserstein", f, s) == pytest.approx(expect, rel=1e-4)


def test_gram_is_polynomial_mmd():
    """Li et al. 2017: ‖FFᵀ − SSᵀ‖²_F = M²·MMD² with k(x, y) = (xᵀy)² (same M)."""
    f, s = _features(7, m=10, c=4).astype(np.float64), _features(8, m=10, c=4).astype(np.float64)
    m = f.shape[0]
    k = lambda a, b: (a @ b.T) ** 2
    mmd2 = (k(f, f).sum() + k(s, s).sum() - 2 * k(f, s).sum()) / m ** 2
    lhs = np.sum((f.T @ f - s.T @ s) ** 2)
    assert lhs == pytest.approx(m ** 2 * mmd2, rel=1e-9)
    assert _loss("mmd-poly", f, s) == pytest.approx(mmd2, rel=1e-5)


def test_mmd_gauss_approximates_exact_kernel():
    f, s = _features(9, m=200, c=3), _features(10, m=200, c=3) + 0.5
    sigma2 = float(statistics.gauss_bandwidth(jnp.asarray(s)))
    k = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * sigma2))
    exact = k(f, f).mean() + k(s, s).mean() - 2 * k(f, s).mean()
    approx = np.mean([_loss("mmd-gauss", f, s, jax.random.PRNGKey(i)) for i in range(8)])
    assert approx == pytest.approx(exact, rel=0.25)


def test_w2_matches_scipy_sqrtm():
    rng = np.random.default_rng(11)
    for trial in range(5):
        c = 6
        a = rng.standard_normal((c, c))
        b = rng.standard_normal((c, c))
        cov1, cov2 = a @ a.T + 0.5 * np.eye(c), b @ b.T + 0.5 * np.eye(c)
        mu1, mu2 = rng.standard_normal(c), rng.standard_normal(c)
        r = scipy.linalg.sqrtm(cov2).real
        expect = np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * scipy.linalg.sqrtm(r @ cov1 @ r).real)
        got = float(statistics.w2_distance(*(jnp.asarray(v, jnp.float32) for v in (mu1, cov1, mu2, cov2))))
        assert got == pytest.approx(expect, rel=1e-4)


def test_trace_sqrtm_gradient_is_half_inverse_root():
    rng = np.random.default_rng(12)
    a = rng.standard_normal((5, 5))
    spd = a @ a.T + np.eye(5)
    g = np.asarray(jax.grad(statistics.trace_sqrtm)(jnp.asarray(spd, jnp.float32)))
    np.testing.assert_allclose(g, 0.5 * np.linalg.inv(scipy.linalg.sqrtm(spd).real), rtol=2e-3, atol=1e-5)


def test_unknown_statistic():
    with pytest.raises(ValueError, match="mean_std"):
        statistics.get("nope")


def test_gram_gradient_equals_autodiff_of_the_product():
    """gram_matrix's custom VJP (F(Ḡ + Ḡᵀ), one product) equals autodiff of FᵀF/(C·M)."""
    f = jnp.asarray(_features(11, m=30, c=6, relu=False))
    g = jax.random.normal(KEY, (6, 6))
    ours = jax.vjp(statistics.gram_matrix, f)[1](g)[0]
    ref = jax.vjp(lambda f: f.T @ f / f.size, f)[1](g)[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_gram_reads_features_without_a_transposed_copy():
    """The Gram style loss's value+grad, as the objective computes it (vmapped over the batch, after a
    convolution and a ReLU), compiles to no transposed (C, M) copy of the features: written as
    `fᵀ @ f`, XLA-CPU wrote one for every style layer."""
    from nst_jax.machine import compiler
    from nst_jax.model import layers
    from nst_jax.objective import losses

    c, hw = 16, 32
    k = jnp.asarray(np.random.default_rng(0).standard_normal((3, 3, 3, c)), jnp.float32)
    stat = statistics.get("gram")
    s = jnp.asarray(_features(3, m=hw * hw, c=c))
    targets = {"relu1_1": (losses.StyleTarget(1.0, stat.target(s, KEY)),)}

    def loss(x):
        f = jax.nn.relu(layers.xla_conv(x, k) + 0.1)
        return losses.statistic_style_loss({"relu1_1": f}, targets, {"relu1_1": 1.0}, "gram", KEY)

    x = jnp.ones((1, hw, hw, 3))
    hlo = compiler.jit(jax.value_and_grad(loss)).lower(x).compile().as_text()
    assert not re.search(rf"f32\[(1,)?{c},{hw * hw}\]", hlo)
