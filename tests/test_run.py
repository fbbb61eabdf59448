"""The end-to-end run: CLI, outputs, compile-once, resume (also after a real SIGKILL), bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from nst_jax import image
from nst_jax.config import with_preset
from nst_jax.errors import NSTError
from nst_jax.transfer import output_paths, run

from conftest import CONTENT, ROOT, STYLE, run_cli

SMALL = dict(size=48, style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu3_2",),
             print_every=0)


def _cfg(tmp_path, **kw):
    values = dict(SMALL, content=str(CONTENT), styles=(str(STYLE),), output=str(tmp_path / "out.png"),
                  iterations=6, checkpoint_every=0)
    values.update(kw)
    return with_preset("default", **values)


def test_run_writes_everything_and_compiles_once(tmp_path, embedded):
    cfg = _cfg(tmp_path, iterations=8, save_every=4, init="content", size=47)  # a size no other test compiles
    res = run(cfg, progress=False, loaded_weights=embedded)
    assert res.compiles == 1
    assert res.iteration == 8 and res.evaluations == 9
    paths = output_paths(cfg.output)
    img = image.load_image(paths["image"])
    assert img.shape == (31, 47, 3)  # chelsea is 451×300 → 47 px on the longer side
    again = run(_cfg(tmp_path / "other", iterations=3, init="noise", size=47), progress=False, loaded_weights=embedded)
    assert again.compiles == 0  # same spec and shape: the cached program is reused
    assert (tmp_path / "out_iter00004.png").exists()
    log = [json.loads(line) for line in paths["log"].read_text().splitlines()]
    assert [r["iteration"] for r in log] == list(range(9))
    assert log[-1]["loss"] < log[0]["loss"] or log[0]["loss"] == 0
    side = json.loads(paths["sidecar"].read_text())
    assert side["config"]["iterations"] == 8 and side["iteration"] == 8
    meta = json.loads(Image.open(paths["image"]).text["nst_jax"])
    assert meta["config"]["style_layers"] == ["relu1_1", "relu2_1", "relu3_1"]


@pytest.mark.parametrize("init", ["noise", "white", "black", "mean", "style", "average", "file"])
def test_initial_images(tmp_path, embedded, init):
    if init == "file":
        init = str(STYLE)
    res = run(_cfg(tmp_path, iterations=1, init=init), progress=False, loaded_weights=embedded)
    assert res.image.shape == (32, 48, 3) and np.isfinite(res.loss)


def test_resume_equals_uninterrupted(tmp_path, embedded):
    a = run(_cfg(tmp_path / "a", iterations=10), progress=False, loaded_weights=embedded)
    run(_cfg(tmp_path / "b", iterations=4), progress=False, loaded_weights=embedded)
    b = run(_cfg(tmp_path / "b", iterations=10), progress=False, loaded_weights=embedded)
    np.testing.assert_allclose(b.image, a.image, atol=1e-5)
    assert b.loss == pytest.approx(a.loss, rel=1e-5)
    log = [json.loads(line)["iteration"] for line in (tmp_path / "b" / "out.losses.jsonl").read_text().splitlines()]
    assert log == list(range(11))
    # the same command again does nothing more
    c = run(_cfg(tmp_path / "b", iterations=10), progress=False, loaded_weights=embedded)
    assert c.iteration == 10 and c.compiles == 0


def test_changed_config_is_not_silently_resumed(tmp_path, embedded):
    run(_cfg(tmp_path, iterations=2), progress=False, loaded_weights=embedded)
    with pytest.raises(NSTError, match="other settings"):
        run(_cfg(tmp_path, iterations=4, style_weight=5.0), progress=False, loaded_weights=embedded)
    res = run(_cfg(tmp_path, iterations=2, style_weight=5.0), progress=False, restart=True, loaded_weights=embedded)
    assert res.iteration == 2


def test_sigkill_then_rerun_gives_same_image(tmp_path):
    """A real kill -9 mid-run; rerunning the same command continues from the last checkpoint."""
    args = ["-m", "nst_jax.run", str(CONTENT), str(STYLE), "--size", "48", "--iterations", "40",
            "--content-layers", "relu3_2", "--style-layers", "relu1_1,relu2_1", "--checkpoint-every", "5",
            "--quiet"]
    ref = run_cli(*args, "-o", "ref.png", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, *args, "-o", "killed.png"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed.ckpt.npz"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists()
    assert not (tmp_path / "killed.png").exists() or proc.returncode == 0
    again = run_cli(*args, "-o", "killed.png", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    a = image.load_image(tmp_path / "ref.png")
    b = image.load_image(tmp_path / "killed.png")
    np.testing.assert_array_equal(a, b)
    ra = json.loads((tmp_path / "ref.json").read_text())
    rb = json.loads((tmp_path / "killed.json").read_text())
    assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)


def _bad(tmp_path, *args):
    res = run_cli("-m", "nst_jax.run", "--size", "48", "--iterations", "2", "--quiet", *args, cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_bad_inputs_give_one_line_and_exit_2(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    msg = _bad(tmp_path, "missing.jpg", str(STYLE))
    assert "missing.jpg" in msg and "not found" in msg
    msg = _bad(tmp_path, str(tmp_path / "notes.txt"), str(STYLE))
    assert "notes.txt" in msg
    msg = _bad(tmp_path, str(CONTENT), str(STYLE), "--style-layers", "relu9_9")
    assert "relu9_9" in msg and "conv1_1" in msg
    msg = _bad(tmp_path, str(CONTENT), str(STYLE), "--size", "8")
    assert "too small" in msg
    msg = _bad(tmp_path, str(CONTENT), str(STYLE), "--weights", str(tmp_path / "notes.txt"))
    assert "notes.txt" in msg and "weights" in msg
    msg = _bad(tmp_path, str(CONTENT), str(STYLE), "-o", str(CONTENT))
    assert "overwrite an input" in msg
    msg = _bad(tmp_path, str(CONTENT), str(STYLE), "--style-weight", "-1")
    assert "style-weight" in msg
    msg = _bad(tmp_path, str(CONTENT), str(STYLE), "--init", "nonsense")
    assert "nonsense" in msg


def test_nan_stops_and_keeps_last_good_image(tmp_path):
    res = run_cli("-m", "nst_jax.run", str(CONTENT), str(STYLE), "--size", "32", "--iterations", "20",
                  "--content-layers", "relu2_1", "--style-layers", "relu1_1", "--optimizer", "adam",
                  "--lr", "1e38", "--quiet", "-o", "nan.png", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "became" in res.stderr and "last good image" in res.stderr and "Traceback" not in res.stderr
    kept = image.load_image(tmp_path / "nan.png")
    assert np.isfinite(kept).all()


def test_help_documents_every_option():
    res = run_cli("-m", "nst_jax.run", "--help")
    assert res.returncode == 0
    for opt in ("--output", "--size", "--iterations", "--style-weight", "--content-weight", "--tv-weight",
                "--content-layers", "--style-layers", "--style-layer-weights", "--init", "--optimizer",
                "--lr", "--pooling", "--seed", "--save-every", "--print-every", "--weights", "--preset",
                "--checkpoint-every", "default:"):
        assert opt in res.stdout, opt


def test_tutorial_preset_uses_sequential_names(tmp_path, embedded):
    cfg = with_preset("tutorial", content=str(CONTENT), styles=(str(STYLE),), output=str(tmp_path / "t.png"),
                      size=32, iterations=2, checkpoint_every=0)
    assert cfg.content_layers == ("conv2_2",)
    assert cfg.style_layers == ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")
    assert run(cfg, progress=False, loaded_weights=embedded).iteration == 2


@pytest.mark.parametrize("statistic,optimizer", [("sliced_wasserstein", "adam"), ("mean_std", "lbfgs")])
def test_statistics_run_and_resume(tmp_path, embedded, statistic, optimizer):
    """Random statistics draw their key from (seed, iteration): a resumed run equals an uninterrupted one."""
    kw = dict(style_statistic=statistic, optimizer=optimizer, init="content")
    a = run(_cfg(tmp_path / "a", iterations=6, **kw), progress=False, loaded_weights=embedded)
    run(_cfg(tmp_path / "b", iterations=3, **kw), progress=False, loaded_weights=embedded)
    b = run(_cfg(tmp_path / "b", iterations=6, **kw), progress=False, loaded_weights=embedded)
    np.testing.assert_allclose(b.image, a.image, atol=1e-5)
    assert np.isfinite(a.loss) and a.parts["style"] >= 0


def test_unknown_statistic_is_a_clear_error(tmp_path):
    res = run_cli("-m", "nst_jax.run", str(CONTENT), str(STYLE), "--style-statistic", "nope", cwd=tmp_path)
    assert res.returncode == 2 and "nope" in res.stderr and "Traceback" not in res.stderr
