"""`bench.gram_products`: FᵀF of each style layer timed by XLA's and the native product, and the table
(no timing asserts)."""

import pytest

from bench import gram_products
from nst_jax.model import fused


def test_each_style_layer_is_timed_by_both_products():
    if fused.why_unavailable():
        pytest.skip(f"the native library cannot be built here: {fused.why_unavailable()}")
    rows = gram_products.products(32, rounds=1)
    want = [("relu1_1", 1024, 64), ("relu2_1", 256, 128), ("relu3_1", 64, 256), ("relu4_1", 16, 512),
            ("relu5_1", 4, 512)]
    assert [(r["layer"], r["m"], r["c"]) for r in rows] == want
    assert all(r["xla"] > 0 and r["native"] > 0 and r["gflop"] == 2 * r["m"] * r["c"] ** 2 / 1e9 for r in rows)
    whole = {"forms": "F(4×4) fused × 1", "xla": 0.25, "native": 0.24, "gradient difference": 8.5e-7}
    text = gram_products.markdown(32, rows, whole, "cmd", "a CPU")
    assert "| relu1_1 | 1024 × 64 |" in text and "| native | 240.00 |" in text and "8.5e-07" in text
    assert "capped" not in text
    assert "capped by the environment: XLA_FLAGS=--xla_cpu_max_isa=AVX2." in gram_products.markdown(
        32, rows, whole, "cmd", "a CPU", "XLA_FLAGS=--xla_cpu_max_isa=AVX2")
