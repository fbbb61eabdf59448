"""The kinds of start on their own, with a fake solver: what each produces (state, offset, time so far)
from the files it finds, and how a batch's runs are grouped by start before any runs."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import small_cfg
from nst_jax.transfer import start
from nst_jax.base.errors import NSTError
from nst_jax.transfer.identity import settings_hash
from nst_jax.transfer.loop import log_record
from nst_jax.files.runfiles import RunFiles
from nst_jax.scale.sharding import Layout
from nst_jax.transfer.start import BEGIN, KINDS_BEGUN, Batch, Start
from conftest import HASH, fake_state


def _batch(tmp_path, value=100.0, seen=None):
    files = RunFiles(tmp_path / "out.png")
    seen = seen if seen is not None else []

    def init(x0, aux):
        seen.append(np.asarray(x0))
        return fake_state(value)._replace(x=jnp.asarray(x0))
    x0 = np.full((4, 4, 3), 0.25, np.float32)
    return Batch(init, [x0], [files], [HASH], Layout(), lambda it: None, fake_state(), False), files, seen


def _log(files, upto):
    files.start_log(log_record(0, 100.0, {"content": 100.0, "style": 0.0, "tv": 0.0}, 0.0))
    with files.open_log() as f:
        for i in range(1, upto + 3):
            f.write(json.dumps(log_record(i, 100.0 - i, {"content": 1.0, "style": 0.0, "tv": 0.0}, i)) + "\n")


def test_every_kind_but_done_begins_one_way():
    assert set(BEGIN) == set(KINDS_BEGUN) == set(start.KINDS) - {"done"}
    assert [Start(k).batchable for k in start.KINDS] == [True, True, False, False, False]


def test_fresh_starts_the_log_at_the_initial_image(tmp_path):
    batch, files, seen = _batch(tmp_path)
    begun = Start("fresh").begin(batch)
    assert (begun.offset, begun.elapsed) == (0, 0.0) and np.allclose(seen[0], 0.25)
    assert [r["iteration"] for r in files.read_log()] == [0] and files.read_log()[0]["loss"] == 100.0


def test_a_loss_that_is_not_finite_at_the_start_is_refused(tmp_path):
    batch, _, _ = _batch(tmp_path, value=float("nan"))
    with pytest.raises(NSTError, match="initial image"):
        Start("fresh").begin(batch)


def test_a_checkpoint_gives_back_its_state_offset_and_time(tmp_path):
    batch, files, seen = _batch(tmp_path)
    saved = fake_state(42.0)._replace(iteration=jnp.int32(3))
    files.save_checkpoint(saved, config_hash=HASH, solver="fake", iteration=5, offset=2, target=9, seconds=7.5)
    _log(files, 5)
    begun = Start("checkpoint", 5).begin(batch)
    assert (begun.offset, begun.elapsed) == (2, 7.5) and float(begun.state.value) == 42.0 and not seen
    assert int(begun.state.iteration) == 3
    assert [r["iteration"] for r in files.read_log()] == list(range(6))   # rewound to the checkpoint


def test_a_light_checkpoint_starts_a_fresh_state_at_its_image(tmp_path):
    batch, files, seen = _batch(tmp_path)
    files.save_checkpoint(fake_state()._replace(x=jnp.full((1, 4, 4, 3), 0.75)), config_hash=HASH, solver="fake",
                          iteration=4, offset=0, target=9, seconds=2.0, light=True)
    _log(files, 4)
    begun = Start("light", 4).begin(batch)
    assert (begun.offset, begun.elapsed) == (4, 2.0) and np.allclose(seen[0], 0.75)
    assert files.read_log()[-1]["iteration"] == 4


def test_an_image_starts_a_fresh_state_from_the_result(tmp_path):
    batch, files, seen = _batch(tmp_path)
    files.write_result(np.full((4, 4, 3), 0.5, np.float32), {"config": {}, "settings_hash": HASH, "iteration": 3,
                                                               "loss": 1.0, "parts": {"content": 1.0, "style": 0.0, "tv": 0.0},
                                                               "seconds": 4.0})
    _log(files, 3)
    begun = Start("image", 3).begin(batch)
    assert (begun.offset, begun.elapsed) == (3, 4.0) and np.allclose(seen[0], 0.5, atol=1 / 255)
    assert files.read_log()[-1]["iteration"] == 3


def test_a_batch_runs_together_only_when_its_runs_start_alike(tmp_path):
    a, b = small_cfg(tmp_path / "a" / "o.png"), small_cfg(tmp_path / "b" / "o.png", style_weight=1e3)
    files = [RunFiles(a.output), RunFiles(b.output)]
    for f in files:
        f.image.parent.mkdir(parents=True)
    groups = start.batches([a, b], files, False, print)
    assert len(groups) == 1 and [s.kind for s in groups[0].starts] == ["fresh", "fresh"]
    files[1].save_checkpoint(fake_state(), config_hash=settings_hash(b, groups[0].plan), solver="lbfgs",
                             iteration=2, offset=0, target=6, seconds=1.0)
    groups = start.batches([a, b], files, False, print)
    assert [(len(g.cfgs), g.starts[0].kind) for g in groups] == [(1, "fresh"), (1, "checkpoint")]
    assert groups[1].hashes == [settings_hash(b, groups[1].plan)]
