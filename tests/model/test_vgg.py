"""The Flax VGG19: names, shapes, depth, pooling, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.model import vgg
from nst_jax.base.errors import NSTError
from nst_jax.model.preprocessing import preprocess


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
    from flax.errors import ScopeParamNotFoundError
    with pytest.raises(ScopeParamNotFoundError, match="conv2_2"):
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



def test_params_upto_keeps_only_what_the_layers_use(embedded):
    sub = vgg.params_upto(embedded.params, ["relu2_1", "conv_2"])
    assert list(sub) == ["conv1_1", "conv1_2", "conv2_1"]
    assert len(vgg.params_upto(embedded.params, ["relu5_1", "relu4_2"])) == 13
