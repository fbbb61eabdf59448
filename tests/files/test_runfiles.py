"""`RunFiles` on its own: the layout of one run's files, the log rewind, what it owns, what is finished."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nst_jax.base.errors import NSTError
from nst_jax.files.runfiles import RunFiles, read_log
from nst_jax.transfer.stopping import StopRule

from conftest import fake_state


def test_the_layout_of_one_run(tmp_path):
    f = RunFiles(tmp_path / "a.b.png")
    assert (f.sidecar.name, f.log.name, f.checkpoint.name, f.error.name, f.lock_file.name) == \
        ("a.b.json", "a.b.losses.jsonl", "a.b.ckpt.npz", "a.b.error.txt", "a.b.lock")
    assert f.intermediate(50).name == "a.b_iter00050.png"
    assert f.aside("0123456789abcdef").name == "a.b.ckpt-0123456789abcdef.npz"
    assert f.paths() == {"image": str(f.image), "sidecar": str(f.sidecar), "log": str(f.log),
                         "checkpoint": str(f.checkpoint)}
    for bad in ("0123456789ABCDEF", "0123", "../../x", None, 5):
        with pytest.raises(NSTError):
            f.aside(bad)


def test_rewinding_the_log_keeps_the_lines_up_to_the_checkpoint(tmp_path):
    f = RunFiles(tmp_path / "r.png")
    f.start_log({"iteration": 0, "loss": 9.0})
    with f.open_log() as log:
        for it in range(1, 6):
            log.write(json.dumps({"iteration": it, "loss": 9.0 - it}) + "\n")
    f.rewind_log(3)
    assert [r["iteration"] for r in f.read_log()] == [0, 1, 2, 3]
    f.log.write_text('{"iteration": 0, "loss": 1}\n{"iteration": "x", "loss": 1}\n')
    with pytest.raises(NSTError, match="line 2"):
        read_log(f.log)


def test_intermediates_are_found_by_their_names_only(tmp_path):
    f = RunFiles(tmp_path / "r.png")
    for it in (1, 20, 300):
        f.write_intermediate(it, np.zeros((4, 4, 3), np.float32))
    (tmp_path / "r_iterXX.png").write_bytes(b"")
    (tmp_path / "other_iter00002.png").write_bytes(b"")
    assert sorted(f.intermediates()) == [1, 20, 300]


def test_set_aside_and_restore_move_the_checkpoint_and_its_log(tmp_path):
    f = RunFiles(tmp_path / "r.png")
    f.save_checkpoint(fake_state(), config_hash="0123456789abcdef", solver="x", iteration=2, offset=0, target=9,
                      seconds=1.0)
    f.start_log({"iteration": 0, "loss": 1.0})
    aside = f.set_aside("0123456789abcdef")
    assert aside.exists() and not f.checkpoint.exists() and not f.log.exists()
    f.restore("0123456789abcdef")
    assert f.checkpoint.exists() and f.log.exists() and not aside.exists()
    assert f.iteration_reached() == 2


def test_finished_means_the_target_or_a_covering_stopping_rule(tmp_path):
    f = RunFiles(tmp_path / "r.png")
    assert not f.finished(5)
    record = {"config": {}, "settings_hash": "0123456789abcdef", "iteration": 3, "loss": 1.0,
              "parts": {"content": 1.0, "style": 0.0, "tv": 0.0}, "seconds": 1.0}
    f.write_result(np.zeros((4, 4, 3), np.float32), record)
    assert f.finished(3) and not f.finished(5) and f.iteration_reached() == 3
    f.write_result(np.zeros((4, 4, 3), np.float32), {**record, "converged": {"tol": 1e-3, "window": 20}})
    assert f.finished(500, StopRule(1e-3, 20)) and not f.finished(500, StopRule(1e-4, 20)) and not f.finished(500)
