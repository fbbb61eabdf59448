"""`--plan`: the memory plan of a run as a table. Its columns are the ways of fitting open to the run, its
figures the plan's own, the verdict per way, what --memory auto chooses, the checkpoint's size, and the
largest --size each way fits (it fits, one pixel more does not). Planned for named devices, so nothing
here depends on this machine's memory, and nothing is compiled."""

from __future__ import annotations

import functools
import re

import pytest

from conftest import small_cfg
from nst_jax.base.errors import NSTError
from nst_jax.files import image
from nst_jax.scale import memory
from nst_jax.scale.memory import human_bytes
from nst_jax.transfer import plan_table, planning


def _cfg(tmp_path, **kw):
    return small_cfg(tmp_path / "out.png", **{"size": 64, **kw})


def _cells(line):
    """The cells of a table row (two or more spaces apart), its label first."""
    return re.split(r"\s{2,}", line.strip())


def _row(text, label):
    found = [line for line in text.splitlines() if line.strip().startswith(label)]
    assert len(found) == 1, (label, text)
    return _cells(found[0])


def test_the_table_has_a_column_per_way_with_the_plans_own_figures(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    text = plan_table.report(cfg, "1x4GB")
    lines = text.splitlines()
    assert lines[0] == (f"memory plan: {cfg.content} at 64×43 px, lbfgs history 100 — "
                        f"{memory.parse_devices('1x4GB').describe()}")
    ways = planning.ways_to_fit(cfg)
    assert ways == ("plain", "remat", "remat-bf16")
    assert _row(text, "per device") == ["per device", *ways]
    devices = memory.parse_devices("1x4GB")
    plans = [planning.needs_at(cfg, devices, way, 43, 64) for way in ways]
    assert _row(text, "needed") == ["needed", *(human_bytes(p.needed) for p in plans)]
    history = _row(text, "L-BFGS history")
    assert history[0] == "L-BFGS history (2·100 vectors)"
    assert history[3] != history[1] == history[2]                    # bfloat16 halves the history alone
    assert _row(text, "fits 4.0 GB") == ["fits 4.0 GB (+8 % margin)", "yes", "yes", "yes"]
    assert "--memory auto → plain; checkpoint file" in text and "(none written)" in text
    assert "XLA's figure" not in text and capsys.readouterr().err == ""     # nothing compiled for named devices


def test_adam_has_no_bfloat16_history_column_and_a_light_checkpoint_says_so(tmp_path):
    cfg = _cfg(tmp_path, optimizer="adam", light_checkpoint=True, checkpoint_every=5)
    text = plan_table.report(cfg, "1x4GB")
    assert text.splitlines()[0].split(" — ")[0].endswith("64×43 px, adam")          # no history for Adam
    assert _row(text, "per device") == ["per device", "plain", "remat"]
    assert "L-BFGS history" not in text
    assert "(light: the image only) every 5 iterations" in text


def test_what_fits_nowhere_says_nothing_fits(tmp_path):
    text = plan_table.report(_cfg(tmp_path), "1x10MB")
    assert _row(text, "fits 10.0 MB") == ["fits 10.0 MB (+8 % margin)", "no", "no", "no"]
    assert "--memory auto → nothing fits" in text


def test_a_height_that_does_not_split_into_the_devices_is_named_with_sizes_that_would(tmp_path):
    cfg = _cfg(tmp_path)                       # 43 px high: not two bands of one height
    text = plan_table.report(cfg, "2x4GB")
    sizes = planning.sizes_that_divide(cfg, 2)
    assert all(image.fit_size((300, 451), s)[0] % 2 == 0 for s in sizes)
    assert (f"but the height 43 px does not split into 2 bands of one height: a run refuses it; "
            f"--size {' or '.join(map(str, sizes))} would") in text
    assert _row(text, "fits 4.0 GB")[1:] == ["no", "no", "no"]
    even = plan_table.report(_cfg(tmp_path, size=sizes[0]), "2x4GB")
    assert "does not split" not in even and _row(even, "fits 4.0 GB")[1:] == ["yes", "yes", "yes"]


def test_the_largest_sizes_fit_and_one_pixel_more_does_not(tmp_path):
    cfg = _cfg(tmp_path)
    text = plan_table.report(cfg, "4x2GB")
    lines = text.splitlines()
    start = lines.index("largest --size that fits (longest side, this image's aspect):")
    assert _cells(lines[start + 1]) == list(planning.ways_to_fit(cfg))
    one = _row(text, "1 device")
    four = _row(text, "4 devices (height must divide)")
    shape_at = functools.partial(image.fit_size, (300, 451))
    devices = memory.parse_devices("4x2GB")
    for way, cell in zip(planning.ways_to_fit(cfg), one[1:]):
        side = int(cell)
        needs = lambda s: planning.needs_at(cfg, devices._replace(count=1), way, *shape_at(s))
        assert needs(side).fits and not needs(side + 1).fits, (way, side)
    assert [int(c) for c in one[1:]] == sorted(int(c) for c in one[1:])      # each way fits more than the last
    assert all(int(b) >= int(a) for a, b in zip(one[1:], four[1:]))          # four devices fit at least one's


def test_here_plans_for_this_machine_without_compiling_when_asked(tmp_path, capsys):
    text = plan_table.report(_cfg(tmp_path), None, xla=False)
    assert text.splitlines()[0].endswith(memory.present(1).describe())
    assert "1 device" in text and "devices (height must divide)" not in text
    assert "XLA's figure" not in text and capsys.readouterr().err == ""


def test_main_report_plans_each_scale(tmp_path):
    cfg = _cfg(tmp_path, scales=(32, 48))
    text = plan_table.main_report(cfg, "1x4GB")
    parts = text.split("\n\n")
    assert len(parts) == 2
    assert " at 32×21 px, " in parts[0].splitlines()[0] and " at 48×32 px, " in parts[1].splitlines()[0]


def test_main_report_refuses_more_devices_than_are_here(tmp_path):
    with pytest.raises(NSTError, match=r"--devices 2: only 1 present; --plan COUNTxMEMORY plans for devices"):
        plan_table.main_report(_cfg(tmp_path, devices=2), "here")
    assert "4 devices" in plan_table.main_report(_cfg(tmp_path, devices=2), "4x1GB")   # named devices: fine


def test_a_bad_device_text_is_one_error(tmp_path):
    with pytest.raises(NSTError, match="expected the devices to plan for as COUNTxMEMORY"):
        plan_table.report(_cfg(tmp_path), "lots")
