"""How a run ends: the sidecar record a finished run writes (what reproduces it, checked by the schema it is
read back with), the result image, the checkpoint kept or removed, an interrupted or converged or batched
run's extra fields, one RunResult per run of a driven batch, and the result of a run already finished."""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import HASH, fake_state, small_cfg
from nst_jax.files import image
from nst_jax.files.runfiles import RunFiles
from nst_jax.model import convforms
from nst_jax.transfer import finish, planning
from nst_jax.transfer.config import with_preset
from nst_jax.transfer.loop import Best, Member, Outcome
from nst_jax.transfer.problem import Problem

INFO = {"format": "nst_jax.vgg19", "format_version": np.int64(1), "path": "weights/x.h5"}


def _problem(h=4, w=4):
    content = np.full((h, w, 3), 0.5, np.float32)
    return Problem(content, [content], content, None, None, None, None, INFO)


def _state(value=12.5, x=0.25):
    st = fake_state(value)
    return st._replace(x=jnp.full((1, 4, 4, 3), x), parts={"content": jnp.float32(2.0), "style": jnp.float32(0.1),
                                                           "tv": jnp.float32(0.5)}, evaluations=jnp.int32(9))


def _setup(tmp_path, runs=1, forms=convforms.NONE, **kw):
    cfg = small_cfg(tmp_path / "out.png", **kw)
    plan = planning.plan_run(cfg)._replace(forms=forms)
    files = RunFiles(cfg.output)
    return cfg, plan, files, finish.finisher(cfg, plan, _problem(), files, HASH, 3, runs)


def test_a_finished_run_writes_its_result_and_a_sidecar_that_reproduces_it(tmp_path):
    cfg, plan, files, done = _setup(tmp_path)
    done(_state(), 8, 3.14159, False)
    rec = files.read_sidecar()                      # read back through the sidecar's schema
    assert rec["config"] == json.loads(json.dumps(plan.record(cfg)))
    rerun = with_preset(rec["config"].pop("preset"), **rec["config"])    # the record reruns as this run ran
    assert rerun == dataclasses.replace(cfg, memory=plan.memory, devices=1, precision=plan.precision)
    assert (rec["settings_hash"], rec["iteration"], rec["seconds"], rec["evaluations"]) == (HASH, 8, 3.142, 9)
    assert rec["loss"] == 12.5 and rec["parts"] == {"content": 2.0, "style": pytest.approx(0.1), "tv": 0.5}
    w_c, k, w_tv = cfg.loss_weights   # the parts as the console shows them: times their weights
    assert rec["weighted_parts"] == {"content": 2.0 * w_c, "style": pytest.approx(0.1 * k), "tv": 0.5 * w_tv}
    assert rec["weights"] == {"format": "nst_jax.vgg19", "format_version": "1", "path": "weights/x.h5"}
    assert rec["image_size"] == [4, 4] and rec["device"] == str(jax.devices()[0])
    assert rec["command"].startswith("python ")
    mem = plan.figure
    assert rec["memory_plan"] == {"way": mem.way, "devices": 1, "bytes": round(mem.needed),
                                  "available": round(mem.available) if mem.available < math.inf else None}
    for absent in ("interrupted", "converged", "batched_with", "conv_forms", "peak_device_bytes"):
        assert absent not in rec, absent                 # on one CPU device, run alone, to its target
    img = image.load_image(files.image)
    assert img.shape == (4, 4, 3) and np.abs(img - 0.25).max() <= 1 / 255
    assert files.finished(8) and not files.finished(9)


def test_the_checkpoint_is_removed_at_the_end_unless_kept(tmp_path):
    cfg, plan, files, done = _setup(tmp_path)
    files.save_checkpoint(_state(), config_hash=HASH, solver="lbfgs", iteration=5, offset=0, target=6, seconds=1.0)
    done(_state(), 6, 2.0, False)
    assert not files.checkpoint.exists()
    forms = convforms.Forms((("conv1_1", "xla", "xla"), ("conv2_1", "f4", "f2")), "asked")
    cfg, plan, files, done = _setup(tmp_path / "kept", keep_checkpoint=True, light_checkpoint=True, forms=forms)
    done(_state(), 6, 2.0, False)
    meta = files.checkpoint_meta()
    assert meta == {"config_hash": HASH, "solver": cfg.optimizer, "iteration": 6, "offset": 3,
                    "target": cfg.iterations, "seconds": 2.0, "light": True,
                    "conv_forms": [["conv1_1", "xla", "xla"], ["conv2_1", "f4", "f2"]]}
    x, _ = files.load_light_checkpoint((1, 4, 4, 3), HASH)
    np.testing.assert_array_equal(x, np.full((1, 4, 4, 3), 0.25, np.float32))


def test_an_interrupted_run_writes_its_image_so_far_and_keeps_its_checkpoint(tmp_path):
    cfg, plan, files, done = _setup(tmp_path, keep_checkpoint=True)
    files.save_checkpoint(_state(), config_hash=HASH, solver="lbfgs", iteration=4, offset=0, target=6, seconds=1.0)
    before = files.checkpoint.read_bytes()
    done(_state(), 5, 2.0, True)
    assert files.read_sidecar()["interrupted"] is True
    assert files.checkpoint.read_bytes() == before      # neither removed nor rewritten
    assert files.image.exists()


