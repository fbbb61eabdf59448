"""The layer functions: custom VJPs equal XLA's autodiff, Winograd's form equals the convolution,
pooling ties, and prepared parameters change nothing but speed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.model import layers, vgg, winograd


def _lax_conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("cin", [3, 8])
def test_conv3x3_gradients_equal_autodiff(cin):
    """The custom VJP (precomputed backward kernel; matrix product + shifted adds for RGB input) gives
    XLA's autodiff gradients for the input and the kernel."""
    kx, kk, kg = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (2, 9, 7, cin))
    k = jax.random.normal(kk, (3, 3, cin, 5))
    g = jax.random.normal(kg, (2, 9, 7, 5))
    ours = jax.vjp(lambda x, k: layers.conv3x3(x, k, layers.backward_kernel(k)), x, k)
    ref = jax.vjp(_lax_conv, x, k)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-6, atol=1e-5)
    for a, b in zip(ours[1](g), ref[1](g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", [(1, 6, 8, 3), (2, 7, 9, 4)])
def test_max_pool_matches_reduce_window_and_its_gradient(shape):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    ref = lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(layers.max_pool2(x), ref(x))
    g = jax.random.normal(jax.random.PRNGKey(2), layers.max_pool2(x).shape)
    np.testing.assert_array_equal(jax.vjp(layers.max_pool2, x)[1](g)[0], jax.vjp(ref, x)[1](g)[0])


def test_max_pool_gradient_goes_to_first_maximum_on_ties():
    x = jnp.array([[1.0, 1.0], [1.0, 0.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(jax.grad(lambda x: layers.max_pool2(x).sum())(x).reshape(2, 2), [[1, 0], [0, 0]])
    x = jnp.array([[0.0, 2.0], [2.0, 2.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(jax.grad(lambda x: layers.max_pool2(x).sum())(x).reshape(2, 2), [[0, 1], [0, 0]])


@pytest.mark.parametrize("form", ["f2", "f4"])
def test_prepared_params_change_only_speed(embedded, form):
    """prepare_params only saves work: the same activations and image gradients (to float rounding
    where Winograd's form sums in another order), on even sizes and odd ones (where F(2×2) gives way
    to XLA's convolution and F(4×4) pads its last tiles)."""
    params = jax.tree.map(jnp.asarray, embedded.params)
    params = {k: v for k, v in params.items() if vgg.depth_index(k) <= vgg.depth_index("relu3_1")}
    forms = {name: (form, form) for name in params if name != "conv1_1"}
    fast = layers.prepare_params(params, forms)
    positions = {"f2": 16, "f4": 36}[form]
    for name, p in fast.items():
        k = params[name]["kernel"]
        assert p["kernel_bwd"].shape == (3, 3, k.shape[3], k.shape[2])
        assert ("kernel_wino" in p) == (name != "conv1_1")
        if name != "conv1_1":
            assert p["kernel_wino"].form == p["kernel_wino_bwd"].form == form
            assert p["kernel_wino"].u.shape == (positions, k.shape[2], k.shape[3])
            assert p["kernel_wino_bwd"].u.shape == (positions, k.shape[3], k.shape[2])
    assert "kernel_wino" not in layers.prepare_params(params)["conv3_1"]            # no forms: XLA's
    assert "kernel_wino" not in layers.prepare_params(params, forms, jnp.bfloat16)["conv3_1"]
    loss = lambda x, p: sum(jnp.sum(jnp.sin(v)) for v in vgg.features(p, x, ["relu3_1", "relu2_1"]).values())
    vg = jax.jit(jax.value_and_grad(loss))
    for shape in [(1, 48, 48, 3), (1, 50, 46, 3)][: 2 if form == "f4" else 1]:
        x = jax.random.uniform(jax.random.PRNGKey(3), shape)
        v1, g1 = vg(x, params)
        v2, g2 = vg(x, fast)
        np.testing.assert_allclose(float(v2), float(v1), rtol=1e-5)
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(g1))))


@pytest.mark.parametrize("form, shape", [("f2", (1, 32, 32, 16)), ("f2", (2, 32, 40, 8)), ("f4", (1, 32, 32, 16)),
                                         ("f4", (2, 33, 21, 8)), ("f4", (1, 5, 7, 4)), ("f4", (1, 1, 1, 3))])
def test_winograd_forms_equal_the_convolution_both_ways(form, shape):
    """Forward and VJP (input and kernel cotangents) against XLA's convolution, odd sizes included."""
    kx, kk, kg = jax.random.split(jax.random.PRNGKey(4), 3)
    x = jax.random.normal(kx, shape)
    k = jax.random.normal(kk, (3, 3, shape[-1], 5))
    kb = layers.backward_kernel(k)
    u, ub = layers.transformed(form, k), layers.transformed(form, kb)
    assert u.form == form and layers.FORMS[form].applies(x.shape)
    ours = jax.jit(lambda x, k: jax.vjp(lambda x, k: layers.conv3x3(x, k, kb, u, ub), x, k))(x, k)
    ref = jax.jit(lambda x, k: jax.vjp(_lax_conv, x, k))(x, k)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(ref[0]))))
    g = jax.random.normal(kg, ref[0].shape)
    for a, b in zip(ours[1](g), ref[1](g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b))))


