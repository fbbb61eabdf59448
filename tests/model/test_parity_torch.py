"""Every named VGG19 activation equals PyTorch's computation with the same weights (rtol 1e-4).

Live against torch when it is importable (CI installs it), and against a stored fixture made by
tests/make_fixtures.py so the check also runs without torch.
"""

from pathlib import Path

import numpy as np

from nst_jax.model import vgg
from nst_jax.model.preprocessing import preprocess

from conftest import torch_or_skip

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "vgg_parity_64.npz"


def _close(name, ours, ref):
    atol = 1e-4 * float(np.abs(ref).max()) + 1e-6
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=atol, err_msg=name)


def test_parity_live_torch(embedded):
    torch = torch_or_skip()
    from bench.torch_reference import features, preprocess as tpre, torch_params

    rng = np.random.default_rng(7)
    img = rng.random((1, 64, 64, 3), dtype=np.float32)
    ours = vgg.features(embedded.params, preprocess(img, embedded.preprocessing),
                        vgg.LAYER_NAMES + vgg.SEQUENTIAL_NAMES)
    with torch.no_grad():
        ref = features(torch_params(embedded), tpre(torch.tensor(img.transpose(0, 3, 1, 2).copy()), embedded),
                       vgg.LAYER_NAMES)
    for block, seq, _ in vgg.LAYERS:
        r = ref[block].numpy().transpose(0, 2, 3, 1)
        assert ours[block].shape == r.shape
        _close(block, np.asarray(ours[block]), r)
        np.testing.assert_array_equal(ours[seq], ours[block])


def test_parity_stored_fixture(embedded):
    data = np.load(FIXTURE)
    img = data["image"][None]
    ours = vgg.features(embedded.params, preprocess(img, embedded.preprocessing), vgg.LAYER_NAMES)
    for name in vgg.LAYER_NAMES:
        a = np.asarray(ours[name])[0]
        ref_max = float(data[f"{name}/max_abs"])
        assert abs(np.abs(a).max() - ref_max) <= 1e-4 * ref_max + 1e-6, name
        np.testing.assert_allclose(a.reshape(-1)[data[f"{name}/idx"]], data[f"{name}/values"],
                                   rtol=1e-4, atol=1e-4 * ref_max + 1e-6, err_msg=name)
        np.testing.assert_allclose(a.reshape(-1, a.shape[-1]).mean(axis=0), data[f"{name}/channel_mean"],
                                   rtol=1e-4, atol=1e-4 * ref_max + 1e-6, err_msg=name)
