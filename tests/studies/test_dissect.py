"""Dissection: reconstructions, views, and network reduction that is real (smaller kernels) and exact."""

import numpy as np
import pytest

from nst_jax.studies import dissect
from nst_jax.model import vgg
from nst_jax.model.preprocessing import preprocess

from conftest import CONTENT, STYLE


@pytest.fixture(scope="module")
def images(small_images):
    c, s = small_images
    return [c[0], s[0]]


def test_content_reconstruction_shallow_beats_deep(tmp_path, embedded):
    """From white noise (9.4 dB against the image), 40 iterations matching conv1_2 alone reach 14.9 dB
    (measured): conv1_2 is linear in the image (no ReLU after it yet), so only the frequencies its
    filters attenuate stay noisy. conv5_2, after four poolings and twelve ReLUs, keeps only coarse
    structure: 10.2 dB, barely above the noise. Bounds: > 13 dB for conv1_2 and at least 3 dB between
    the two."""
    from nst_jax.files.image import fit_size, load_image, resize
    res = dict(dissect.reconstruct_content(str(CONTENT), ["conv1_2", "conv5_2"], tmp_path, 64, 40,
                                           weights=embedded))
    img = load_image(CONTENT)
    img = resize(img, fit_size(img.shape[:2], 64))
    shallow, deep = dissect.psnr(res["conv1_2"].image, img), dissect.psnr(res["conv5_2"].image, img)
    assert shallow > 13.0, shallow
    assert deep < shallow - 3.0, (shallow, deep)


def test_style_reconstruction_runs(tmp_path, embedded):
    res = dissect.reconstruct_style(str(STYLE), ["relu1_1", "relu2_1"], tmp_path, 32, 3, weights=embedded)
    assert [name for name, _ in res] == ["relu1_1", "relu1_1…relu2_1"]
    assert all(np.isfinite(r.loss) for _, r in res)


def test_layer_view(embedded, images):
    maps, order, g = dissect.layer_view(embedded.params, embedded.preprocessing, images[0], "relu2_1", top=8)
    assert maps.shape[0] == 8 and g.shape == (128, 128)
    means = maps.mean(axis=(1, 2))
    assert np.all(np.diff(means) <= 1e-6)


def test_activation_ranking_and_kept_channels(embedded, images):
    """'activation' scores a channel by its mean activation over the images; keep_indices keeps the
    highest-scored (1 − fraction) of each layer's channels, in channel order."""
    scores = dissect.channel_scores(embedded.params, embedded.preprocessing, images, "activation")
    x = [preprocess(img[None], embedded.preprocessing) for img in images]
    relu = np.mean([np.asarray(vgg.features(embedded.params, xi, ["relu2_1"])["relu2_1"]).mean(axis=(0, 1, 2))
                    for xi in x], axis=0)
    np.testing.assert_allclose(scores["conv2_1"], relu, rtol=1e-5, atol=1e-6)
    keep = dissect.keep_indices(scores, 0.25)
    for conv in vgg.CONV_NAMES:
        n = len(scores[conv])
        kept = keep[conv]
        assert len(kept) == n - round(0.25 * n) and np.all(np.diff(kept) > 0)
        dropped = np.setdiff1d(np.arange(n), kept)
        assert scores[conv][dropped].max(initial=-np.inf) <= scores[conv][kept].min()


def test_reduce_network_runs_and_measures_with_the_full_network(tmp_path, embedded):
    rows = dissect.reduce_network(str(CONTENT), str(STYLE), tmp_path, 48, 2, ["activation"], [0.0, 0.5],
                                  weights=embedded)
    assert [r["fraction"] for r in rows] == [0.0, 0.5]
    full, half = rows
    assert half["channels_kept"] < full["channels_kept"] == sum(embedded.params[c]["bias"].shape[0]
                                                               for c in vgg.CONV_NAMES)
    for r in rows:
        assert np.isfinite(r["full_loss"]) and r["full_loss"] > 0
        assert (tmp_path / "runs" / f"activation_{int(r['fraction'] * 100):02d}.png").exists()


def test_pruning_zero_is_identity(embedded, images):
    scores = dissect.channel_scores(embedded.params, embedded.preprocessing, images, "activation")
    pruned = dissect.prune(embedded.params, dissect.keep_indices(scores, 0.0))
    for conv in vgg.CONV_NAMES:
        np.testing.assert_array_equal(pruned[conv]["kernel"], embedded.params[conv]["kernel"])
    x = preprocess(images[0][None], embedded.preprocessing)
    a = vgg.features(embedded.params, x, ["relu4_2"])["relu4_2"]
    b = vgg.features(pruned, x, ["relu4_2"])["relu4_2"]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("criterion", dissect.CRITERIA)
def test_pruned_network_equals_zeroed_full_network(embedded, images, criterion):
    scores = dissect.channel_scores(embedded.params, embedded.preprocessing, images, criterion)
    keep = dissect.keep_indices(scores, 0.5)
    pruned = dissect.prune(embedded.params, keep)
    zeroed = dissect.zero_removed(embedded.params, keep)
    assert pruned["conv3_1"]["kernel"].shape == (3, 3, 64, 128)  # physically smaller
    x = preprocess(images[1][None], embedded.preprocessing)
    layers = ["relu1_1", "relu2_2", "relu3_1", "relu4_2", "relu5_1"]
    small = vgg.features(pruned, x, layers)
    big = vgg.features(zeroed, x, layers)
    for layer in layers:
        conv = "conv" + layer[4:]
        ref = np.asarray(big[layer])[..., keep[conv]]
        np.testing.assert_allclose(np.asarray(small[layer]), ref, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(ref).max()))
