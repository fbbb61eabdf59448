"""A run's solver state on disk: every leaf and the metadata round-trip, a light checkpoint holds the
image alone, a bfloat16 leaf is stored as raw 2-byte records and viewed back bit for bit, each leaf goes
through `gather` on its way to the file, and a checkpoint of other settings, shapes or values is refused
with one line."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import HASH, FakeState, fake_state
from nst_jax.base.errors import NSTError
from nst_jax.files import checkpoints
from nst_jax.model import convforms

META = dict(config_hash=HASH, solver="lbfgs", iteration=12, offset=4, target=30, seconds=3.25)


def _state() -> FakeState:
    x = jnp.arange(48, dtype=jnp.float32).reshape(1, 4, 4, 3) / 48
    return fake_state(7.5)._replace(x=x, iteration=jnp.int32(8), evaluations=jnp.int32(9))


def _template(state):
    return jax.eval_shape(lambda: state)


def _same(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert jax.tree.structure(a) == jax.tree.structure(b)


def test_save_then_load_gives_back_every_leaf_and_the_metadata(tmp_path):
    path, state = tmp_path / "out.ckpt.npz", _state()
    checkpoints.save(path, state, **META)
    loaded, meta = checkpoints.load(path, _template(state), HASH)
    _same(loaded, state)
    assert isinstance(loaded, FakeState) and set(loaded.parts) == {"content", "style", "tv"}
    assert meta == {**META, "light": False}
    assert checkpoints.read_meta(path) == meta
    with np.load(path) as data:   # one record per leaf, in the pytree's order, and the metadata as bytes
        assert sorted(data.files) == [f"leaf{i:03d}" for i in range(7)] + ["meta"]
        np.testing.assert_array_equal(data["leaf000"], np.asarray(state.x))
        assert data["meta"].dtype == np.uint8 and json.loads(data["meta"].tobytes()) == meta


def test_the_convolution_forms_are_kept_in_the_metadata(tmp_path):
    path = tmp_path / "out.ckpt.npz"
    rows = (("conv2_1", "f4", "xla"), ("conv3_1", "f2", "f4f"))
    checkpoints.save(path, _state(), **META, forms=convforms.Forms(rows, "asked"))
    meta = checkpoints.read_meta(path)
    assert meta["conv_forms"] == [["conv2_1", "f4", "xla"], ["conv3_1", "f2", "f4f"]] and "native_gram" not in meta
    checkpoints.save(path, _state(), **META, forms=convforms.Forms(rows, "asked", native_gram=True))
    assert checkpoints.read_meta(path)["native_gram"] is True
    checkpoints.save(path, _state(), **META, forms=convforms.NONE)
    assert "conv_forms" not in checkpoints.read_meta(path)


def test_a_light_checkpoint_holds_the_image_alone(tmp_path):
    path, state = tmp_path / "out.ckpt.npz", _state()
    checkpoints.save(path, state, **META, light=True)
    with np.load(path) as data:
        assert sorted(data.files) == ["leaf000", "meta"]
    x, meta = checkpoints.load_light(path, (1, 4, 4, 3), HASH)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32
    np.testing.assert_array_equal(x, np.asarray(state.x))
    assert meta["light"] is True and meta["iteration"] == 12
    with pytest.raises(NSTError, match="it has no leaf001"):   # not a whole state
        checkpoints.load(path, _template(state), HASH)


def test_a_light_checkpoint_of_another_size_is_refused(tmp_path):
    path = tmp_path / "out.ckpt.npz"
    checkpoints.save(path, _state(), **META, light=True)
    with pytest.raises(NSTError, match="state shapes differ from this run's; delete it or pass --restart"):
        checkpoints.load_light(path, (1, 4, 5, 3), HASH)


class HistoryState(NamedTuple):
    x: Any
    history: Any


def test_a_bfloat16_leaf_is_stored_as_raw_two_byte_records_and_read_back_exactly(tmp_path):
    path = tmp_path / "out.ckpt.npz"
    values = jnp.asarray([[1.0, -2.5, 3.140625, 1e-3], [65280.0, -0.0, 0.5, 7.0]], jnp.bfloat16)
    state = HistoryState(jnp.ones((1, 2, 2, 3), jnp.float32), values)
    checkpoints.save(path, state, **META)
    with np.load(path) as data:
        raw = data["leaf001"]
    assert raw.dtype.kind == "V" and raw.dtype.itemsize == 2 and raw.shape == (2, 4)
    np.testing.assert_array_equal(raw.view(np.uint16), np.asarray(values).view(np.uint16))
    loaded, _ = checkpoints.load(path, _template(state), HASH)
    assert loaded.history.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(loaded.history).view(np.uint16), np.asarray(values).view(np.uint16))


def test_a_bfloat16_leaf_does_not_load_where_a_float32_one_is_expected(tmp_path):
    path = tmp_path / "out.ckpt.npz"
    state = HistoryState(jnp.ones((1, 2, 2, 3)), jnp.ones((2, 4), jnp.bfloat16))
    checkpoints.save(path, state, **META)
    wide = HistoryState(state.x, jnp.ones((2, 4), jnp.float32))
    with pytest.raises(NSTError, match="state shapes differ"):
        checkpoints.load(path, _template(wide), HASH)


def test_gather_is_applied_to_each_leaf_on_its_way_to_the_file(tmp_path):
    path, state = tmp_path / "out.ckpt.npz", _state()
    seen = []

    def gather(leaf):
        seen.append(leaf.shape)
        return np.asarray(leaf) * 2    # what is stored is what gather returns
    checkpoints.save(path, state, **META, gather=gather)
    assert seen == [leaf.shape for leaf in jax.tree.leaves(state)]
    loaded, _ = checkpoints.load(path, _template(state), HASH)
    _same(loaded, jax.tree.map(lambda a: a * 2, state))
    seen.clear()
    checkpoints.save(path, state, **META, light=True, gather=gather)
    assert seen == [(1, 4, 4, 3)]      # a light checkpoint gathers the image alone


def test_a_checkpoint_of_other_settings_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "out.ckpt.npz"
    checkpoints.save(path, _state(), **META)
    with pytest.raises(NSTError) as err:
        checkpoints.load(path, _template(_state()), "fedcba9876543210")
    assert str(err.value) == (f"checkpoint {path} was made with other settings; pass --restart to start over "
                              f"or choose another -o/--output")
    with pytest.raises(NSTError, match="other settings"):
        checkpoints.load_light(path, (1, 4, 4, 3), "fedcba9876543210")


def test_a_state_of_other_shapes_is_refused(tmp_path):
    path = tmp_path / "out.ckpt.npz"
    checkpoints.save(path, _state(), **META)
    bigger = _state()._replace(x=jnp.zeros((1, 8, 8, 3)))
    with pytest.raises(NSTError, match=r"\(leaf000\): state shapes differ from this run's"):
        checkpoints.load(path, _template(bigger), HASH)
    wider = _state()._replace(iteration=jnp.float32(8))    # int32 stored, float32 expected
    with pytest.raises(NSTError, match=r"\(leaf005\): state shapes differ"):
        checkpoints.load(path, _template(wider), HASH)


def test_values_that_are_not_finite_are_refused(tmp_path):
    path = tmp_path / "out.ckpt.npz"
    checkpoints.save(path, _state()._replace(value=jnp.float32(np.nan)), **META)
    with pytest.raises(NSTError, match="not finite"):
        checkpoints.load(path, _template(_state()), HASH)


def _write(path, meta, leaves=()):
    arrays = {f"leaf{i:03d}": a for i, a in enumerate(leaves)}
    np.savez(path, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)


def test_read_meta_is_none_without_a_readable_checkpoint(tmp_path):
    assert checkpoints.read_meta(tmp_path / "absent.ckpt.npz") is None
    (tmp_path / "junk.ckpt.npz").write_bytes(b"not a zip")
    assert checkpoints.read_meta(tmp_path / "junk.ckpt.npz") is None
    np.savez(tmp_path / "nometa.ckpt.npz", leaf000=np.zeros(3))
    assert checkpoints.read_meta(tmp_path / "nometa.ckpt.npz") is None


@pytest.mark.parametrize("edit, field", [({"iteration": -1}, "iteration"), ({"config_hash": "../x"}, "config_hash"),
                                         ({"light": "no"}, "light"), ({"offset": 20}, "offset")])
def test_read_meta_of_an_edited_record_names_the_field(tmp_path, edit, field):
    path = tmp_path / "out.ckpt.npz"
    _write(path, {**META, "light": False, **edit})
    with pytest.raises(NSTError, match=f"checkpoint {path}: the field '{field}'"):
        checkpoints.read_meta(path)


def test_load_of_a_broken_file_is_one_line(tmp_path):
    path = tmp_path / "out.ckpt.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(NSTError) as err:
        checkpoints.load(path, _template(_state()), HASH)
    assert str(err.value).startswith(f"checkpoint {path}: unreadable") and "\n" not in str(err.value)


def test_the_lowest_loss_image_is_kept_beside_the_state_and_read_back_checked(tmp_path):
    path, best = tmp_path / "out.ckpt.npz", np.full((4, 4, 3), 0.5, np.float32)
    checkpoints.save(path, _state(), **META)
    assert checkpoints.load_best(path, (4, 4, 3)) is None            # none recorded
    checkpoints.save(path, _state(), **META, best=(10, best))
    iteration, x = checkpoints.load_best(path, (4, 4, 3))
    assert iteration == 10 and x.dtype == np.float32
    np.testing.assert_array_equal(x, best)
    with pytest.raises(NSTError, match="differs from this run's"):
        checkpoints.load_best(path, (8, 4, 3))
    with np.load(path) as data:                                                # edited: 4-byte records, not floats
        arrays = {k: data[k] for k in data.files}
    np.savez(path, **{**arrays, "best_x": np.zeros((4, 4, 3), "V4")})
    with pytest.raises(NSTError, match="differs from this run's"):
        checkpoints.load_best(path, (4, 4, 3))
    checkpoints.save(path, _state(), **META, best=(13, best))                 # past the checkpoint's iteration
    with pytest.raises(NSTError, match="'best_iteration' is past"):
        checkpoints.load_best(path, (4, 4, 3))
