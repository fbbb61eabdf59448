"""`loop.drive` on its own, with a fake step: log lines, checkpoints, NaN, interrupts, the stopping rule."""

from __future__ import annotations

import json
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.transfer.loop import Hooks, Member, drive, log_record, log_schedule
from nst_jax.files.runfiles import RunFiles
from nst_jax.transfer.stopping import StopRule

from conftest import HASH, FakeState, fake_state

def stepper(factor=0.5, nan_at=None, interrupt_at=None):
    def step(st, aux):
        it = int(st.iteration) + 1
        if interrupt_at == it:
            raise KeyboardInterrupt
        value = jnp.float32(np.nan) if nan_at == it else st.value * factor
        return FakeState(st.x + 0.01, value, {**st.parts, "content": value}, st.iteration + 1, st.evaluations + 1)
    return step


def member(tmp_path, finished, target=5, name="out.png"):
    files = RunFiles(tmp_path / name)
    files.start_log(log_record(0, 100.0, {"content": 100.0, "style": 0.0, "tv": 0.0}, 0.0))

    def finish(st, iteration, seconds, interrupted, converged=False):
        finished.append((iteration, interrupted, converged, float(st.value)))
    return Member(files, HASH, "fake", target, lambda x: np.asarray(x)[..., :3], finish)


def _drive(m, step, target=5, **kw):
    hooks = Hooks(**{k: kw.pop(k) for k in Hooks._fields if k in kw})
    kw = {"batched": False, "checkpoint_every": 0, **kw}
    return drive(step, fake_state(), lambda it: None, [m], target, hooks=hooks, **kw)


def test_one_step_one_log_line_and_no_finish(tmp_path):
    finished = []
    m = member(tmp_path, finished)
    seen = []
    outcome = _drive(m, stepper(), on_step=lambda it, alive, value, parts: seen.append((it, alive, value)))
    log = m.files.read_log()
    assert [r["iteration"] for r in log] == [0, 1, 2, 3, 4, 5]
    assert [r["loss"] for r in log[1:]] == [50.0, 25.0, 12.5, 6.25, 3.125]
    assert outcome.iteration == 5 and not outcome.failures and not outcome.stopped and finished == []
    assert seen == [(1, 1, 50.0), (2, 1, 25.0), (3, 1, 12.5), (4, 1, 6.25), (5, 1, 3.125)]


def test_checkpoints_at_the_interval_never_at_the_target_and_intermediates(tmp_path):
    m = member(tmp_path, [])
    _drive(m, stepper(), checkpoint_every=2, save_at=lambda it: it % 2 == 1, offset=10, target=15)
    meta = m.files.checkpoint_meta()
    assert meta["iteration"] == 14 and meta["offset"] == 10 and meta["target"] == 5 and meta["config_hash"] == HASH
    assert sorted(m.files.intermediates()) == [11, 13]   # 15 is the target: the result, not an intermediate
    assert [i for i in range(0, 1001) if log_schedule(i)] == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]


def test_nan_keeps_the_last_good_image_and_stops_logging(tmp_path):
    m = member(tmp_path, [])
    outcome = _drive(m, stepper(nan_at=3))
    assert [r["iteration"] for r in m.files.read_log()] == [0, 1, 2]
    assert "the loss became nan at iteration 3" in outcome.failures[0] and m.files.image.exists()


def test_an_interrupt_writes_the_checkpoint_and_the_image_so_far(tmp_path):
    finished = []
    m = member(tmp_path, finished)
    with pytest.raises(KeyboardInterrupt) as info:
        _drive(m, stepper(interrupt_at=4), checkpoint_every=10)
    assert info.value.image_written is True
    assert finished == [(3, True, False, 12.5)]
    assert m.files.checkpoint_meta()["iteration"] == 3
    assert [r["iteration"] for r in m.files.read_log()] == [0, 1, 2, 3]


def test_the_stopping_rule_finishes_the_member_where_it_is_met(tmp_path):
    finished = []
    m = member(tmp_path, finished, target=50)
    outcome = _drive(m, stepper(factor=0.9999), target=50, stop_rule=StopRule(2e-4, 3))
    assert finished == [(3, False, True, pytest.approx(100 * 0.9999 ** 3, rel=1e-6))]
    assert outcome.stopped[0][0] == 3 and len(m.files.read_log()) == 4


def test_the_rule_reads_a_resumed_runs_window_from_its_log(tmp_path):
    finished = []
    m = member(tmp_path, finished, target=50)
    with open(m.files.log, "a") as f:   # iterations 1, 2 as an earlier run logged them
        for it, v in ((1, 99.99), (2, 99.98)):
            f.write(json.dumps(log_record(it, v, {"content": v, "style": 0.0, "tv": 0.0}, 0.0)) + "\n")
    state = fake_state(99.98)._replace(iteration=jnp.int32(2))
    drive(stepper(factor=0.9999), state, lambda it: None, [m], 50, batched=False, checkpoint_every=0,
          stop_rule=StopRule(2e-4, 3))
    assert finished[0][0] == 3   # the window 0…3 spans the earlier run's lines
