"""Dissection: reconstructions and views of a layer (network reduction: test_pruning)."""

import numpy as np
import pytest

from nst_jax.studies import dissect

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
