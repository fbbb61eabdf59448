"""Network reduction (`studies.pruning`): channels ranked by each criterion, a pruned network that is
physically smaller and computes what the full one with those channels zeroed does, and the reduction
runs measured with the full network, going on from the runs a sitting finished."""

import json

import numpy as np
import pytest

from nst_jax.model import vgg
from nst_jax.model.preprocessing import preprocess
from nst_jax.studies import pruning
from nst_jax.transfer import runs

from conftest import CONTENT, STYLE


@pytest.fixture(scope="module")
def images(small_images):
    c, s = small_images
    return [c[0], s[0]]


def test_activation_ranking_and_kept_channels(embedded, images):
    """'activation' scores a channel by its mean activation over the images; keep_indices keeps the
    highest-scored (1 − fraction) of each layer's channels, in channel order."""
    scores = pruning.channel_scores(embedded.params, embedded.preprocessing, images, "activation")
    x = [preprocess(img[None], embedded.preprocessing) for img in images]
    relu = np.mean([np.asarray(vgg.features(embedded.params, xi, ["relu2_1"])["relu2_1"]).mean(axis=(0, 1, 2))
                    for xi in x], axis=0)
    np.testing.assert_allclose(scores["conv2_1"], relu, rtol=1e-5, atol=1e-6)
    keep = pruning.keep_indices(scores, 0.25)
    for conv in vgg.CONV_NAMES:
        n = len(scores[conv])
        kept = keep[conv]
        assert len(kept) == n - round(0.25 * n) and np.all(np.diff(kept) > 0)
        dropped = np.setdiff1d(np.arange(n), kept)
        assert scores[conv][dropped].max(initial=-np.inf) <= scores[conv][kept].min()


def test_reduce_network_runs_and_measures_with_the_full_network_and_goes_on_from_finished_runs(
        tmp_path, embedded, monkeypatch):
    rows = pruning.reduce_network(str(CONTENT), str(STYLE), tmp_path, 48, 2, ["activation"], [0.0, 0.5],
                                  weights=embedded)
    again = tmp_path / "runs" / "activation_50.row.json"
    again.write_text("[" * 3000 + "]" * 3000)             # damaged: that run is made again, the other kept
    ran = []
    real_run = runs.run
    monkeypatch.setattr(runs, "run", lambda cfg, **kw: ran.append(cfg.output) or real_run(cfg, **kw))
    rerun = pruning.reduce_network(str(CONTENT), str(STYLE), tmp_path, 48, 2, ["activation"], [0.0, 0.5],
                                   weights=embedded)
    assert ran == [str(tmp_path / "runs" / "activation_50.png")] and rerun[0] == rows[0]
    timings = ("wall_seconds", "seconds_per_iteration")
    assert {k: v for k, v in rerun[1].items() if k not in timings} == {k: v for k, v in rows[1].items() if k not in timings}
    ran.clear()
    pruning.reduce_network(str(CONTENT), str(STYLE), tmp_path, 48, 3, ["activation"], [0.0], weights=embedded)
    assert ran == [str(tmp_path / "runs" / "activation_00.png")]     # other settings: run again
    ran.clear()
    pruning.reduce_network(str(CONTENT), str(STYLE), tmp_path, 48, 2, ["activation"], [0.0], weights=embedded)
    assert len(ran) == 1                  # and back: the image is the other settings', so run again
    record = tmp_path / "runs" / "activation_00.row.json"
    kept = json.loads(record.read_text())
    kept["row"]["full_loss"] = "0"
    record.write_text(json.dumps(kept))   # a row that is not one: run again
    ran.clear()
    pruning.reduce_network(str(CONTENT), str(STYLE), tmp_path, 48, 2, ["activation"], [0.0], weights=embedded)
    assert len(ran) == 1
    assert [r["fraction"] for r in rows] == [0.0, 0.5]
    full, half = rows
    assert half["channels_kept"] < full["channels_kept"] == sum(embedded.params[c]["bias"].shape[0]
                                                               for c in vgg.CONV_NAMES)
    for r in rows:
        assert np.isfinite(r["full_loss"]) and r["full_loss"] > 0
        assert (tmp_path / "runs" / f"activation_{int(r['fraction'] * 100):02d}.png").exists()


def test_pruning_zero_is_identity(embedded, images):
    scores = pruning.channel_scores(embedded.params, embedded.preprocessing, images, "activation")
    pruned = pruning.prune(embedded.params, pruning.keep_indices(scores, 0.0))
    for conv in vgg.CONV_NAMES:
        np.testing.assert_array_equal(pruned[conv]["kernel"], embedded.params[conv]["kernel"])
    x = preprocess(images[0][None], embedded.preprocessing)
    a = vgg.features(embedded.params, x, ["relu4_2"])["relu4_2"]
    b = vgg.features(pruned, x, ["relu4_2"])["relu4_2"]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("criterion", pruning.CRITERIA)
def test_pruned_network_equals_zeroed_full_network(embedded, images, criterion):
    scores = pruning.channel_scores(embedded.params, embedded.preprocessing, images, criterion)
    keep = pruning.keep_indices(scores, 0.5)
    pruned = pruning.prune(embedded.params, keep)
    zeroed = pruning.zero_removed(embedded.params, keep)
    assert pruned["conv3_1"]["kernel"].shape == (3, 3, 64, 128)  # physically smaller
    x = preprocess(images[1][None], embedded.preprocessing)
    layers = ["relu1_1", "relu2_2", "relu3_1", "relu4_2", "relu5_1"]
    small = vgg.features(pruned, x, layers)
    big = vgg.features(zeroed, x, layers)
    for layer in layers:
        conv = "conv" + layer[4:]
        ref = np.asarray(big[layer])[..., keep[conv]]
        np.testing.assert_allclose(np.asarray(small[layer]), ref, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(ref).max()))
