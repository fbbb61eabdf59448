"""`bench.sorts`: each style layer sorted by XLA's and the native sort, each sorting statistic's value+grad
with both, and the table (no timing asserts)."""

import pytest

from bench import sorts
from nst_jax.model import fused


def test_each_style_layer_and_sorting_statistic_is_timed_both_ways():
    if fused.why_unavailable():
        pytest.skip(f"the native library cannot be built here: {fused.why_unavailable()}")
    rows = sorts.sorts(32, rounds=1)
    want = [("relu1_1", 1024, 64), ("relu2_1", 256, 128), ("relu3_1", 64, 256), ("relu4_1", 16, 512),
            ("relu5_1", 4, 512)]
    assert [(r["layer"], r["m"], r["c"]) for r in rows] == want
    assert all(r["xla"] > 0 and r["native"] > 0 for r in rows)
    whole = sorts.value_and_grad("histogram", 32, rounds=1)
    assert whole["statistic"] == "histogram" and whole["xla"] > 0 and whole["native"] > 0
    # the same gradient bits: content and style are the same size here, so no quantiles are resampled
    assert whole["same gradient"] and whole["value difference"] <= 1e-6
    wholes = [whole | {"xla": 0.5, "native": 0.25, "value difference": 0.0},
              whole | {"statistic": "sliced_wasserstein", "xla": 0.5, "native": 0.1, "value difference": 6e-8}]
    text = sorts.markdown(32, rows, wholes, "cmd", "a CPU")
    assert "| relu1_1 | 1024 × 64 |" in text
    assert "| 500.0 | 250.0 | 2.0× | the same bits | the same bits |" in text
    assert "| 5.0× | the same bits | 6.0e-08 apart |" in text
    assert "capped by the environment: XLA_FLAGS=--xla_cpu_max_isa=AVX2." in sorts.markdown(
        32, rows, wholes, "cmd", "a CPU", "XLA_FLAGS=--xla_cpu_max_isa=AVX2")
