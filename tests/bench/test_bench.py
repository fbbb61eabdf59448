"""The bench runs end to end at a tiny size so it cannot rot (no timing asserts)."""

import json
import shlex

import pytest

from conftest import ROOT, torch_or_skip


def test_bench_tiny(tmp_path):
    torch_or_skip()
    from bench.run import main

    assert main(["--size", "32", "--iterations", "3", "--repeats", "1", "--batch", "1,2", "--coarse", "2",
                 "--results-dir", str(tmp_path), "--json", str(tmp_path / "b.json")]) == 0
    data = json.loads((tmp_path / "b.json").read_text())
    row = data["rows"][0]
    for key in ("jax_eval_s", "torch_eval_s", "jax_final_loss", "torch_final_loss", "final_loss_gap",
                "psnr_db", "ssim", "jax_compile_step_s", "jax_eval_xla_defaults_s", "speedup_iteration",
                "value_and_grad_gflop", "jax_eval_gflops_per_s", "torch_eval_gflops_per_s"):
        assert key in row, key
    assert abs(row["final_loss_gap"]) < 0.5
    assert [s["solver"] for s in row["solvers"]] == ["lbfgs", "jaxopt", "adam"]
    assert [b["batch"] for b in row["batched"]] == [1, 2]
    c2f = row["coarse_to_fine"]
    assert c2f["coarse_size"] == 16 and c2f["coarse_iterations"] == 2 and c2f["final_loss"] > 0
    md = list(tmp_path.glob("*.md"))
    text = md[0].read_text() if md else ""
    assert "| 32² |" in text and "Coarse-to-fine" in text


def test_a_run_with_capped_instruction_sets_says_so(monkeypatch):
    from bench.run import ISA_CAPS, isa_caps, markdown
    for name in ISA_CAPS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")   # not a cap
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", " ")
    monkeypatch.setenv("NST_JAX_FUSED_ARCH", "native")                            # the default build
    assert isa_caps() is None
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX2")
    assert isa_caps() == "XLA_FLAGS=--xla_cpu_max_isa=AVX2"
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setenv("NST_JAX_FUSED_ARCH", "x86-64-v3")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert isa_caps() == "NST_JAX_FUSED_ARCH=x86-64-v3, ONEDNN_MAX_CPU_ISA=AVX2"
    result = {"device": "cpu (2 cores)", "date": "2026-12-07", "command": "python -m bench", "machine": "Linux",
              "versions": {"jax": "0"}, "rows": [], "isa_caps": isa_caps()}
    assert "Instruction sets capped by the environment: NST_JAX_FUSED_ARCH=x86-64-v3, ONEDNN" in markdown(result)
    assert "capped" not in markdown({**result, "isa_caps": None})


def test_psnr_ssim_sanity():
    import numpy as np
    from bench.run import psnr, ssim
    a = np.random.default_rng(0).random((20, 20, 3))
    assert psnr(a, a) == float("inf") and abs(ssim(a, a) - 1) < 1e-9
    assert ssim(a, 1 - a) < 0.5 and psnr(a, np.clip(a + 0.1, 0, 1)) < 25


