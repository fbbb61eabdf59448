"""What a run reads from disk: the content at --size on its longer side, the styles at --style-scale ×
that, masks checked against their own image's size, an --init file at the content's size, the check that
every image reaches its deepest layer, and the initial image of every --init."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import small_cfg
from nst_jax.base.errors import NSTError
from nst_jax.files import image
from nst_jax.model.preprocessing import Preprocessing, mean_rgb
from nst_jax.transfer import inputs
from nst_jax.transfer.inputs import as_variable, check_sizes, initial_image, load_inputs

CAFFE = Preprocessing("BGR", 255.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0))


def _png(path, w, h, seed=0, grey=False):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w) if grey else (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return str(path)


@pytest.fixture
def pics(tmp_path):
    """A 40×30 content, a 64×64 style and a 60×20 style, as PNG files."""
    return {"content": _png(tmp_path / "content.png", 40, 30, 1), "style": _png(tmp_path / "style.png", 64, 64, 2),
            "wide": _png(tmp_path / "wide.png", 60, 20, 3), "dir": tmp_path}


def _cfg(pics, **kw):
    values = dict(content=pics["content"], styles=(pics["style"],), size=32)
    values.update(kw)
    return small_cfg(pics["dir"] / "out.png", **values)


def test_the_content_is_resized_to_size_on_its_longer_side(pics):
    got = load_inputs(_cfg(pics))
    assert got.content.shape == (24, 32, 3) and got.content.dtype == np.float32
    assert got.content_shape == (30, 40)                         # the size before resizing, for the header
    np.testing.assert_array_equal(got.content, image.resize(image.load_image(pics["content"]), (24, 32)))
    assert (got.content_masks, got.style_masks, got.init_image, got.temporal) == (None, None, None, None)


def test_styles_are_resized_to_style_scale_times_that_size_keeping_their_aspect(pics):
    got = load_inputs(_cfg(pics, styles=(pics["style"], pics["wide"])))
    assert [s.shape for s in got.styles] == [(32, 32, 3), (11, 32, 3)]      # 20·32/60 = 10.7
    half = load_inputs(_cfg(pics, styles=(pics["style"], pics["wide"]), style_scale=0.5))
    assert [s.shape for s in half.styles] == [(16, 16, 3), (5, 16, 3)]
    assert load_inputs(_cfg(pics, style_scale=2.0)).styles[0].shape == (64, 64, 3)   # upscaled too


def test_masks_are_grey_values_at_the_content_and_style_sizes(pics):
    d = pics["dir"]
    left = np.zeros((30, 40), np.uint8)
    left[:, :20] = 255
    Image.fromarray(left).save(d / "left.png")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(d / "all.png")
    got = load_inputs(_cfg(pics, content_masks=(str(d / "left.png"),), style_masks=(str(d / "all.png"),)))
    (cm,), (sm,) = got.content_masks, got.style_masks
    assert cm.shape == (24, 32) and sm.shape == (32, 32)
    assert cm.min() >= -0.05 and cm.max() <= 1.05
    assert cm[:, :14].mean() > 0.95 and cm[:, 18:].mean() < 0.05      # white on the left, black on the right
    np.testing.assert_allclose(sm, 1.0, atol=1e-5)
    only_content = load_inputs(_cfg(pics, content_masks=(str(d / "left.png"),)))
    assert only_content.style_masks is None and only_content.content_masks[0].shape == (24, 32)


def test_a_content_mask_of_another_size_than_the_content_image_is_refused(pics):
    mask = _png(pics["dir"] / "small_mask.png", 20, 10, grey=True)
    with pytest.raises(NSTError) as err:
        load_inputs(_cfg(pics, content_masks=(mask,)))
    assert str(err.value) == (f"mask {mask}: 20×10 px, but its image {pics['content']} is 40×30 px; "
                              f"masks must have their image's size")


def test_a_style_mask_is_checked_against_its_own_style_image(pics):
    content_mask = _png(pics["dir"] / "cm.png", 40, 30, grey=True)
    style_mask = _png(pics["dir"] / "sm.png", 40, 30, grey=True)      # the content's size, not the style's
    with pytest.raises(NSTError, match=r"mask .*sm\.png: 40×30 px, but its image .*style\.png is 64×64 px"):
        load_inputs(_cfg(pics, content_masks=(content_mask,), style_masks=(style_mask,)))


def test_an_init_file_is_read_at_the_contents_size(pics):
    got = load_inputs(_cfg(pics, init=pics["wide"]))
    assert got.init_image.shape == (24, 32, 3)
    np.testing.assert_array_equal(got.init_image, image.resize(image.load_image(pics["wide"]), (24, 32)))
    assert load_inputs(_cfg(pics, init="noise")).init_image is None


def test_a_content_too_small_for_its_deepest_layer_says_what_to_change(pics):
    cfg = _cfg(pics)
    content = np.zeros((3, 4, 3), np.float32)
    with pytest.raises(NSTError) as err:
        check_sizes(cfg, content, [np.zeros((32, 32, 3), np.float32)])
    assert str(err.value) == (f"content image {pics['content']}: 4×3 px after resizing is too small for layer "
                              f"relu3_2 (needs at least 4 px per side); raise --size or --style-scale, or use "
                              f"shallower layers")
    check_sizes(cfg, np.zeros((4, 4, 3), np.float32), [np.zeros((4, 4, 3), np.float32)])   # just enough


def test_a_style_is_checked_against_the_style_layers_only(pics):
    cfg = _cfg(pics, content_layers=("relu1_1",), style_layers=("relu1_1", "relu2_1"))
    check_sizes(cfg, np.zeros((2, 2, 3), np.float32), [np.zeros((2, 9, 3), np.float32)])
    with pytest.raises(NSTError, match=rf"style image {pics['style']}: 9×1 px after resizing is too small for "
                                       rf"layer relu2_1 \(needs at least 2 px"):
        check_sizes(cfg, np.zeros((2, 2, 3), np.float32), [np.zeros((1, 9, 3), np.float32)])


def test_load_inputs_checks_the_sizes_after_resizing(pics):
    with pytest.raises(NSTError, match=r"style image .*style\.png: 3×3 px after resizing"):
        load_inputs(_cfg(pics, style_scale=0.1))       # 32 × 0.1 → 3 px: under relu3_1's 4


CONTENT = np.linspace(0, 1, 4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
STYLE = np.linspace(1, 0, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)


@pytest.mark.parametrize("init", ["white", "black", "content", "mean"])
def test_the_fixed_initial_images(pics, init):
    x0 = initial_image(_cfg(pics, init=init), CONTENT, [STYLE], CAFFE)
    assert x0.shape == CONTENT.shape and x0.dtype == np.float32
    expected = {"white": np.ones_like(CONTENT), "black": np.zeros_like(CONTENT), "content": CONTENT,
                "mean": np.broadcast_to(np.array([123.68, 116.779, 103.939], np.float32) / 255, CONTENT.shape)}[init]
    np.testing.assert_allclose(x0, expected, rtol=1e-6)
    if init == "content":
        assert x0 is not CONTENT and not np.shares_memory(x0, CONTENT)   # the run may write into its copy


def test_noise_is_uniform_in_the_unit_range_and_follows_the_seed(pics):
    a = initial_image(_cfg(pics, init="noise", seed=1), CONTENT, [STYLE], CAFFE)
    b = initial_image(_cfg(pics, init="noise", seed=1), CONTENT, [STYLE], CAFFE)
    c = initial_image(_cfg(pics, init="noise", seed=2), CONTENT, [STYLE], CAFFE)
    assert a.shape == CONTENT.shape and a.min() >= 0 and a.max() < 1 and a.std() > 0.1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_style_and_average_start_from_the_first_style_at_the_contents_size(pics):
    style0 = image.resize(STYLE, (4, 6))
    s = initial_image(_cfg(pics, init="style"), CONTENT, [STYLE, CONTENT], CAFFE)
    np.testing.assert_array_equal(s, style0)
    avg = initial_image(_cfg(pics, init="average"), CONTENT, [STYLE], CAFFE)
    np.testing.assert_allclose(avg, 0.5 * (CONTENT + style0), rtol=1e-6)


def test_an_init_file_is_the_initial_image(pics):
    given = np.full((4, 6, 3), 0.25, np.float32)
    x0 = initial_image(_cfg(pics, init=pics["wide"]), CONTENT, [STYLE], CAFFE, given)
    np.testing.assert_array_equal(x0, given)


def test_a_luminance_run_starts_from_one_channel(pics):
    """With --original-colors luminance the variable is the luminance (H, W, 1): every init gives one channel."""
    content_y = image.rgb_to_yiq(CONTENT)[..., :1]
    style_y = image.rgb_to_yiq(STYLE)[..., :1]
    mean = initial_image(_cfg(pics, init="mean"), content_y, [style_y], CAFFE)
    assert mean.shape == (4, 6, 1)
    np.testing.assert_allclose(mean[0, 0], image.rgb_to_yiq(mean_rgb(CAFFE))[:1], rtol=1e-6)
    style = initial_image(_cfg(pics, init="style"), content_y, [style_y], CAFFE)
    assert style.shape == (4, 6, 1)
    np.testing.assert_allclose(style[..., 0], image.resize(np.repeat(style_y, 3, -1), (4, 6))[..., 0], rtol=1e-6)
    filed = initial_image(_cfg(pics, init=pics["wide"]), content_y, [style_y], CAFFE, CONTENT)
    np.testing.assert_allclose(filed, content_y, rtol=1e-6)
    assert initial_image(_cfg(pics, init="white"), content_y, [style_y], CAFFE).shape == (4, 6, 1)


def test_as_variable_keeps_rgb_or_takes_the_luminance():
    assert as_variable(CONTENT, 3) is CONTENT
    y = as_variable(CONTENT, 1)
    np.testing.assert_allclose(y[..., 0], CONTENT @ np.array([0.299, 0.587, 0.114], np.float32), rtol=1e-5)


def test_a_temporal_file_is_read_at_the_runs_size_and_checked(pics, tmp_path):
    good = tmp_path / "t.npy"
    frames = np.random.default_rng(0).random((2, 24, 32, 4)).astype(np.float32)
    np.save(good, frames)
    got = load_inputs(_cfg(pics, temporal=str(good))).temporal
    np.testing.assert_array_equal(got, frames)
    np.save(tmp_path / "size.npy", frames[:, :20])
    with pytest.raises(NSTError, match=r"shape \(2, 20, 32, 4\), expected \(J, 24, 32, 4\)"):
        inputs.load_temporal(str(tmp_path / "size.npy"), (24, 32))
    np.save(tmp_path / "range.npy", frames * 2)
    with pytest.raises(NSTError, match=r"values must be finite and in \[0, 1\]"):
        inputs.load_temporal(str(tmp_path / "range.npy"), (24, 32))
