"""The bfloat16 policy: convolution forms equal float32's to bfloat16 tolerance (forward and VJP);
statistics, losses and the solver state stay float32; CPU feature detection; a small bfloat16 run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import small_cfg
from nst_jax.transfer.identity import settings_hash

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
processor\t: 1
"""


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_im2col_is_the_convolution():
    import jax.numpy as jnp
    from nst_jax.model import layers
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 7, 5)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 5, 4)), jnp.float32)
    np.testing.assert_allclose(np.asarray(layers.im2col_conv(x, k)), np.asarray(layers.xla_conv(x, k)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("form", ["conv", "im2col"])
def test_bfloat16_forms_match_float32_forward_and_vjp(form, monkeypatch):
    import jax
    import jax.numpy as jnp
    from nst_jax.model import layers
    monkeypatch.setattr(layers, "BF16_FORM", form)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((1, 12, 10, 32)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 32, 48)) * 0.1, jnp.float32)
    g = jnp.asarray(rng.standard_normal((1, 12, 10, 48)), jnp.float32)
    out = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        p = layers.prepare_params({"conv2_2": {"kernel": k, "bias": jnp.zeros(48)}}, dtype=dtype)["conv2_2"]
        assert p["kernel"].dtype == dtype and p["bias"].dtype == jnp.float32
        y, back = jax.vjp(lambda x: layers.conv3x3(x, p["kernel"], p["kernel_bwd"]), x.astype(dtype))
        out[dtype] = (y, back(g)[0])
    (y32, gx32), (y16, gx16) = out[jnp.float32], out[jnp.bfloat16]
    assert y16.dtype == jnp.float32 and gx16.dtype == jnp.bfloat16   # accumulated wide, stored narrow
    assert _rel(y16, y32) < 1e-2 and _rel(gx16, gx32) < 1e-2          # bfloat16: 8 bits of mantissa
    assert _rel(y16, y32) > 1e-6                                       # and really computed in bfloat16


def _eqns(jaxpr):
    for e in jaxpr.eqns:
        yield e
        for sub in e.params.values():
            inner = getattr(sub, "jaxpr", sub)
            if hasattr(inner, "eqns"):
                yield from _eqns(inner)


def test_policy_keeps_statistics_losses_and_solver_state_float32(tmp_path):
    import jax
    import jax.numpy as jnp
    from nst_jax.objective import losses
    from nst_jax.transfer import steps
    from nst_jax.transfer.problem import prepare
    problem = prepare(small_cfg(tmp_path / "o.png", precision="bfloat16"))
    assert problem.spec.precision == "bfloat16"
    assert {p["kernel"].dtype for p in problem.params.values()} == {jnp.dtype(jnp.bfloat16)}
    assert {a.dtype for a in jax.tree.leaves(problem.targets)} == {jnp.dtype(jnp.float32)}
    fun = losses.make_objective(problem.spec)
    x = jnp.asarray(problem.x0[None])
    jaxpr = jax.make_jaxpr(jax.value_and_grad(lambda x: fun(x, problem.aux(jax.random.PRNGKey(0)))[0]))(x).jaxpr
    convs = [e for e in _eqns(jaxpr) if e.primitive.name == "conv_general_dilated"
             and e.outvars[0].aval.shape[:2] != (3, 3)]  # not the kernels' cotangents (unused, pruned by XLA)
    assert len(convs) >= 2 * 7  # forward and input gradient of the 7 convolutions up to relu3_2
    assert all(v.aval.dtype == jnp.bfloat16 for e in convs for v in e.invars)
    assert all(e.outvars[0].aval.dtype == jnp.float32 for e in convs)           # accumulated in float32
    grams = [e for e in _eqns(jaxpr) if e.primitive.name == "dot_general"
             and e.outvars[0].aval.shape[-2:] in {(c, c) for c in (64, 128, 256)}]
    assert grams and all(v.aval.dtype == jnp.float32 for e in grams for v in e.invars)
    compiled = steps.compiled_solver(problem.spec, "lbfgs", None, 100)
    state = jax.eval_shape(compiled.init, x, problem.aux(jax.random.PRNGKey(0)))
    assert {a.dtype for a in jax.tree.leaves(state) if a.ndim} == {jnp.dtype(jnp.float32)}


def test_cpu_flags_are_read_from_cpuinfo():
    from nst_jax.machine import hardware
    assert hardware.bfloat16_flags(CPUINFO) == {"avx512_bf16", "amx_bf16", "amx_tile"}
    assert hardware.bfloat16_flags("processor: 0\nflags: fpu sse2 avx2\n") == set()
    assert hardware.bfloat16_flags("") == set()    # unknown hardware: no bfloat16 units assumed


def test_a_bfloat16_run_optimises_and_says_so(tmp_path):
    from nst_jax.transfer import runs as transfer
    f32 = transfer.run(small_cfg(tmp_path / "f.png", iterations=10), progress=False)
    bf16 = transfer.run(small_cfg(tmp_path / "b.png", iterations=10, precision="bfloat16"), progress=False)
    assert bf16.compiles == 1 and bf16.loss < 0.5 * json.loads((tmp_path / "b.losses.jsonl").read_text()
                                                                 .splitlines()[0])["loss"]
    assert bf16.loss == pytest.approx(f32.loss, rel=0.1)
    assert json.loads((tmp_path / "b.json").read_text())["config"]["precision"] == "bfloat16"


def test_auto_precision_takes_bfloat16_only_where_measured_faster(monkeypatch):
    from nst_jax.machine import hardware
    assert hardware.choose_precision("cpu", set()) == ("float32", "this CPU has no bfloat16 units")
    precision, why = hardware.choose_precision("cpu", {"avx512_bf16"})
    assert precision == "float32" and "measured slower" in why and "precision-cpu" in why
    precision, why = hardware.choose_precision("cpu", {"amx_bf16", "amx_tile", "avx512_bf16"})
    assert precision == "float32" and "not measured on cpu with amx_bf16" in why
    assert "bench" not in why and "--precision bfloat16" in why   # advice a user can follow outside the repository
    assert hardware.choose_precision("gpu")[0] == "float32"
    monkeypatch.setitem(hardware.MEASURED, ("cpu", "amx_bf16"), (True, "measured faster"))
    assert hardware.choose_precision("cpu", {"amx_bf16"}) == ("bfloat16", "measured faster")
    assert hardware.resolve_precision("bfloat16") == "bfloat16"


def test_auto_precision_is_resolved_before_the_hash_and_said_in_the_header(tmp_path, capsys):
    from nst_jax.machine import hardware
    from nst_jax.transfer import runs as transfer
    chosen, why = hardware.choose_precision("cpu")
    auto, explicit = small_cfg(tmp_path / "a.png", iterations=1), small_cfg(tmp_path / "a.png", precision=chosen)
    assert auto.precision == "auto" and settings_hash(auto) == settings_hash(explicit)
    transfer.run(auto, progress=True)
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["config"]["precision"] == chosen
    assert f"{chosen} ({why})" in capsys.readouterr().err


def test_the_machine_line_names_the_model_the_cores_and_the_vector_units():
    from nst_jax.machine import hardware
    info = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma\n"
    line = hardware.describe_cpu(info)
    assert line.startswith("AMD EPYC 7B13, ") and line.endswith(" cores, AVX2")
    info512 = "model name\t: Intel Xeon\nflags\t\t: avx2 avx512f amx_bf16 amx_tile\n"
    assert hardware.describe_cpu(info512).endswith("AVX-512 (amx_bf16, amx_tile)")
    assert hardware.describe_cpu("").startswith("unknown CPU")
