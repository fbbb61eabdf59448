"""The Flax VGG19: names, shapes, depth, pooling, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import vgg
from nst_jax.errors import NSTError
from nst_jax.weights import preprocess


def test_layer_tables():
    assert len(vgg.CONV_NAMES) == 16
    assert len(vgg.LAYER_NAMES) == 16 * 2 + 5
    assert vgg.LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert vgg.resolve("conv_1") == "conv1_1"
    assert vgg.resolve("conv_4") == "conv2_2"
    assert vgg.resolve("relu_9") == "relu4_1"
    assert vgg.resolve("conv_16") == "conv5_4"
    assert vgg.resolve("pool_3") == "pool3"
    assert vgg.resolve("relu4_2") == "relu4_2"


def test_unknown_name_lists_valid_names():
    with pytest.raises(NSTError) as err:
        vgg.resolve("relu6_1")
    msg = str(err.value)
    assert "relu6_1" in msg and "conv1_1" in msg and "pool_5" in msg and "\n" not in msg


def test_both_schemes_same_tensors(embedded):
    x = preprocess(jax.random.uniform(jax.random.PRNGKey(0), (1, 32, 32, 3)), embedded.preprocessing)
    pairs = [(b, s) for b, s, _ in vgg.LAYERS]
    out = vgg.features(embedded.params, x, [b for b, _ in pairs] + [s for _, s in pairs])
    for b, s in pairs:
        np.testing.assert_array_equal(out[b], out[s])
        assert out[b].shape[1:] == vgg.feature_shape(b, 32, 32)


def test_computes_no_deeper_than_needed(embedded):
    """With only the params up to conv2_1, asking for relu2_1 works: deeper layers are never built."""
    params = {k: embedded.params[k] for k in ("conv1_1", "conv1_2", "conv2_1")}
    x = jnp.zeros((1, 16, 16, 3))
    out = vgg.features(params, x, ["relu2_1", "conv_1"])
    assert set(out) == {"relu2_1", "conv_1"}
    with pytest.raises(Exception):
        vgg.features(params, x, ["relu2_2"])


def test_pooling_avg_and_max_differ(embedded):
    x = preprocess(jax.random.uniform(jax.random.PRNGKey(1), (1, 16, 16, 3)), embedded.preprocessing)
    m = vgg.features(embedded.params, x, ["pool1"], "max")["pool1"]
    a = vgg.features(embedded.params, x, ["pool1"], "avg")["pool1"]
    r = vgg.features(embedded.params, x, ["relu1_2"])["relu1_2"]
    np.testing.assert_allclose(a, r.reshape(1, 8, 2, 8, 2, 64).mean(axis=(2, 4)), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(m, r.reshape(1, 8, 2, 8, 2, 64).max(axis=(2, 4)), rtol=1e-6)


def test_min_input_side():
    assert vgg.min_input_side(["relu1_1"]) == 1
    assert vgg.min_input_side(["relu5_1"]) == 16
    assert vgg.min_input_side(["pool5"]) == 32
    assert vgg.feature_shape("relu4_2", 100, 60) == (12, 7, 512)


def test_param_shapes_match_flax_init():
    model = vgg.VGG19()
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), ["pool5"]))
    got = {k: {n: tuple(v.shape) for n, v in d.items()} for k, d in shapes["params"].items()}
    assert got == vgg.param_shapes()


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
    ours = jax.vjp(lambda x, k: vgg.conv3x3(x, k, vgg.backward_kernel(k)), x, k)
    ref = jax.vjp(_lax_conv, x, k)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-6, atol=1e-5)
    for a, b in zip(ours[1](g), ref[1](g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", [(1, 6, 8, 3), (2, 7, 9, 4)])
def test_max_pool_matches_reduce_window_and_its_gradient(shape):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    ref = lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(vgg.max_pool2(x), ref(x))
    g = jax.random.normal(jax.random.PRNGKey(2), vgg.max_pool2(x).shape)
    np.testing.assert_array_equal(jax.vjp(vgg.max_pool2, x)[1](g)[0], jax.vjp(ref, x)[1](g)[0])


def test_max_pool_gradient_goes_to_first_maximum_on_ties():
    x = jnp.array([[1.0, 1.0], [1.0, 0.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(jax.grad(lambda x: vgg.max_pool2(x).sum())(x).reshape(2, 2), [[1, 0], [0, 0]])
    x = jnp.array([[0.0, 2.0], [2.0, 2.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(jax.grad(lambda x: vgg.max_pool2(x).sum())(x).reshape(2, 2), [[0, 1], [0, 0]])


def test_precomputed_backward_kernels_change_nothing(embedded):
    """with_backward_kernels only saves work: same activations, same image gradient."""
    params = jax.tree.map(jnp.asarray, embedded.params)
    fast = vgg.with_backward_kernels(params)
    assert all(fast[n]["kernel_bwd"].shape == params[n]["kernel"].shape[:2] + params[n]["kernel"].shape[:1:-1]
               for n in params)
    x = jax.random.uniform(jax.random.PRNGKey(3), (1, 20, 24, 3))
    loss = lambda x, p: sum(jnp.sum(jnp.sin(v)) for v in vgg.features(p, x, ["relu3_1", "pool2"]).values())
    v1, g1 = jax.value_and_grad(loss)(x, params)
    v2, g2 = jax.value_and_grad(loss)(x, fast)
    assert float(v1) == float(v2)
    np.testing.assert_array_equal(g1, g2)
