"""The sweep runner and its report: continue, resume after SIGKILL, batch = sequential, valid HTML."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nst_jax.files import image
from nst_jax.studies.report import write_report
from nst_jax.studies.grid import expand, load_grid, run_name
from nst_jax.studies.sweep import sweep

from conftest import CONTENT, ROOT, STYLE, kill_when

GRID = {"init": ["noise", "content"], "style_weight": [10.0, 1000.0],
        "content_layers": [["relu3_2"]], "style_layers": [["relu1_1", "relu2_1"]]}
BASE = {"content": str(CONTENT), "styles": (str(STYLE),), "size": 40, "checkpoint_every": 2, "print_every": 0}


def _finals(out: Path):
    return {d.name: image.load_image(d / "result.png") for d in sorted(out.iterdir()) if (d / "result.png").exists()}


def _log(out: Path, name: str):
    return [json.loads(line) for line in (out / name / "result.losses.jsonl").read_text().splitlines()]


def test_grid_names_and_errors(tmp_path):
    runs = expand(GRID, {**BASE, "iterations": 3}, tmp_path)
    assert [n for n, _ in runs] == ["init-noise_k-10", "init-noise_k-1000", "init-content_k-10", "init-content_k-1000"]
    assert run_name({"init": "noise", "style_weight": 100.0}) == "init-noise_k-100"
    (tmp_path / "g.toml").write_text('init = ["noise"]\nbogus = [1]\n')
    from nst_jax.base.errors import NSTError
    with pytest.raises(NSTError, match="bogus"):
        load_grid(str(tmp_path / "g.toml"))
    assert len(expand(load_grid(None), {**BASE, "iterations": 1}, tmp_path)) == 21  # 7 inits × 3 k


def test_sweep_continues_and_report(tmp_path):
    out = tmp_path / "out"
    sweep(3, GRID, out, BASE, show_progress=False)
    first = {n: _log(out, n) for n in ("init-noise_k-10", "init-content_k-1000")}
    assert all(len(v) == 4 for v in first.values())
    mtime = (out / "init-noise_k-10" / "result.png").stat().st_mtime_ns
    sweep(3, GRID, out, BASE, show_progress=False)  # same target: nothing to do
    assert (out / "init-noise_k-10" / "result.png").stat().st_mtime_ns == mtime
    sweep(6, GRID, out, BASE, show_progress=False)  # larger target: continue, not restart
    for name, before in first.items():
        after = _log(out, name)
        assert [r["iteration"] for r in after] == list(range(7))
        assert after[:4] == before
    assert (out / "init-noise_k-10" / "result_iter00005.png").exists()
    # deleting one run's files restarts that run only
    for f in (out / "init-noise_k-10").iterdir():
        f.unlink()
    sweep(6, GRID, out, BASE, show_progress=False)
    assert len(_log(out, "init-noise_k-10")) == 7
    page = write_report(out)
    text = page.read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert links and all((out / link).exists() for link in links), [l for l in links if not (out / l).exists()]
    assert "init-content_k-1000" in text and (out / "losses.png").exists() and (out / "sheet_init.png").exists()


def test_batch_equals_sequential(tmp_path):
    sweep(5, GRID, tmp_path / "seq", BASE, show_progress=False)
    sweep(5, GRID, tmp_path / "bat", BASE, batch=4, show_progress=False)
    a, b = _finals(tmp_path / "seq"), _finals(tmp_path / "bat")
    assert a.keys() == b.keys() and len(a) == 4
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=1e-4)
        la, lb = _log(tmp_path / "seq", name)[-1]["loss"], _log(tmp_path / "bat", name)[-1]["loss"]
        assert lb == pytest.approx(la, rel=1e-4)
    # a batched sweep continues from the batched checkpoints
    sweep(7, GRID, tmp_path / "bat", BASE, batch=4, show_progress=False)
    assert [r["iteration"] for r in _log(tmp_path / "bat", "init-content_k-10")] == list(range(8))


def test_sigkill_mid_sweep_then_rerun_matches(tmp_path):
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps(GRID))
    args = [sys.executable, "-m", "nst_jax", "sweep", "8", "--grid", str(grid_file), "--size", "40",
            "--checkpoint-every", "2", "--quiet", "--no-report", "--content", str(CONTENT), "--style", str(STYLE)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ref = subprocess.run(args + ["--out", "ref"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen(args + ["--out", "killed"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = tmp_path / "killed" / "init-noise_k-1000" / "result.ckpt.npz"
    kill_when(proc, second)
    assert not (tmp_path / "killed" / "init-content_k-1000" / "result.png").exists()
    again = subprocess.run(args + ["--out", "killed"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    a, b = _finals(tmp_path / "ref"), _finals(tmp_path / "killed")
    assert a.keys() == b.keys() and len(a) == 4
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_report_renders_in_headless_chromium(tmp_path):
    """The report opened from disk in headless Chromium shows its images (skipped without chromium)."""
    import shutil
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (Debian package `chromium`)")
    out = tmp_path / "out"
    sweep(2, GRID, out, BASE, show_progress=False)
    page = write_report(out)
    shot = tmp_path / "shot.png"
    res = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                          f"--screenshot={shot}", "--window-size=1000,800", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.exists(), res.stderr[-2000:]
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert pixels.std() > 10  # not a blank page: the contact sheets' images are drawn


def test_sweep_off_a_terminal_prints_plain_lines_and_the_first_step_apart(tmp_path, capsys):
    from nst_jax.studies.sweep import main
    grid = tmp_path / "g.json"
    grid.write_text(json.dumps({"init": ["content", "noise"], "content_layers": [["relu3_2"]],
                                "style_layers": [["relu1_1", "relu2_1"]]}))
    code = main(["3", "--grid", str(grid), "--out", str(tmp_path / "o"), "--size", "32", "--style", str(STYLE),
                 "--no-report"])
    err = capsys.readouterr().err
    assert code == 0 and "\r" not in err
    lines = err.splitlines()
    assert re.fullmatch(r"sweep: first step of init-content \(compiling\) took \S+ s", lines[0]), lines
    assert any(line.startswith("sweep: 1/2 runs done") for line in lines)
    assert re.match(r"sweep: 2/2 runs done; 6 / 6 iterations \(\S+ it/s", lines[-1]), lines


def test_sweep_default_style_is_a_painting():
    from nst_jax.transfer.config import SAMPLE_PAINTING
    from nst_jax.studies.sweep import build_parser
    assert build_parser().parse_args(["3"]).styles == [SAMPLE_PAINTING] and SAMPLE_PAINTING.endswith("starry_night.jpg")


def test_a_failed_run_is_recorded_beside_it_and_no_longer_stands_once_it_runs_again(tmp_path, capsys):
    import io
    from nst_jax.files.runfiles import RunFiles
    from nst_jax.studies.sweep import Tracker
    from nst_jax.transfer.config import Config
    cfg = Config(content=str(CONTENT), styles=(str(STYLE),), output=str(tmp_path / "a" / "result.png"), iterations=2)
    (tmp_path / "a").mkdir()
    tracker = Tracker(tmp_path, [("a", cfg)], 2, show_progress=False, report=False, stream=io.StringIO())
    tracker.finished_run("a", cfg, "the loss is NaN or inf at the initial image")
    assert RunFiles(cfg.output).read_error() == "the loss is NaN or inf at the initial image"
    assert "warning: a: the loss is NaN" in capsys.readouterr().err and list(tracker.failed) == ["a"]
    tracker.started(["a"])                       # queued (on Ray) or about to start: the record stands
    assert RunFiles(cfg.output).read_error() == "the loss is NaN or inf at the initial image"
    tracker.advanced("a", 1)
    assert RunFiles(cfg.output).read_error() is None and not (tmp_path / "a" / "result.error.txt").exists()
