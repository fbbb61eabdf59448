"""`resume.start` on its own: where a run starts for every combination of files it can find."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nst_jax.transfer import start
from nst_jax.transfer.start import Start
from nst_jax.base.errors import NSTError
from nst_jax.files.runfiles import RunFiles

from conftest import fake_state
from conftest import small_cfg
from nst_jax.transfer.identity import settings_hash


@pytest.fixture
def setup(tmp_path):
    cfg = small_cfg(tmp_path / "out.png", iterations=10)
    return cfg, RunFiles(cfg.output), []


def _result(files, cfg, iteration, **extra):
    files.write_result(np.zeros((4, 4, 3), np.float32),
                       {"config": cfg.to_dict(), "settings_hash": extra.pop("hash", settings_hash(cfg)),
                        "iteration": iteration, "loss": 1.0, "parts": {"content": 1.0, "style": 0.0, "tv": 0.0},
                        "seconds": 1.0, **extra})


def _checkpoint(files, cfg, iteration, target=10, light=False, hash=None):
    files.save_checkpoint(fake_state(), config_hash=hash or settings_hash(cfg), solver="lbfgs", iteration=iteration,
                          offset=0, target=target, seconds=2.0, light=light)


def test_nothing_there_starts_fresh_silently(setup):
    cfg, files, said = setup
    assert start.find(cfg, files, settings_hash(cfg), False, said.append) == Start("fresh") and said == []


def test_a_finished_result_is_done(setup):
    cfg, files, said = setup
    _result(files, cfg, 10)
    assert start.find(cfg, files, settings_hash(cfg), False, said.append) == Start("done", 10)
    _result(files, cfg, 10, interrupted=True)   # an interrupted one is not
    assert start.find(cfg, files, settings_hash(cfg), False, said.append).kind == "image"


def test_a_result_the_stopping_rule_ended_is_done_for_its_rule(setup):
    cfg, files, said = setup
    _result(files, cfg, 4, converged={"tol": 1e-3, "window": 20})
    ruled = dataclasses.replace(cfg, tol=1e-3, iterations=500)
    assert start.find(ruled, files, settings_hash(ruled), False, said.append) == Start("done", 4)
    assert start.find(dataclasses.replace(ruled, tol=1e-4), files, settings_hash(dataclasses.replace(ruled, tol=1e-4)), False, said.append).kind == "image"


def test_checkpoints_continue_exactly_or_from_their_image(setup):
    cfg, files, said = setup
    _checkpoint(files, cfg, 6)
    files.start_log({"iteration": 0, "loss": 1.0})
    assert start.find(cfg, files, settings_hash(cfg), False, said.append) == Start("checkpoint", 6)
    _checkpoint(files, cfg, 7, light=True)
    assert start.find(cfg, files, settings_hash(cfg), False, said.append) == Start("light", 7) and said == []


def test_only_a_result_below_the_target_continues_from_its_image_and_says_so(setup):
    cfg, files, said = setup
    _result(files, cfg, 4)
    assert start.find(cfg, files, settings_hash(cfg), False, said.append) == Start("image", 4)
    assert "continuing from its image at iteration 4 with a fresh solver state" in said[0]


def test_other_settings_set_an_unfinished_run_aside_and_bring_it_back(setup):
    cfg, files, said = setup
    other = dataclasses.replace(cfg, style_weight=7.0)
    _checkpoint(files, other, 3, hash=settings_hash(other))
    files.start_log({"iteration": 0, "loss": 1.0})
    assert start.find(cfg, files, settings_hash(cfg), False, said.append) == Start("fresh")
    aside = files.aside(settings_hash(other))
    assert aside.exists() and not files.checkpoint.exists() and "kept in" in said[-1]
    assert start.find(other, files, settings_hash(other), False, said.append) == Start("checkpoint", 3)  # restored
    assert files.checkpoint.exists() and not aside.exists() and "set aside earlier" in said[-1]


def test_other_settings_replace_a_finished_run_and_restart_removes_the_checkpoint(setup):
    cfg, files, said = setup
    other = dataclasses.replace(cfg, style_weight=7.0)
    _checkpoint(files, other, 10, target=10, hash=settings_hash(other))   # finished: not worth keeping
    assert start.find(cfg, files, settings_hash(cfg), False, said.append) == Start("fresh")
    assert not files.checkpoint.exists() and "will be replaced" in said[-1]
    _result(files, other, 10, hash=settings_hash(other))
    assert start.find(cfg, files, settings_hash(cfg), False, said.append) == Start("fresh") and "will be replaced" in said[-1]
    _checkpoint(files, cfg, 5)
    assert start.find(cfg, files, settings_hash(cfg), True, said.append) == Start("fresh") and not files.checkpoint.exists()


def test_a_broken_checkpoint_is_one_line(setup):
    cfg, files, said = setup
    files.image.parent.mkdir(parents=True, exist_ok=True)
    files.checkpoint.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(NSTError, match="unreadable"):
        start.find(cfg, files, settings_hash(cfg), False, said.append)
    files.checkpoint.unlink()
    _result(files, cfg, 4)
    record = json.loads(files.sidecar.read_text())
    files.sidecar.write_text(json.dumps({**record, "iteration": "4"}))
    with pytest.raises(NSTError, match="'iteration' must be an integer"):
        start.find(cfg, files, settings_hash(cfg), False, said.append)


def test_a_checkpoint_recording_fused_forms_this_cpu_lacks_says_why_it_cannot_continue(setup, monkeypatch):
    from nst_jax.model import convforms, fused
    cfg, files, _ = setup
    h = settings_hash(cfg)
    forms = convforms.Forms((("conv1_1", "xla", "xla"), ("conv1_2", "f4fa3", "f4f")), "measured")
    files.save_checkpoint(fake_state(), config_hash=h, solver="lbfgs", iteration=3, offset=0, target=10,
                          seconds=1.0, forms=forms)
    monkeypatch.setattr(fused, "why_unavailable", lambda: None)
    monkeypatch.setattr(fused, "bf16_units", lambda: ("amx",))                       # a CPU with AMX: it can
    assert start.cannot_continue_here(files, h) is None
    monkeypatch.setattr(fused, "bf16_units", lambda: ())                             # one without
    assert start.cannot_continue_here(files, h) == ("its checkpoint records the form f4fa3, not available here "
                                                    "(this CPU, or this build of the kernel, has no AMX products)")
    monkeypatch.setattr(fused, "why_unavailable", lambda: "no C++ compiler")         # nor the kernel at all
    assert start.cannot_continue_here(files, h) == ("its checkpoint records the form f4f, not available here "
                                                    "(no C++ compiler)")
    assert start.cannot_continue_here(files, "0" * 16) is None    # another settings' checkpoint: `find` sets it aside
    files.remove_checkpoint()
    assert start.cannot_continue_here(files, h) is None
