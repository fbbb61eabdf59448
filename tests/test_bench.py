"""The bench runs end to end at a tiny size so it cannot rot (no timing asserts)."""

import json

import pytest


def test_bench_tiny(tmp_path):
    pytest.importorskip("torch")
    from bench.run import main

    assert main(["--size", "32", "--iterations", "3", "--repeats", "1", "--batch", "1,2", "--coarse", "2",
                 "--results-dir", str(tmp_path), "--json", str(tmp_path / "b.json")]) == 0
    data = json.loads((tmp_path / "b.json").read_text())
    row = data["rows"][0]
    for key in ("jax_eval_s", "torch_eval_s", "jax_final_loss", "torch_final_loss", "final_loss_gap",
                "psnr_db", "ssim", "jax_compile_step_s", "jax_eval_xla_defaults_s", "speedup_iteration"):
        assert key in row, key
    assert abs(row["final_loss_gap"]) < 0.5
    assert [s["solver"] for s in row["solvers"]] == ["lbfgs", "jaxopt", "adam"]
    assert [b["batch"] for b in row["batched"]] == [1, 2]
    c2f = row["coarse_to_fine"]
    assert c2f["coarse_size"] == 16 and c2f["coarse_iterations"] == 2 and c2f["final_loss"] > 0
    md = list(tmp_path.glob("*.md"))
    text = md[0].read_text() if md else ""
    assert "| 32² |" in text and "Coarse-to-fine" in text


def test_psnr_ssim_sanity():
    import numpy as np
    from bench.run import psnr, ssim
    a = np.random.default_rng(0).random((20, 20, 3))
    assert psnr(a, a) == float("inf") and abs(ssim(a, a) - 1) < 1e-9
    assert ssim(a, 1 - a) < 0.5 and psnr(a, np.clip(a + 0.1, 0, 1)) < 25
