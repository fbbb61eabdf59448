"""Nothing outside the output folder, ever: planted links, paths and hashes from files, HTML, locks.

The rule (README, Reliability): every path nst_jax writes comes from the user's own arguments; a name
or hash read from a file becomes part of a path only once validated; files are created under names
nobody can predict and renamed into place, or (the loss log, appended to) opened with O_NOFOLLOW; no
tool writes through a link it did not make; every value placed in HTML is escaped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nst_jax.files import records
from nst_jax.studies import report
from nst_jax.base.errors import NSTError
from nst_jax.run import main as run_main
from nst_jax.files.runfiles import RunFiles

from conftest import CONTENT, ROOT, SMALL_FLAGS, STYLE, call_main, one_error_line, small_cfg


@pytest.fixture
def victim(tmp_path):
    """A file outside the output folder that no run may touch."""
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_text("DATA")
    return path


def _untouched(victim):
    assert victim.read_text() == "DATA" and sorted(p.name for p in victim.parent.iterdir()) == ["victim.txt"]


def test_links_planted_under_temporary_and_probe_names_are_never_written_through(tmp_path, victim, capsys):
    out = tmp_path / "o"
    out.mkdir()
    pid = os.getpid()
    names = [f".out.png.probe.{pid}.tmp", f".out.png.probe.{pid + 1}.tmp", ".out.png.abcdefgh.tmp",
             ".out.json.12345678.tmp", ".out.ckpt.npz.zzzzzzzz.tmp", ".out.losses.jsonl.a1b2c3d4.tmp"]
    for name in names:
        (out / name).symlink_to(victim)
    code, _, err = call_main(run_main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "2", "--quiet",
                                        "--checkpoint-every", "1", "--keep-checkpoint", "-o", out / "out.png"], capsys)
    assert code == 0, err
    _untouched(victim)
    assert all((out / name).is_symlink() for name in names)   # not ours: left alone


def test_a_dangling_log_link_is_refused_not_followed(tmp_path, victim, capsys):
    out = tmp_path / "o" / "out.png"
    argv = [CONTENT, STYLE, *SMALL_FLAGS, "--quiet", "--keep-checkpoint", "-o", out]
    assert call_main(run_main, [*argv, "--iterations", "2"], capsys)[0] == 0
    log = RunFiles(out).log
    log.unlink()
    target = victim.parent / "created-by-the-run.jsonl"
    log.symlink_to(target)                                     # dangling: its target does not exist
    line = one_error_line(run_main, [*argv, "--iterations", "4"], capsys)
    assert "symbolic link" in line and str(log) in line
    assert not target.exists() and log.is_symlink()
    _untouched(victim)


def test_the_report_replaces_links_in_its_files_instead_of_writing_through_them(tmp_path, victim):
    from nst_jax.studies.sweep import sweep
    out = tmp_path / "s"
    grid = {"init": ["content", "noise"], "content_layers": [["relu3_2"]], "style_layers": [["relu1_1"]]}
    sweep(1, grid, out, {"content": str(CONTENT), "styles": (str(STYLE),), "size": 32, "checkpoint_every": 0},
          show_progress=False)
    report.write_report(out)
    for name in ("losses.png", "sheet_init.png", "index.html"):
        (out / name).unlink()
        (out / name).symlink_to(victim)
    report.write_report(out)
    _untouched(victim)
    for name in ("losses.png", "sheet_init.png", "index.html"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 100


def test_a_settings_hash_from_a_checkpoint_never_becomes_a_path(tmp_path, victim, capsys):
    out = tmp_path / "o" / "out.png"
    files = RunFiles(out)
    out.parent.mkdir()
    argv = [CONTENT, STYLE, *SMALL_FLAGS, "--quiet", "--iterations", "3", "-o", out]
    assert call_main(run_main, [*argv, "--keep-checkpoint"], capsys)[0] == 0
    meta = files.checkpoint_meta()
    import zipfile
    with np.load(files.checkpoint) as data:
        arrays = {k: data[k] for k in data.files}
    for evil in ("/../../../outside/victim", "../outside/x", "0123456789abcdeg", "<script>"):
        arrays["meta"] = np.frombuffer(json.dumps({**meta, "config_hash": evil, "iteration": 1}).encode(), np.uint8)
        np.savez(files.checkpoint, **arrays)
        line = one_error_line(run_main, [*argv, "--style-weight", "7"], capsys)   # other settings: set aside?
        assert "config_hash" in line and "16 hexadecimal digits" in line, line
        _untouched(victim)
        assert zipfile.is_zipfile(files.checkpoint)                 # kept where it was
    with pytest.raises(NSTError, match="not one"):
        files.aside("../../x")


def test_every_value_from_a_file_is_escaped_in_the_report(tmp_path):
    from nst_jax.studies.sweep import sweep
    out = tmp_path / "s"
    grid = {"init": ["content"], "content_layers": [["relu3_2"]], "style_layers": [["relu1_1"]]}
    sweep(1, grid, out, {"content": str(CONTENT), "styles": (str(STYLE),), "size": 32, "checkpoint_every": 0},
          show_progress=False)
    manifest = json.loads((out / "sweep.json").read_text())
    manifest["grid"]["init"] = ["<b onmouseover=alert(1)>x"]
    (out / "sweep.json").write_text(json.dumps(manifest))
    page = report.write_report(out).read_text()
    assert "<b onmouseover" not in page and "&lt;b onmouseover=alert(1)&gt;x" in page
    sidecar = next(out.glob("*/result.json"))
    record = json.loads(Path(sidecar).read_text())
    for field, value in (("iteration", "<script>alert(3)</script>"), ("loss", "<b>big</b>")):
        Path(sidecar).write_text(json.dumps({**record, field: value}))
        with pytest.raises(NSTError, match=f"'{field}' must be"):
            report.write_report(out)
    manifest["iterations"] = "<script>alert(4)</script>"
    (out / "sweep.json").write_text(json.dumps(manifest))
    with pytest.raises(NSTError, match="'iterations' must be an integer"):
        report.write_report(out)


def test_every_file_a_run_may_write_is_checked_against_its_inputs(tmp_path, capsys):
    from PIL import Image
    Image.open(CONTENT).save(tmp_path / "x_iter00001.png")
    Image.open(STYLE).save(tmp_path / "x.ckpt-0123456789abcdef.npz.png")
    for content in ("x_iter00001.png",):
        line = one_error_line(run_main, [tmp_path / content, STYLE, *SMALL_FLAGS, "--save-every", "1", "-o",
                                         tmp_path / "x.png"], capsys)
        assert "would overwrite an input image" in line and content in line
    owner = RunFiles(tmp_path / "x.png")
    for name in ("x.png", "x.json", "x.losses.jsonl", "x.ckpt.npz", "x.error.txt", "x.lock", "x_iter00050.png",
                 "x.ckpt-0123456789abcdef.npz", "x.losses-0123456789abcdef.jsonl", ".x.png.abcd_123.tmp"):
        assert owner.owns(tmp_path / name), name
    for name in ("y.png", "x_iter.png", "x.ckpt-0123.npz", "x.png.bak", ".x.png.abc.tmp", "sub/x.png"):
        assert not owner.owns(tmp_path / name), name


def test_a_result_never_takes_over_the_sidecar_of_a_result_with_another_extension(tmp_path, capsys):
    argv = [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "1", "--quiet"]
    assert call_main(run_main, [*argv, "-o", tmp_path / "r.jpg"], capsys)[0] == 0
    before = (tmp_path / "r.json").read_text()
    line = one_error_line(run_main, [*argv, "-o", tmp_path / "r.png"], capsys)
    assert "r.json" in line and "r.jpg" in line
    assert (tmp_path / "r.json").read_text() == before and not (tmp_path / "r.png").exists()
    assert call_main(run_main, [*argv, "-o", tmp_path / "q.png"], capsys)[0] == 0
    shutil.copy(CONTENT, tmp_path / "q.jpg")   # an unrelated picture of the same name: q.json stays q.png's
    code, out, err = call_main(run_main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "2", "-o", tmp_path / "q.png"],
                               capsys)
    assert code == 0 and "after 2 iterations" in out, err


def test_a_failed_run_leaves_no_new_folder(tmp_path, capsys):
    target = tmp_path / "new" / "deeper" / "out.png"
    one_error_line(run_main, [CONTENT, STYLE, "--size", "8", "-o", target], capsys)   # too small for the layers
    assert not (tmp_path / "new").exists()


_HOLDER = """
import os, sys, time
from pathlib import Path
from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import Lock
lock, holders, start = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
while time.time() < start:
    time.sleep(0.0005)
