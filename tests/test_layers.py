"""The layer functions: custom VJPs equal XLA's autodiff, Winograd's form equals the convolution,
pooling ties, and prepared parameters change nothing but speed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import layers, vgg


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


def test_prepared_params_change_only_speed(embedded):
    """prepare_params only saves work: the same activations and image gradients (to float rounding
    where Winograd's form sums in another order), at sizes that use it and sizes that do not."""
    params = jax.tree.map(jnp.asarray, embedded.params)
    fast = layers.prepare_params(params, winograd=True)
    for name, p in fast.items():
        k = params[name]["kernel"]
        assert p["kernel_bwd"].shape == (3, 3, k.shape[3], k.shape[2])
        assert ("kernel_wino" in p) == (k.shape[2] >= layers.WINOGRAD_MIN_CHANNELS)
    assert "kernel_wino" not in layers.prepare_params(params, winograd=False)["conv4_2"]
    loss = lambda x, p: sum(jnp.sum(jnp.sin(v)) for v in vgg.features(p, x, ["relu5_1", "relu3_1"]).values())
    vg = jax.jit(jax.value_and_grad(loss))
    for shape in [(1, 64, 64, 3), (1, 66, 64, 3)]:  # conv2_2 on 32×32 (Winograd's form) / on 33×32 (not)
        x = jax.random.uniform(jax.random.PRNGKey(3), shape)
        v1, g1 = vg(x, params)
        v2, g2 = vg(x, fast)
        np.testing.assert_allclose(float(v2), float(v1), rtol=1e-5)
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(g1))))


@pytest.mark.parametrize("shape", [(1, 32, 32, 16), (2, 32, 40, 8)])
def test_winograd_form_equals_the_convolution_both_ways(shape):
    kx, kk, kg = jax.random.split(jax.random.PRNGKey(4), 3)
    x = jax.random.normal(kx, shape)
    k = jax.random.normal(kk, (3, 3, shape[-1], 5))
    kb = layers.backward_kernel(k)
    u, ub = layers.winograd_kernel(k), layers.winograd_kernel(kb)
    assert layers.use_winograd(x.shape, u)
    assert not any(layers.use_winograd(s, u) for s in [(1, 33, 32, 16), (1, 16, 16, 16), (1, 128, 128, 16)])
    ours = jax.jit(lambda x, k: jax.vjp(lambda x, k: layers.conv3x3(x, k, kb, u, ub), x, k))(x, k)
    ref = jax.jit(lambda x, k: jax.vjp(_lax_conv, x, k))(x, k)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(ref[0]))))
    g = jax.random.normal(kg, ref[0].shape)
    for a, b in zip(ours[1](g), ref[1](g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b))))
