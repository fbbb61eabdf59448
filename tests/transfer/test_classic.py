"""The classic tools' options: style blends, style scale, original colours, multi-scale, bad values."""

import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.files import image
from nst_jax.files.runfiles import RunFiles
from nst_jax.model.preprocessing import Preprocessing
from nst_jax.objective import losses
from nst_jax.transfer.config import with_preset
from nst_jax.base.errors import NSTError
from nst_jax.transfer.problem import prepare
from nst_jax.transfer.runs import run, run_multiscale, scale_configs

from conftest import CONTENT, SAMPLES, SMALL_FLAGS, STYLE, call_main

STYLE2 = SAMPLES / "hubble_deep_field.jpg"
SMALL = dict(size=48, style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu3_2",),
             print_every=0, checkpoint_every=0, iterations=3)


def _cfg(tmp_path, styles=(STYLE,), **kw):
    values = dict(SMALL, content=str(CONTENT), styles=tuple(map(str, styles)), output=str(tmp_path / "o.png"))
    values.update(kw)
    return with_preset("default", **values)


@pytest.mark.parametrize("statistic", ["gram", "mean_std", "histogram"])
def test_blend_one_zero_equals_single_style(tmp_path, embedded, statistic):
    single = prepare(_cfg(tmp_path, style_statistic=statistic), embedded).targets
    blended = prepare(_cfg(tmp_path, styles=(STYLE, STYLE2), style_blend_weights=(1.0, 0.0),
                           style_statistic=statistic), embedded).targets
    for name in single.style:
        a, b = single.style[name], blended.style[name]
        assert len(a) == len(b) == 1
        for x, y in zip(__import__("jax").tree.leaves(a), __import__("jax").tree.leaves(b)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_blend_weights_normalised_and_mix(tmp_path, embedded):
    t1 = prepare(_cfg(tmp_path), embedded).targets
    t2 = prepare(_cfg(tmp_path, styles=(STYLE2,)), embedded).targets
    mix = prepare(_cfg(tmp_path, styles=(STYLE, STYLE2), style_blend_weights=(3.0, 1.0)), embedded).targets
    for name in t1.style:
        expect = 0.75 * np.asarray(t1.style[name][0][1]) + 0.25 * np.asarray(t2.style[name][0][1])
        np.testing.assert_allclose(np.asarray(mix.style[name][0][1]), expect, rtol=1e-5, atol=1e-6)


def test_style_scale(tmp_path, embedded):
    p = prepare(_cfg(tmp_path, style_scale=0.5, size=64), embedded)
    assert max(p.styles[0].shape[:2]) == 32 and max(p.content.shape[:2]) == 64


def test_histogram_colors_match_content_moments():
    rng = np.random.default_rng(0)
    content = rng.random((20, 30, 3)).astype(np.float32) * [0.5, 0.8, 0.3]
    style = (rng.random((25, 25, 3)) @ [[1, 0.5, 0], [0, 1, 0.2], [0.1, 0, 1]]).astype(np.float32)
    out = image.match_color_histogram(style, content)
    c, o = content.reshape(-1, 3).astype(np.float64), out.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(o.mean(0), c.mean(0), atol=1e-4)
    np.testing.assert_allclose(np.cov(o, rowvar=False), np.cov(c, rowvar=False), atol=1e-4)


def test_luminance_keeps_content_chrominance_exactly(tmp_path, embedded):
    res = run(_cfg(tmp_path, original_colors="luminance", init="noise"), progress=False, loaded_weights=embedded)
    content = image.resize(image.load_image(CONTENT), res.image.shape[:2])
    np.testing.assert_allclose(image.rgb_to_yiq(res.image)[..., 1:], image.rgb_to_yiq(content)[..., 1:], atol=1e-5)
    # and the luminance did change
    assert np.abs(image.rgb_to_yiq(res.image)[..., 0] - image.rgb_to_yiq(content)[..., 0]).max() > 1e-3


def test_luminance_matches_style_luminance_to_content(tmp_path, embedded):
    p = prepare(_cfg(tmp_path, original_colors="luminance"), embedded)
    assert p.content.shape[-1] == 1 and p.styles[0].shape[-1] == 1 and p.x0.shape[-1] == 1
    assert p.styles[0].mean() == pytest.approx(float(p.content.mean()), abs=1e-4)
    assert p.styles[0].std() == pytest.approx(float(p.content.std()), rel=1e-3)


def test_multiscale_passes_results_on(tmp_path, embedded):
    cfg = _cfg(tmp_path, scales=(32, 48), scale_iterations=(2, 3))
    cfgs = scale_configs(cfg)
    assert [c.size for c in cfgs] == [32, 48] and [c.iterations for c in cfgs] == [2, 3]
    assert cfgs[1].init == cfgs[0].output and cfgs[1].output == cfg.output
    results = run_multiscale(cfg, progress=False, loaded_weights=embedded)
    assert [r.image.shape[1] for r in results] == [32, 48]
    x0 = prepare(cfgs[1], embedded).x0
    first = image.resize(image.load_image(cfgs[0].output), x0.shape[:2])
    np.testing.assert_allclose(x0, first, atol=1e-6)


@pytest.mark.parametrize("kw,pattern", [
    (dict(styles=(STYLE, STYLE2), style_blend_weights=(1.0,)), "blend-weights has 1 values for 2"),
    (dict(style_blend_weights=(-1.0,)), "blend-weights must be"),
    (dict(style_scale=0.0), "style-scale must be positive"),
    (dict(scales=(0, 64)), "scales must be positive"),
    (dict(scales=(32, 64), scale_iterations=(5,)), "scale-iterations has 1 values for 2"),
    (dict(original_colors="sepia"), "original-colors"),
])
def test_bad_values(tmp_path, kw, pattern):
    with pytest.raises(NSTError, match=pattern):
        _cfg(tmp_path, **kw)


def _mask(path, size, value=None, left=True):
    from PIL import Image
    w, h = size
    a = np.zeros((h, w), np.uint8)
    if value is not None:
        a[:] = value
    elif left:
        a[:, : w // 2] = 255
    else:
        a[:, w // 2:] = 255
    Image.fromarray(a, "L").save(path)
    return str(path)


def test_all_ones_mask_equals_no_mask(tmp_path, embedded):
    ones = _mask(tmp_path / "ones.png", (451, 300), value=255)
    a = run(_cfg(tmp_path / "a"), progress=False, loaded_weights=embedded)
    b = run(_cfg(tmp_path / "b", content_masks=(ones,)), progress=False, loaded_weights=embedded)
    np.testing.assert_allclose(b.image, a.image, atol=1e-5)
    assert b.loss == pytest.approx(a.loss, rel=1e-5)


def test_two_regions_two_styles(tmp_path, embedded):
    left, right = _mask(tmp_path / "l.png", (451, 300)), _mask(tmp_path / "r.png", (451, 300), left=False)
    res = run(_cfg(tmp_path, styles=(STYLE, STYLE2), content_masks=(left, right)), progress=False,
              loaded_weights=embedded)
    assert np.isfinite(res.loss) and res.parts["style"] > 0
    p = prepare(_cfg(tmp_path, styles=(STYLE, STYLE2), content_masks=(left, right)), embedded)
    assert all(len(pairs) == 2 for pairs in p.targets.style.values())


def test_mask_errors(tmp_path, embedded):
    wrong = _mask(tmp_path / "wrong.png", (100, 100), value=255)
    with pytest.raises(NSTError, match="masks must have their image's size"):
        prepare(_cfg(tmp_path, content_masks=(wrong,)), embedded)
    with pytest.raises(NSTError, match="1 masks for 2 style images"):
        _cfg(tmp_path, styles=(STYLE, STYLE2), content_masks=(wrong,))
    with pytest.raises(NSTError, match="needs --content-mask"):
        _cfg(tmp_path, style_masks=(wrong,))


def _np_gram(f):
    m = f.reshape(-1, f.shape[-1])
    return m.T @ m / m.size


def test_neural_style_content_and_style_weights_map_onto_nst_jax(tmp_path, embedded):
    """docs/running.md's table: neural-style's -content_weight w_c and -style_weight w_s (Caffe VGG19, the
    same preprocessing) are --content-weight w_c and k = L·w_s with the default layers and layer weights."""
    assert embedded.preprocessing == Preprocessing("BGR", 255.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0))
    w_c, w_s = 5.0, 100.0
    cfg = with_preset("default", content=str(CONTENT), styles=(str(STYLE),), output=str(tmp_path / "o.png"),
                      size=48, content_weight=w_c, style_weight=5 * w_s, tv_weight=0.0)
    assert len(cfg.style_layers) == 5
    p = prepare(cfg, embedded)
    x = jnp.asarray(np.random.default_rng(0).random((1, *p.content.shape), np.float32))
    total, parts = losses.objective(x, p.params, p.targets, p.loss_weights, p.spec)
    layers = cfg.content_layers + cfg.style_layers
    at = lambda img: {n: np.asarray(f, np.float64)                                 # noqa: E731
                      for n, f in losses.features(p.params, jnp.asarray(img), p.spec, layers).items()}
    fx, fc, fs = at(x), at(p.content[None]), at(p.styles[0][None])
    # neural-style: ContentLoss and StyleLoss (MSECriterion, Grams divided by nElement), strength w_c / w_s each
    ns_content = sum(w_c * np.mean((fx[n] - fc[n]) ** 2) for n in cfg.content_layers)
    ns_style = sum(w_s * np.mean((_np_gram(fx[n]) - _np_gram(fs[n])) ** 2) for n in cfg.style_layers)
    assert w_c * float(parts["content"]) == pytest.approx(ns_content, rel=1e-5)
    assert 5 * w_s * float(parts["style"]) == pytest.approx(ns_style, rel=1e-5)
    assert float(total) == pytest.approx(ns_content + ns_style, rel=1e-5)


def test_a_run_with_normalized_gradients_records_it_and_takes_another_path(tmp_path, capsys):
    from nst_jax.run import main
    argv = [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "3", "--optimizer", "adam", "--quiet"]
    outs = {on: tmp_path / f"{on}.png" for on in (True, False)}
    for on, out in outs.items():
        code, _, err = call_main(main, [*argv, *(["--normalize-gradients"] if on else []), "-o", out], capsys)
        assert code == 0, err
        assert RunFiles(out).read_sidecar()["config"]["normalize_gradients"] is on
    on, off = (image.load_image(outs[k]) for k in (True, False))
    assert np.abs(on - off).max() > 1e-2