try:
    with Lock(lock, "output x.png"):
        mine = holders / str(os.getpid())
        mine.touch()
        time.sleep(0.02)
        others = len(list(holders.iterdir()))
        mine.unlink()
        print("HELD", others)
except NSTError:
    print("REFUSED")
"""


def test_six_processes_taking_one_lock_at_once_never_both_hold_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    refused = 0
    for trial in range(8):
        holders = tmp_path / f"h{trial}"
        holders.mkdir()
        start = time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / f"x{trial}.lock"), str(holders),
                                   str(start)], env=env, stdout=subprocess.PIPE, text=True) for _ in range(6)]
        outs = [p.communicate(timeout=60)[0].split() for p in procs]
        held = [int(o[1]) for o in outs if o[0] == "HELD"]
        assert held and all(n == 1 for n in held), outs   # one holder at a time, every time
        refused += sum(o[0] == "REFUSED" for o in outs)
        assert not (tmp_path / f"x{trial}.lock").exists()
    assert refused > 0   # the processes did contend


def test_sigterm_ends_a_run_like_ctrl_c(tmp_path):
    out = tmp_path / "t.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "nst_jax.run", CONTENT, STYLE, *SMALL_FLAGS, "--iterations",
                             "100000", "--print-every", "1", "--checkpoint-every", "5", "-o", out], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    log = RunFiles(out).log
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.1)
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: the image so far is written" in err and "Traceback" not in err
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["interrupted"] is True and out.exists() and not out.with_suffix(".lock").exists()


def test_an_interrupt_before_the_first_step_does_not_claim_an_image(tmp_path, capsys, monkeypatch):
    from nst_jax.transfer import runs as transfer

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(transfer, "load_inputs", interrupted)
    code, _, err = call_main(run_main, [CONTENT, STYLE, *SMALL_FLAGS, "-o", tmp_path / "e.png"], capsys)
    assert code == 130 and err == ["interrupted: stopped before the first step ended, so no image was written (a "
                                   "checkpoint from before is kept); run the same command to start or continue"]
    assert not (tmp_path / "e.png").exists()


def test_an_unreachable_coordinator_is_one_line_soon(tmp_path, capsys, monkeypatch):
    from nst_jax.scale import hosts
    monkeypatch.setattr(hosts, "REACH_TIMEOUT_S", 1.0)
    t = time.time()
    line = one_error_line(run_main, [CONTENT, STYLE, "--coordinator", "127.0.0.1:1", "--processes", "2",
                                     "--process-id", "1", "-o", tmp_path / "c.png"], capsys)
    assert "nothing answers there" in line and time.time() - t < 30
    assert "expected HOST:PORT" in one_error_line(run_main, [CONTENT, STYLE, "--coordinator", "nowhere",
                                                             "--processes", "2", "-o", tmp_path / "c.png"], capsys)


def test_records_from_files_are_objects_of_the_right_kinds_or_one_line():
    from hypothesis import given, settings, strategies as st
    leaf = st.none() | st.booleans() | st.integers(-5, 10 ** 12) | st.floats(allow_nan=True) | st.text(max_size=8)
    value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                          max_size=3), max_leaves=8)
    fields = list(records.SIDECAR) + list(records.CHECKPOINT) + list(records.MANIFEST) + ["runs", "grid"]

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(st.sampled_from(fields), value, max_size=10) | value)
    def check(record):
        for validate in (lambda r: records.sidecar(r, "x.json"), lambda r: records.checkpoint_meta(r, "x.ckpt.npz"),
                         lambda r: records.manifest(r, "sweep.json"), lambda r: records.log_record(r, "x.jsonl", 1)):
            try:
                validate(record)
            except NSTError as err:
                assert "\n" not in str(err)
    check()


def test_bounds_are_one_line_and_quick(tmp_path, capsys):
    from nst_jax.studies import dissect
    from nst_jax.studies.sweep import main as sweep_main
    t = time.time()
    line = one_error_line(run_main, [CONTENT, STYLE, "--history", "60000", "-o", tmp_path / "h.png"], capsys)
    assert "L-BFGS 60000×60000 matrices" in line or "needs about" in line
    assert "device count must be from 1 to 65536" in one_error_line(
        run_main, [CONTENT, STYLE, "--plan", "100000000000000000000000x80GB"], capsys)
    assert "expected the devices to plan for" in one_error_line(run_main, [CONTENT, STYLE, "--plan", "1e23x80GB"], capsys)
    assert "larger than 8192" in one_error_line(dissect.main, ["views", "--size", "9000", "-o", tmp_path / "d"], capsys)
    assert not (tmp_path / "d").exists()
    for n, values in ((3, 1000), (2, 317)):   # 10⁹ and 100 489 points
        grid = tmp_path / f"g{n}.json"
        grid.write_text(json.dumps({k: [float(v) for v in range(values)] for k in
                                    ("style_weight", "content_weight", "tv_weight")[:n]}))
        line = one_error_line(sweep_main, ["1", "--grid", grid, "--out", tmp_path / f"o{n}"], capsys)
        assert "grid points" in line and "at most 10,000" in line and not (tmp_path / f"o{n}").exists()
    assert time.time() - t < 60
