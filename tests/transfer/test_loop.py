"""`loop.drive` on its own, with a fake step: log lines, checkpoints, NaN, interrupts, the stopping rule."""

from __future__ import annotations

import json
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.transfer.loop import Best, Hooks, Member, drive, log_record, log_schedule, save_checkpoints
from nst_jax.files.checkpoints import Schedule
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


def member(tmp_path, finished, target=5, name="out.png", bests=None):
    files = RunFiles(tmp_path / name)
    files.start_log(log_record(0, 100.0, {"content": 100.0, "style": 0.0, "tv": 0.0}, 0.0))

    def finish(st, iteration, seconds, interrupted, converged=False, best=None):
        finished.append((iteration, interrupted, converged, float(st.value)))
        if bests is not None:
            bests.append(best)
    return Member(files, HASH, "fake", target, lambda x: np.asarray(x)[..., :3], finish)


def _drive(m, step, target=5, **kw):
    hooks = Hooks(**{k: kw.pop(k) for k in Hooks._fields if k in kw})
    kw = {"batched": False, "checkpoints": Schedule(), **kw}
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
    _drive(m, stepper(), checkpoints=Schedule(2), save_at=lambda it: it % 2 == 1, offset=10, target=15)
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
        _drive(m, stepper(interrupt_at=4), checkpoints=Schedule(10))
    assert info.value.image_written is True
    assert finished == [(3, True, False, 12.5)]
    assert m.files.checkpoint_meta()["iteration"] == 3
    assert [r["iteration"] for r in m.files.read_log()] == [0, 1, 2, 3]


def test_checkpoints_by_time_follow_the_runs_clock_not_its_iterations(tmp_path, monkeypatch):
    """Every step takes 4 minutes of a fake clock: with a 10-minute schedule the state is written at 12 min
    (step 3) and 24 min (step 6), whatever the iterations; none is due at the last step (the run finishes)."""
    clock = [0.0]
    monkeypatch.setattr("nst_jax.transfer.loop.time.perf_counter", lambda: clock[0])
    slow = stepper()

    def step(st, aux):
        clock[0] += 240.0
        return slow(st, aux)
    saved = []
    m = member(tmp_path, [], target=9)
    _drive(m, step, target=9, checkpoints=Schedule(minutes=10), on_checkpoint=saved.append)
    assert saved == [3, 6]
    assert m.files.checkpoint_meta()["iteration"] == 6


def test_both_schedules_at_zero_write_no_checkpoint_even_on_ctrl_c(tmp_path):
    finished = []
    m = member(tmp_path, finished)
    with pytest.raises(KeyboardInterrupt):
        _drive(m, stepper(interrupt_at=4), checkpoints=Schedule(0, 0.0))
    assert not m.files.checkpoint.exists() and finished == [(3, True, False, 12.5)]


def test_the_schedule_describes_itself_for_the_header():
    assert Schedule(0, 10.0).describe() == "every 10 minutes and on Ctrl-C"
    assert Schedule(25, 1.0).describe() == "every 25 iterations or 1 minute and on Ctrl-C"
    assert Schedule(5, 0.0).describe() == "every 5 iterations and on Ctrl-C"
    assert Schedule().describe() == "none" and not Schedule().on


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
    drive(stepper(factor=0.9999), state, lambda it: None, [m], 50, batched=False, checkpoints=Schedule(0),
          stop_rule=StopRule(2e-4, 3))
    assert finished[0][0] == 3   # the window 0…3 spans the earlier run's lines


def stepper_through(values):
    """A step whose loss at iteration i is values[i] (the image moves by 0.01 a step)."""
    def step(st, aux):
        it = int(st.iteration) + 1
        value = jnp.float32(values[it])
        return FakeState(st.x + 0.01, value, {**st.parts, "content": value}, st.iteration + 1, st.evaluations + 1)
    return step


def test_a_run_the_rule_stops_ends_with_its_lowest_loss_image_not_the_last(tmp_path):
    """Iteration 3 rose above iteration 2: the rule stops at 3, and the run ends with iteration 2's image."""
    finished, bests = [], []
    m = member(tmp_path, finished, target=50, bests=bests)
    outcome = _drive(m, stepper_through({1: 99.99, 2: 99.97, 3: 99.98}), target=50, stop_rule=StopRule(2e-4, 3))
    assert finished[0][:3] == (3, False, True)
    best = bests[0]
    assert (best.iteration, best.value) == (2, pytest.approx(99.97))
    np.testing.assert_allclose(best.x, np.asarray(fake_state().x)[0] + 0.02, rtol=1e-6)
    assert outcome.stopped[0][3] is best


def test_the_lowest_loss_image_survives_a_resume_through_the_checkpoint(tmp_path):
    """An earlier process reached its lowest loss at iteration 1 and wrote it in its checkpoint at 2; the
    resumed run, stopped by the rule at 3, ends with that image (its loss from the log)."""
    finished, bests = [], []
    m = member(tmp_path, finished, target=50, bests=bests)
    with open(m.files.log, "a") as f:
        for it, v in ((1, 99.0), (2, 99.97)):
            f.write(json.dumps(log_record(it, v, {"content": v, "style": 0.0, "tv": 0.0}, 0.0)) + "\n")
    state = fake_state(99.97)._replace(iteration=jnp.int32(2))
    marked = np.full(np.asarray(state.x).shape[1:], 0.5, np.float32)
    save_checkpoints(state, [m], False, set(), 2, 0, 1.0, [Best(1, 99.0, {"content": 99.0}, marked)])
    drive(stepper_through({3: 99.98}), state, lambda it: None, [m], 50, batched=False, checkpoints=Schedule(0),
          stop_rule=StopRule(2e-3, 3))
    assert finished[0][0] == 3 and bests[0].iteration == 1 and bests[0].value == 99.0
    np.testing.assert_array_equal(bests[0].x, marked)
