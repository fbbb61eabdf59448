"""`bench.breakdown` and `bench.bf16_guard`: the fused kernel's phases split one convolution's time, the
iteration's parts add up to it in the table, and the guard's verdict per form is its largest difference
against the tolerance (no timing asserts)."""

import pytest

from bench import bf16_guard, breakdown
from nst_jax.model import fused
from nst_jax.model.convforms import Shape


def test_a_fused_convolution_splits_into_its_three_phases():
    if fused.why_unavailable():
        pytest.skip(f"the fused kernel cannot be built here: {fused.why_unavailable()}")
    lib = fused.library()
    parts = breakdown.conv_parts(Shape(24, 20, 2 * lib.lanes, lib.panel), "f4f", repeats=1)
    # the phases are differences of separately timed calls (stopped after 1, 3, 7 phases) clamped at 0: they
    # add up to the whole call exactly, or to more where noise made a difference negative
    assert set(parts) == {"total", "input", "products", "output"} and parts["total"] > 0 and parts["input"] > 0
    assert parts["products"] >= 0 and parts["output"] >= 0
    assert parts["input"] + parts["products"] + parts["output"] >= parts["total"] * (1 - 1e-12)
    assert breakdown.conv_parts(Shape(24, 20, 16, 16), "xla", repeats=1).keys() == {"total"}


def _row(size, conv_s, seconds):
    conv = {"layer": "conv1_2", "direction": "forward", "shape": (size, size, 64, 64), "form": "f4f",
            "gflop": 2.0, "total": conv_s, "input": conv_s / 4, "products": conv_s / 2, "output": conv_s / 4}
    return {"size": size, "conv_forms": "auto", "forms": "F(4×4) fused × 1", "convs": [conv], "seconds": seconds}


def test_the_table_gives_each_part_and_the_bound():
    seconds = {"network": 0.05, "value+grad": 0.08, "iteration": 0.1, "checkpoint write": 0.3,
               "checkpoint per iteration": 0.00005}
    text = breakdown.markdown([_row(256, 0.04, seconds)], {"float32": 400.0, "bfloat16": 2000.0}, "cmd", "a CPU")
    assert "4× that: 1600 and 8000 GFLOP/s" in text
    assert "| convolutions (below) | 40.0 | 40 % |" in text
    assert "| pooling, ReLU, rest of the network | 10.0 | 10 % |" in text
    assert "| Gram matrices and losses | 30.0 | 30 % |" in text
    assert "| L-BFGS and the loop | 20.0 | 20 % |" in text
    assert "50 GFLOP/s, 3 % of the float32 bound" in text        # 2 GFLOP in 40 ms against 1600
    fake = {"float32": 400.0, "bfloat16": 2000.0}
    assert breakdown.matmul_rates(64, lambda name, n, calls: fake[name]) == fake
    fake["bfloat16"] = 2.0                                   # emulated: the 4096² product is never asked for
    assert breakdown.matmul_rates(64, lambda name, n, calls: fake[name] if n == 512 or name == "float32"
                                  else pytest.fail("timed an emulated product")) == {"float32": 400.0}
    emulated = breakdown.markdown([_row(256, 0.04, seconds)], {"float32": 400.0}, "cmd", "a CPU")
    assert "400 GFLOP/s float32 (bfloat16 runs emulated here: not measured)" in emulated
    assert "4× that: 1600 GFLOP/s" in emulated and "3 % of the float32 bound" in emulated


def test_the_guard_holds_only_within_the_tolerance():
    rows = [{"pair": "a", "size": 256, "iterations": 300, "loss": {"auto": 100.0, "x": 100.4, "y": 103.0},
             "difference": {"x": 0.004, "y": 0.03}, "psnr": {"x": 30.0, "y": 20.0}, "seconds": {"auto": 1.0},
             "forms": {}},
            {"pair": "b", "size": 512, "iterations": 300, "loss": {"auto": 10.0, "x": 9.99},
             "difference": {"x": -0.001}, "psnr": {"x": 31.0}, "seconds": {"auto": 1.0}, "forms": {}}]
    assert bf16_guard.verdicts(rows) == {"x": 0.004, "y": 0.03}
    text = bf16_guard.markdown({"rows": rows, "forms": ["x", "y"], "cpu": "amx_bf16", "date": "d", "command": "c",
                                "machine": "m"})
    assert "`x` (256, 512 px): largest difference 0.40 % against 0.5 %: the guard **holds**" in text
    assert "`y` (256 px): largest difference 3.00 % against 0.5 %: the guard **fails**" in text
