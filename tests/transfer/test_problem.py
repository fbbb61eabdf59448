"""The pure core of a run: from images in memory and a plan, the objective's spec (read from the Config
and the plan), its targets (the content's features and the styles' statistics, as computed directly),
the parameters up to the deepest layer with the plan's forms, colour handling and the variable back to
RGB, the initial image and the loss weights."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CONTENT, small_cfg
from nst_jax.files import image
from nst_jax.model import convforms
from nst_jax.objective import losses, statistics
from nst_jax.scale.sharding import Layout
from nst_jax.transfer import problem as pb
from nst_jax.transfer.inputs import Inputs
from nst_jax.transfer.planning import RunPlan, plain

LAYERS = dict(content_layers=("relu1_1",), style_layers=("relu1_1", "relu2_1"))
RNG = np.random.default_rng(0)
C = RNG.random((8, 12, 3)).astype(np.float32)
S = RNG.random((12, 12, 3)).astype(np.float32)


def _cfg(tmp_path, **kw):
    return small_cfg(tmp_path / "out.png", **{**LAYERS, **kw})


def test_the_spec_is_read_from_the_config_and_the_plan(tmp_path, embedded):
    cfg = _cfg(tmp_path, style_layer_weights=(0.25, 0.75), pooling="avg", style_statistic="mean_std")
    spec = pb.objective_spec(cfg, embedded)
    assert spec == losses.ObjectiveSpec(("relu1_1",), ("relu1_1", "relu2_1"), (0.25, 0.75), "avg",
                                        embedded.preprocessing, "mean_std", False, plain(cfg).precision)
    planned = RunPlan("remat", Layout(), "bfloat16")
    spec = pb.objective_spec(cfg, embedded, planned)
    assert (spec.remat, spec.precision) == (True, "bfloat16")
    assert pb.objective_spec(_cfg(tmp_path), embedded).style_layer_weights == (0.5, 0.5)   # 1/number of layers


def test_the_gram_is_native_where_the_plans_forms_say_so(tmp_path, embedded):
    forms = convforms.Forms((("conv1_2", "f4f", "f4f"),), "asked")
    for native in (True, False):
        spec = pb.objective_spec(_cfg(tmp_path), embedded, RunPlan("plain", Layout(), "float32",
                                                                         forms=forms._replace(native_gram=native)))
        assert spec.native_statistic is native
    assert pb.objective_spec(_cfg(tmp_path), embedded).native_statistic is False


def test_run_params_stop_at_the_deepest_layer_and_carry_the_plans_forms(tmp_path, embedded):
    cfg = _cfg(tmp_path)
    params = pb.run_params(cfg, embedded)
    assert list(params) == ["conv1_1", "conv1_2", "conv2_1"]
    assert all(set(p) == {"kernel", "bias", "kernel_bwd"} for p in params.values())
    forms = convforms.Forms((("conv1_1", "xla", "xla"), ("conv1_2", "f4", "f2"), ("conv2_1", "xla", "f4")), "asked")
    params = pb.run_params(cfg, embedded, plain(cfg)._replace(precision="float32", forms=forms))
    assert (params["conv1_2"]["kernel_wino"].form, params["conv1_2"]["kernel_wino_bwd"].form) == ("f4", "f2")
    assert "kernel_wino" not in params["conv2_1"] and params["conv2_1"]["kernel_wino_bwd"].form == "f4"


def test_targets_are_the_contents_features_and_the_styles_statistics(tmp_path, embedded):
    cfg = _cfg(tmp_path, init="content")
    p = pb.build_problem(cfg, embedded, Inputs(C, [S]))
    feats = losses.features(p.params, jnp.asarray(C[None]), p.spec, ["relu1_1"])
    assert list(p.targets.content) == ["relu1_1"]
    np.testing.assert_allclose(p.targets.content["relu1_1"], feats["relu1_1"], rtol=1e-4, atol=1e-4)
    s_feats = losses.features(p.params, jnp.asarray(S[None]), p.spec, ["relu1_1", "relu2_1"])
    assert list(p.targets.style) == ["relu1_1", "relu2_1"]
    for name in ("relu1_1", "relu2_1"):
        (target,) = p.targets.style[name]
        f = s_feats[name].reshape(-1, s_feats[name].shape[-1])
        assert target.weight == 1.0 and target.mask is None
        np.testing.assert_allclose(target.value, statistics.gram_matrix(f), rtol=1e-3,
                                   atol=1e-5 * float(jnp.abs(target.value).max()))
    assert p.targets.temporal is None
    # the objective at the content is then its style and tv parts alone
    _, parts = losses.make_objective(p.spec)(jnp.asarray(p.x0[None]), p.aux(None))
    assert float(parts["content"]) == pytest.approx(0.0, abs=1e-6)


def test_the_problem_holds_the_images_the_initial_image_and_the_weights(tmp_path, embedded):
    cfg = _cfg(tmp_path, init="black", content_weight=2.0, style_weight=30.0, tv_weight=0.5)
    p = pb.build_problem(cfg, embedded, Inputs(C, [S]))
    assert p.content is C and p.styles[0] is S and p.chroma is None
    np.testing.assert_array_equal(p.x0, np.zeros_like(C))
    assert tuple(float(w) for w in p.loss_weights) == (2.0, 30.0, 0.5, float(cfg.temporal_weight))
    assert all(w.dtype == jnp.float32 for w in p.loss_weights)
    assert p.weights_info is embedded.info
    x = RNG.random((8, 12, 3)).astype(np.float64)
    assert p.to_rgb(x).dtype == np.float32
    np.testing.assert_array_equal(p.to_rgb(x), x.astype(np.float32))     # RGB as it is


def test_luminance_optimises_one_channel_and_to_rgb_brings_the_colours_back(tmp_path, embedded):
    cfg = _cfg(tmp_path, original_colors="luminance", init="content")
    p = pb.build_problem(cfg, embedded, Inputs(C, [S]))
    yiq = image.rgb_to_yiq(C)
    assert p.content.shape == (8, 12, 1) and p.chroma.shape == (8, 12, 2) and p.x0.shape == (8, 12, 1)
    np.testing.assert_allclose(p.content, yiq[..., :1], rtol=1e-6)
    np.testing.assert_allclose(p.chroma, yiq[..., 1:], rtol=1e-6)
    np.testing.assert_allclose(p.to_rgb(p.content), C, atol=1e-5)          # the round trip
    brighter = p.to_rgb(p.content + 0.1)
    np.testing.assert_allclose(image.rgb_to_yiq(brighter)[..., 1:], yiq[..., 1:], atol=1e-5)   # chroma kept
    np.testing.assert_allclose(image.rgb_to_yiq(brighter)[..., 0], yiq[..., 0] + 0.1, atol=1e-5)
    style_y = p.styles[0]
    assert style_y.shape == (12, 12, 1)
    np.testing.assert_allclose(style_y, image.match_luminance(image.rgb_to_yiq(S)[..., :1], p.content), rtol=1e-5)
    # an RGB initial image (a file, or the style) becomes its luminance
    rgb_init = RNG.random((8, 12, 3)).astype(np.float32)
    filed = pb.build_problem(_cfg(tmp_path, original_colors="luminance", init=str(CONTENT)), embedded,
                             Inputs(C, [S], init_image=rgb_init))
    np.testing.assert_allclose(filed.x0, image.rgb_to_yiq(rgb_init)[..., :1], rtol=1e-5)


def test_histogram_matches_the_styles_colours_to_the_contents(tmp_path, embedded):
    p = pb.build_problem(_cfg(tmp_path, original_colors="histogram"), embedded, Inputs(C, [S]))
    np.testing.assert_allclose(p.styles[0], image.match_color_histogram(S, C), rtol=1e-6)
    assert p.chroma is None and p.content is C


def test_earlier_frames_become_the_temporal_target(tmp_path, embedded):
    frames = RNG.random((2, 8, 12, 4)).astype(np.float32)
    p = pb.build_problem(_cfg(tmp_path), embedded, Inputs(C, [S], temporal=frames))
    np.testing.assert_array_equal(p.targets.temporal, frames)
    lum = pb.build_problem(_cfg(tmp_path, original_colors="luminance"), embedded, Inputs(C, [S], temporal=frames))
    assert lum.targets.temporal.shape == (2, 8, 12, 2)       # the frames' luminance, and their weights
    np.testing.assert_allclose(lum.targets.temporal[..., :1], image.rgb_to_yiq(frames[..., :3])[..., :1], rtol=1e-5)
    np.testing.assert_array_equal(lum.targets.temporal[..., 1], frames[..., 3])


def test_prepare_reads_the_inputs_from_the_files(tmp_path, embedded):
    cfg = _cfg(tmp_path, size=24)
    p = pb.prepare(cfg, embedded)
    assert p.content.shape == (16, 24, 3) and p.styles[0].shape == (24, 24, 3)   # chelsea is 451×300
    np.testing.assert_array_equal(p.x0, p.content)
