"""VGG19's layer table and geometry, in pure Python: both naming schemes, positions, the poolings before
a layer, feature shapes at odd sizes (pooling floors), the smallest input a set of layers takes."""

import pytest

from nst_jax.base.errors import NSTError
from nst_jax.model import vgg_layers as vgg


def test_the_table_is_configuration_e_in_both_naming_schemes():
    assert len(vgg.CONV_NAMES) == 16 and len(vgg.LAYER_NAMES) == 16 * 2 + 5
    assert vgg.LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert vgg.LAYER_NAMES[-3:] == ("conv5_4", "relu5_4", "pool5")
    assert vgg.SEQUENTIAL_NAMES[:5] == ("conv_1", "relu_1", "conv_2", "relu_2", "pool_1")
    assert vgg.SEQUENTIAL_NAMES[-3:] == ("conv_16", "relu_16", "pool_5")
    assert [n for n in vgg.LAYER_NAMES if n.startswith("pool")] == [f"pool{i}" for i in range(1, 6)]
    assert [n for n in vgg.CONV_NAMES if n.startswith("conv3_")] == ["conv3_1", "conv3_2", "conv3_3", "conv3_4"]


@pytest.mark.parametrize("name, block", [("relu_10", "relu4_2"), ("conv_4", "conv2_2"), ("pool_3", "pool3"),
                                         ("conv_16", "conv5_4"), (" relu4_2 ", "relu4_2"), ("relu1_1", "relu1_1")])
def test_resolve_gives_the_block_name_from_either_scheme(name, block):
    assert vgg.resolve(name) == block


@pytest.mark.parametrize("bad", ["relu6_1", "conv_17", "", "RELU1_1", None, 3])
def test_resolve_of_an_unknown_name_lists_the_valid_names(bad):
    with pytest.raises(NSTError) as err:
        vgg.resolve(bad)
    text = str(err.value)
    assert text.startswith(f"unknown layer name {bad!r}; valid names are conv1_1, relu1_1")
    assert "pool5 or conv_1" in text and text.endswith("pool_5")


def test_resolve_all_keeps_order_and_drops_duplicates_across_schemes():
    assert vgg.resolve_all(["relu_10", "relu1_1", "relu4_2", "conv_1", "conv1_1"]) == ("relu4_2", "relu1_1", "conv1_1")
    assert vgg.resolve_all([]) == ()
    with pytest.raises(NSTError, match="unknown layer name 'relu9'"):
        vgg.resolve_all(["relu1_1", "relu9"])


def test_depth_index_and_pools_before():
    assert vgg.depth_index("conv1_1") == 0 and vgg.depth_index("relu_1") == 1
    assert vgg.depth_index("pool1") == 4 and vgg.depth_index("pool5") == len(vgg.LAYER_NAMES) - 1
    assert vgg.depth_index("relu4_2") == vgg.depth_index("relu_10") == vgg.LAYER_NAMES.index("relu4_2")
    # a pool's own output is after it: pool1 counts 1
    expected = {"conv1_1": 0, "relu1_2": 0, "pool1": 1, "conv2_1": 1, "relu3_1": 2, "relu4_2": 3,
                "relu5_1": 4, "relu5_4": 4, "pool5": 5}
    assert {n: vgg.pools_before(n) for n in expected} == expected


def test_min_input_side_is_two_to_the_deepest_pooling():
    assert vgg.min_input_side([]) == 1
    assert vgg.min_input_side(["relu1_1"]) == 1
    assert vgg.min_input_side(["relu1_1", "relu3_1"]) == 4
    assert vgg.min_input_side(["relu4_2", "conv_1"]) == 8
    assert vgg.min_input_side(["relu5_1"]) == 16 and vgg.min_input_side(["pool5"]) == 32


@pytest.mark.parametrize("name, h, w, shape", [
    ("relu1_1", 37, 23, (37, 23, 64)),
    ("pool1", 37, 23, (18, 11, 64)),        # floors, as PyTorch and Caffe
    ("relu2_1", 37, 23, (18, 11, 128)),
    ("relu3_1", 37, 23, (9, 5, 256)),
    ("relu4_2", 37, 23, (4, 2, 512)),
    ("relu5_1", 37, 23, (2, 1, 512)),
    ("pool5", 37, 23, (1, 0, 512)),          # 23 px wide does not reach pool5's output
    ("relu_10", 48, 64, (6, 8, 512)),
])
def test_feature_shape_at_odd_sizes(name, h, w, shape):
    assert vgg.feature_shape(name, h, w) == shape


def test_feature_shape_reads_the_widths_given():
    widths = tuple(range(1, 17))
    assert vgg.feature_shape("conv3_2", 16, 16, widths) == (4, 4, 6)
    assert vgg.feature_shape("pool2", 16, 16, widths) == (4, 4, 4)


def test_min_input_side_is_the_smallest_side_with_one_feature_left():
    for layers in (["relu1_1"], ["relu2_1"], ["relu3_1", "relu1_1"], ["relu4_2"], ["relu5_1"], ["pool5"]):
        side = vgg.min_input_side(layers)
        deepest = max(layers, key=vgg.depth_index)
        assert min(vgg.feature_shape(deepest, side, side)[:2]) == 1
        if side > 1:
            assert min(vgg.feature_shape(deepest, side - 1, side - 1)[:2]) == 0


def test_param_shapes_chain_the_channels():
    shapes = vgg.param_shapes()
    assert list(shapes) == list(vgg.CONV_NAMES)
    assert shapes["conv1_1"] == {"kernel": (3, 3, 3, 64), "bias": (64,)}
    assert shapes["conv3_1"]["kernel"] == (3, 3, 128, 256)
    assert shapes["conv5_4"]["kernel"] == (3, 3, 512, 512)
    names = list(shapes)
    for a, b in zip(names, names[1:]):
        assert shapes[a]["kernel"][3] == shapes[b]["kernel"][2]
    small = vgg.param_shapes(tuple(range(1, 17)))
    assert small["conv1_2"]["kernel"] == (3, 3, 1, 2) and small["conv5_4"]["bias"] == (16,)


def test_it_imports_no_numerical_library():
    """The command line reads the layers before JAX is loaded."""
    import subprocess
    import sys
    from conftest import python_env
    code = "import sys, nst_jax.model.vgg_layers; print(sorted(m for m in ('jax', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