def test_a_converged_batched_run_with_forms_records_each(tmp_path):
    forms = convforms.Forms((("conv1_1", "xla", "xla"), ("conv2_1", "f4", "xla")), "cache")
    cfg, plan, files, done = _setup(tmp_path, runs=3, forms=forms, tol=1e-3, tol_window=5)
    done(_state(), 7, 1.0, False, True)
    rec = files.read_sidecar()
    assert rec["converged"] == {"tol": 1e-3, "window": 5} and rec["batched_with"] == 3
    assert rec["conv_forms"] == {"forms": [["conv1_1", "xla", "xla"], ["conv2_1", "f4", "xla"]], "source": "cache",
                                 "native_gram": False}
    assert cfg.stop_rule.covers(rec)                    # finished whatever the iteration target


def test_a_run_the_rule_stopped_writes_its_lowest_loss_image_and_says_where_it_is_from(tmp_path):
    cfg, plan, files, done = _setup(tmp_path, tol=1e-3, tol_window=5, keep_checkpoint=True)
    parts = {"content": 1.0, "style": 0.05, "tv": 0.25}
    done(_state(), 7, 1.0, False, True, best=Best(5, 11.0, parts, np.full((4, 4, 3), 0.75, np.float32)))
    rec = files.read_sidecar()
    assert (rec["iteration"], rec["image_iteration"], rec["loss"], rec["parts"]) == (7, 5, 11.0, parts)
    assert np.abs(image.load_image(files.image) - 0.75).max() <= 1 / 255
    x, _ = files.load_checkpoint(jax.eval_shape(lambda: _state()), HASH)   # the state to resume stays the last
    np.testing.assert_array_equal(np.asarray(x.x), np.full((1, 4, 4, 3), 0.25, np.float32))
    assert files.load_best((4, 4, 3))[0] == 5                              # and the best goes on with it


def test_device_peak_is_nothing_on_cpu():
    assert finish.device_peak() == {}


def _members(tmp_path, n):
    finished = []
    members, files = [], []
    for i in range(n):
        f = RunFiles(tmp_path / f"run{i}.png")
        files.append(f)
        members.append(Member(f, HASH, "lbfgs", 10, lambda x: x,
                              lambda st, it, sec, intr, conv=False, best=None, i=i: finished.append((i, it, float(st.value)))))
    return members, files, finished


def test_results_gives_one_result_per_run_and_finishes_those_the_loop_did_not(tmp_path):
    members, files, finished = _members(tmp_path, 3)
    batched = jax.tree.map(lambda *a: jnp.stack(a), _state(1.0, 0.1), _state(2.0, 0.2), _state(3.0, 0.3))
    stopped_state = _state(1.5, 0.15)
    best = Best(6, 1.5, {"content": 1.5}, np.asarray(stopped_state.x)[0])
    outcome = Outcome(batched, 10, 4.0, failures={2: "the loss is NaN"}, stopped={0: (6, 2.5, stopped_state, best)})
    problems = [_problem()] * 3
    out = finish.results(outcome, problems, files, members, batched=True, compiles=1)
    assert finished == [(1, 10, 2.0)]                   # run 0 was finished by the rule, run 2 failed
    assert [(r.iteration, r.seconds, r.loss, r.error, r.converged) for r in out] == [
        (6, 2.5, 1.5, None, True), (10, 4.0, 2.0, None, False), (10, 4.0, 3.0, "the loss is NaN", False)]
    np.testing.assert_allclose(out[1].image, np.full((4, 4, 3), 0.2), rtol=1e-6)
    np.testing.assert_allclose(out[0].image, np.full((4, 4, 3), 0.15), rtol=1e-6)
    assert out[1].parts == {"content": 2.0, "style": pytest.approx(0.1), "tv": 0.5}
    assert out[1].evaluations == 9 and out[1].compiles == 1 and out[1].paths == files[1].paths()
    assert out[1].note is None


def test_results_of_one_run_take_the_state_as_it_is(tmp_path):
    members, files, finished = _members(tmp_path, 1)
    out = finish.results(Outcome(_state(7.0, 0.5), 10, 1.0, {}, {}), [_problem()], files, members, False, 2)
    assert finished == [(0, 10, 7.0)] and out[0].loss == 7.0 and out[0].image.shape == (4, 4, 3)


def test_nothing_to_do_reads_the_finished_run_back(tmp_path):
    cfg, plan, files, done = _setup(tmp_path)
    done(_state(), 8, 3.0, False)
    res = finish.nothing_to_do(files, 8)
    assert (res.iteration, res.loss, res.seconds, res.evaluations, res.compiles) == (8, 12.5, 3.0, 9, 0)
    assert res.parts == {"content": 2.0, "style": pytest.approx(0.1), "tv": 0.5}
    assert res.note == "already at 8 iterations" and res.converged is False and res.error is None
    assert res.paths == files.paths() and res.image.shape == (4, 4, 3)
    np.testing.assert_array_equal(res.image, image.load_image(files.image))


def test_nothing_to_do_after_the_stopping_rule_says_so(tmp_path):
    cfg, plan, files, done = _setup(tmp_path, tol=1e-4, tol_window=7)
    done(_state(), 5, 1.0, False, True)
    res = finish.nothing_to_do(files, 5)
    assert res.converged is True
    assert res.note == "stopped at 5 iterations by the stopping rule (--tol 0.0001, --tol-window 7)"