def test_f2_with_bfloat16_products_is_f2_rounded_to_bfloat16_both_ways():
    """'f2b': the same tiles with bfloat16 products, so it is near the direct convolution (bfloat16's
    rounding, ~4e-3 relative) but not equal to it, forward and input gradient; odd sizes give way to
    XLA's convolution exactly."""
    kx, kk, kg = jax.random.split(jax.random.PRNGKey(7), 3)
    x = jax.random.normal(kx, (1, 16, 20, 32))
    k = jax.random.normal(kk, (3, 3, 32, 24))
    kb = layers.backward_kernel(k)
    u, ub = layers.transformed("f2b", k), layers.transformed("f2b", kb)
    assert u.u.dtype == jnp.bfloat16 and u.form == "f2b" and layers.FORMS["f2b"].applies(x.shape)
    y, vjp = jax.vjp(lambda x: layers.conv3x3(x, k, kb, u, ub), x)
    ref, ref_vjp = jax.vjp(lambda x: _lax_conv(x, k), x)
    g = jax.random.normal(kg, ref.shape)
    rel = lambda a, b: float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))
    assert y.dtype == jnp.float32 and 1e-4 < rel(y, ref) < 1e-2
    assert 1e-4 < rel(vjp(g)[0], ref_vjp(g)[0]) < 1e-2
    odd = jax.random.normal(kx, (1, 15, 20, 32))
    np.testing.assert_array_equal(layers.conv3x3(odd, k, kb, u, ub), layers.xla_conv(odd, k))


def test_f2_gives_way_on_odd_sizes():
    assert layers.FORMS["f4"].applies((1, 33, 21, 8)) and not layers.FORMS["f2"].applies((1, 33, 32, 8))
    k = jax.random.normal(jax.random.PRNGKey(5), (3, 3, 8, 4))
    x = jax.random.normal(jax.random.PRNGKey(6), (1, 33, 32, 8))
    np.testing.assert_allclose(layers.conv3x3(x, k, layers.backward_kernel(k), layers.transformed("f2", k)),
                               _lax_conv(x, k), rtol=1e-5, atol=1e-5)


def test_the_winograd_matrices_are_the_papers():
    """F(4×4, 3×3) with points 0, ±1, ±2, ∞: Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A is the 6→4 correlation, exactly."""
    bt, g, at = np.array(winograd._BT4, float), winograd._G4, np.array(winograd._AT4, float)
    d, k = np.random.default_rng(0).standard_normal(6), np.random.default_rng(1).standard_normal(3)
    direct = np.array([d[i:i + 3] @ k for i in range(4)])
    np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), direct, rtol=1e-12, atol=1e-12)