def test_flop_count_matches_the_known_figure():
    """The count is a hand sum over the 13 convolutions up to conv5_1 and the five Gram matrices."""
    from bench.run import value_and_grad_flops
    convs = [(1, 3, 64), (1, 64, 64), (2, 64, 128), (2, 128, 128), (4, 128, 256)] + [(4, 256, 256)] * 3 \
        + [(8, 256, 512)] + [(8, 512, 512)] * 3 + [(16, 512, 512)]
    size = 64
    conv = sum(2 * 2 * (size // d) ** 2 * 9 * ci * co for d, ci, co in convs)
    grams = sum(2 * 2 * (size // d) ** 2 * c * c for d, c in [(1, 64), (2, 128), (4, 256), (8, 512), (16, 512)])
    assert value_and_grad_flops(size) == conv + grams
    assert abs(value_and_grad_flops(512) / 1e9 - 397) < 1  # the "≈ 380 GFLOP" plus the Grams


def test_conv_forms_table_has_a_cell_for_every_column(tmp_path):
    """bench.conv_forms at a small size: every row of its per-layer table has the header's columns."""
    from bench import conv_forms

    assert conv_forms.main(["--size", "48", "--rounds", "1", "--results-dir", str(tmp_path)]) == 0
    (table,) = tmp_path.glob("conv-forms-cpu-*.md")
    rows = [line for line in table.read_text().splitlines() if line.startswith("|")]
    header, timed = rows[0], [r for r in rows[2:] if "conv1_2" in r]
    assert timed and all(r.count("|") == header.count("|") for r in rows[2:]), rows


def test_jax_run_takes_turns_with_the_reference():
    """The bench times nst_jax's iterations and the reference's in turns: one step of each, the
    reference's outside nst_jax's time; past N iterations nst_jax goes on alone towards the target."""
    from typing import NamedTuple

    import jax.numpy as jnp
    import numpy as np
    from bench.run import JaxProblem, jax_run

    class State(NamedTuple):
        x: object
        value: object
        evaluations: object

    order = []

    def step(st, aux):
        order.append("nst_jax")
        return State(st.x, st.value / 2, st.evaluations + 1)

    class Compiled:
        def lower(self, *args):
            return self

        def compile(self):
            return step

    init = lambda x, aux: State(x, jnp.float32(8.0), jnp.int32(1))
    problem = JaxProblem("lbfgs", 1, 1, None, init, Compiled(), None, None)
    out = jax_run(problem, np.zeros((1, 2, 2, 3), np.float32), 3, target=lambda: 0.1, max_iterations=6,
                  turn=lambda: order.append("reference"))
    assert order == ["nst_jax", "reference"] * 3 + ["nst_jax"] * 3
    assert out["final_loss"] == 1.0 and [v for _, v in out["curve"]] == [8, 4, 2, 1, 0.5, 0.25, 0.125]
    order.clear()   # K steps per call (--fuse K): K of the reference's turns after each call
    jax_run(problem._replace(fuse=2), np.zeros((1, 2, 2, 3), np.float32), 4, turn=lambda: order.append("reference"))
    assert order == ["nst_jax", "reference", "reference"] * 2


def test_main_job_bench_runs_the_plain_job_once_per_forms_setting(tmp_path):
    """bench.main_job at a small size: a plain run per --conv-forms setting and a coarse-to-fine
    schedule, each row with its forms as the run recorded them, the machine and the load average."""
    from bench import main_job
    assert main_job.main(["--size", "64", "--plain", "2", "--conv-forms", "f4", "xla", "--schedules", "32,64:1,1",
                          "--out", str(tmp_path / "images"), "--results-dir", str(tmp_path)]) == 0
    text = next(tmp_path.glob("main-job-cpu-*.md")).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 2 at 64") or line.startswith("| 1 at 32")]
    assert [r.split(" | ")[0] for r in rows] == ["| 2 at 64, --conv-forms f4", "| 2 at 64, XLA's convolutions only",
                                                 "| 1 at 32 → 1 at 64, --conv-forms f4"]
    assert "F(4×4) × " in rows[0] and "F(4×4)" not in rows[1] and "XLA's × " in rows[1]
    first = [c.strip() for c in rows[0].split("|")]
    assert first[4] == "+0.00%" and float(first[5]) > 0 and first[6] == "inf"   # the first reached its own loss
    assert "Machine: " in text and "load average before" in text
    assert len({r.count("|") for r in rows}) == 1


def test_the_demo_is_the_readmes_main_job():
    """docs/demo.* come from `python -m bench.demo`, which runs the README's own main job: the committed
    sidecar's command is that command, so a changed main job without a new demo fails here."""
    from bench.demo import OUTPUT, readme_main_job
    job = readme_main_job()
    assert job[job.index("-o") + 1] == OUTPUT and "--iterations" in job
    record = json.loads((ROOT / "docs" / "demo.json").read_text())
    assert record["command"] == "python -m nst_jax.run " + shlex.join(job)
    assert record["iteration"] == int(job[job.index("--iterations") + 1])


def test_the_precision_bench_times_the_forms_it_is_asked_for():
    """`bench.precision --conv-forms`: the problem it times carries that form's kernels (XLA's has none)."""
    from bench import precision
    _, plain = precision.value_and_grad(64, "float32")
    _, winograd = precision.value_and_grad(64, "float32", conv_forms="f4")
    assert not any("kernel_wino" in p for p in plain.params.values())
    assert {p["kernel_wino"].form for p in winograd.params.values() if "kernel_wino" in p} == {"f4"}


@pytest.mark.parametrize("bench", ["gram_products", "sorts"])
def test_a_native_library_bench_without_the_library_says_so(bench, monkeypatch, capsys):
    """`bench.run.native_library_bench`, behind `bench.gram_products` and `bench.sorts`: one error line."""
    import importlib
    from nst_jax.model import fused
    monkeypatch.setattr(fused, "why_unavailable", lambda: "no C++ compiler found")
    assert importlib.import_module(f"bench.{bench}").main(["--size", "32"]) == 2
    assert capsys.readouterr().err.strip() == "error: the native library is not available here: no C++ compiler found"
