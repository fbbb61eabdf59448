"""What was planned, apart from what was asked: `planning.plan_run` returns a `RunPlan` and leaves the
Config as it was; the layout places arrays (one device: unchanged); the settings hash reads the plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import small_cfg
from nst_jax.base.errors import NSTError
from nst_jax.transfer.identity import input_files, settings_hash


def test_the_plan_resolves_what_was_asked_without_touching_the_config(tmp_path):
    from nst_jax.transfer import planning
    cfg = small_cfg(tmp_path / "o.png", memory="auto", devices=0, precision="auto")
    before = cfg.to_dict()
    plan = planning.plan_run(cfg)
    assert cfg.to_dict() == before
    assert plan.memory in ("plain", "remat", "remat-bf16") and plan.devices == 1
    assert plan.precision in ("float32", "bfloat16") and plan.figure.way == plan.memory
    h, w, c = plan.layout.image_shape
    assert c == 3 and max(h, w) == cfg.size
    record = plan.record(cfg)
    assert (record["memory"], record["devices"], record["precision"]) == (plan.memory, 1, plan.precision)
    assert {k: v for k, v in record.items() if k not in ("memory", "devices", "precision")} == \
        {k: v for k, v in before.items() if k not in ("memory", "devices", "precision")}


def test_luminance_plans_one_channel_and_remat_bf16_a_bfloat16_history(tmp_path):
    from nst_jax.transfer import planning
    plan = planning.plan_run(small_cfg(tmp_path / "o.png", original_colors="luminance", memory="remat-bf16"))
    assert plan.layout.image_shape[2] == 1
    assert (plan.memory, plan.remat, plan.history_dtype) == ("remat-bf16", True, "bfloat16")


def test_the_settings_hash_reads_the_plan(tmp_path):
    from nst_jax.transfer import planning
    from nst_jax.transfer.planning import RunPlan
    from nst_jax.scale.sharding import Layout
    cfg = small_cfg(tmp_path / "o.png")
    plan = planning.plan_run(cfg)
    assert settings_hash(cfg, plan) == settings_hash(cfg, plan._replace(memory="remat"))   # no number changes
    assert settings_hash(cfg, plan) != settings_hash(cfg, plan._replace(memory="remat-bf16"))
    other = RunPlan(plan.memory, Layout(), "bfloat16" if plan.precision == "float32" else "float32")
    assert settings_hash(cfg, plan) != settings_hash(cfg, other)
    moved = dataclasses.replace(cfg, output=str(tmp_path / "elsewhere" / "x.png"))
    assert settings_hash(moved, plan) == settings_hash(cfg, plan)   # paths of outputs do not enter
    assert input_files(cfg) == [cfg.content, *cfg.styles]


def test_a_one_device_layout_leaves_arrays_alone_and_the_mesh_is_built_once():
    from nst_jax.scale import sharding
    one = sharding.Layout()
    tree = {"a": np.ones(3)}
    assert one.place(tree) is tree and one.constrain(tree) is tree and one.abstract(tree) is tree
    assert sharding.mesh(1) is sharding.mesh(1)
    assert sharding.splits(12, 4) and not sharding.splits(10, 4)


def test_device_counts_are_checked_once_in_one_place():
    from nst_jax.scale import sharding
    with pytest.raises(NSTError, match="≥ 0"):
        sharding.device_count(-1, 64)
    with pytest.raises(NSTError, match="present"):
        sharding.device_count(sharding.present() + 1, 64)
    assert sharding.device_count(0, 63) == 1 if sharding.present() == 1 else True


def test_the_layout_lays_out_images_vectors_and_the_rest():
    from jax.sharding import PartitionSpec
    from nst_jax.scale import sharding
    shape = (8, 6, 3)
    assert sharding.spec((1, 8, 6, 3), shape) == PartitionSpec(None, sharding.AXIS, None, None)
    assert sharding.spec((10, 8 * 6 * 3), shape) == PartitionSpec(None, sharding.AXIS)
    assert sharding.spec((64, 64), shape) == PartitionSpec()


def test_the_gram_is_native_with_fused_forms_unless_the_checkpoint_began_without_it(tmp_path, monkeypatch):
    """Asked (`--conv-forms f4f` / `xla`) and recorded forms; a checkpoint's record decides only where it
    recorded fused forms without the native Gram (written before there was one)."""
    from nst_jax.model import convforms, fused
    from nst_jax.transfer import planning
    monkeypatch.setattr(planning, "_need_fused", lambda recorded, form="f4f": None)
    monkeypatch.setattr(fused, "fits", lambda cin, cout: True)
    cfg = lambda forms: small_cfg(tmp_path / "o.png", conv_forms=forms)
    from nst_jax.scale.sharding import Layout
    at_256 = lambda c: planning.plain(c)._replace(layout=Layout(1, (256, 256, 3)))   # maps large enough for forms
    plan = lambda forms, recorded=None: planning.with_forms(cfg(forms), at_256(cfg(forms)), recorded).forms
    fused_rows, xla_rows = (("conv1_2", "f4f", "f4f"),), (("conv1_2", "xla", "xla"),)
    began_native = convforms.Forms(fused_rows, "recorded", native_gram=True)
    began_without = convforms.Forms(fused_rows, "recorded")
    assert plan("f4f").native_gram and not plan("xla").native_gram
    assert plan("f4f", began_native).native_gram and not plan("f4f", began_without).native_gram
    assert plan("f4f", convforms.Forms(xla_rows, "recorded")).native_gram       # began with XLA's forms
    assert not plan("xla", began_native).native_gram                            # no fused form: no native Gram
    assert plan("auto", began_native) == began_native and plan("auto", began_without) == began_without
