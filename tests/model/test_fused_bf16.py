"""The fused F(4×4) kernel's bfloat16 products ('f4fb' on AVX512-BF16, 'f4fa' on AMX): the same numbers
as F(4×4) computed with the transformed input and kernel rounded to bfloat16 and float32 sums, forward
and input gradient, on odd sizes, batched and vmapped, bit-identical from call to call; with split numbers
('f4fa3') within the float32 forms' error budget; offered only where the CPU has the units, and only under
--conv-forms auto-bf16 unless the quality guard holds."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from conftest import ROOT
from nst_jax.base.errors import NSTError
from nst_jax.machine import hardware
from nst_jax.model import convforms, fused, layers, winograd
from nst_jax.model.convforms import Shape

pytestmark = pytest.mark.skipif(fused.why_unavailable() is not None,
                                reason=f"the fused kernel cannot be built here: {fused.why_unavailable()}")
FORM = {"avx512-bf16": "f4fb", "amx": "f4fa"}


def _units(units: str):
    if units not in fused.bf16_units():
        pytest.skip(f"this CPU (or this build of the kernel) has no {units} products")


def _bf16_reference(x, k):
    """F(4×4) in XLA's operations with V and U rounded to bfloat16 and exact float32 products and sums."""
    b, h, w, _ = x.shape
    v, (th, tw) = winograd._input_f4(x)
    u = winograd.kernel_f4(k)
    r = lambda a: a.astype(jnp.bfloat16).astype(jnp.float32)
    m = lax.dot_general(r(v), r(u), (((2,), (1,)), ((0,), (0,))), precision=lax.Precision.HIGHEST)
    return winograd._output_f4(m, b, th, tw)[:, :h, :w]


def _rel(a, b) -> float:
    return float(jnp.abs(a - b).max() / jnp.abs(b).max())


def _l2(a, b) -> float:
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


SHAPES = [(2, 13, 11, 64, 64), (1, 16, 16, 64, 128), (1, 9, 7, 128, 64), (1, 1, 1, 64, 64), (1, 37, 5, 64, 64)]


def _data(shape, seed=0):
    b, h, w, c, o = shape
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((b, h, w, c)), jnp.float32)
    return x, jnp.asarray(rng.standard_normal((3, 3, c, o)) / np.sqrt(9 * c), jnp.float32), rng


@pytest.mark.parametrize("shape", SHAPES)
def test_split_numbers_keep_float32s_budget(shape):
    _units("amx")
    x, k, rng = _data(shape)
    kb = layers.backward_kernel(k)
    u, ub = layers.transformed("f4fa3", k), layers.transformed("f4fa3", kb)
    assert u.u.shape == (36, k.shape[3] // fused.library().panel, 2, k.shape[2] // 2, fused.library().panel, 2)
    y, vjp = jax.vjp(lambda x: layers.conv3x3(x, k, kb, u, ub), x)
    y0, vjp0 = jax.vjp(lambda x: layers.xla_conv(x, k), x)
    g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
    for got, want in ((y, y0), (vjp(g)[0], vjp0(g)[0])):
        error = float(jnp.linalg.norm(got - want) / jnp.linalg.norm(want))
        assert 1e-7 < error < convforms.ERROR_BUDGET
    assert 1e-7 < _rel(y, winograd.conv_f4(x, winograd.kernel_f4(k), lax.Precision.HIGHEST)) < 1e-3
    np.testing.assert_array_equal(np.asarray(winograd.conv_f4fa3(x, u.u)), np.asarray(winograd.conv_f4fa3(x, u.u)))


@pytest.mark.parametrize("units", ["avx512-bf16", "amx"])
@pytest.mark.parametrize("shape", SHAPES)
def test_it_is_f4_with_bfloat16_inputs_to_float32_sums(units, shape):
    """On integer images in [-2, 2] the input transform is exact in float32 and in bfloat16 (integers
    below 256), so the kernel and the reference round the same numbers and differ only in the order of
    their float32 sums (on real data a transform one float32 ulp apart may round to the neighbouring
    bfloat16 now and then)."""
    _units(units)
    x, k, rng = _data(shape)
    kb = layers.backward_kernel(k)
    u, ub = layers.transformed(FORM[units], k), layers.transformed(FORM[units], kb)
    b, h, w, c, o = shape
    assert u.u.dtype == jnp.bfloat16 and u.u.shape == (36, o // fused.library().panel, c // 2, fused.library().panel, 2)
    whole = jnp.asarray(rng.integers(-2, 3, x.shape), jnp.float32)
    y, vjp = jax.vjp(lambda x: layers.conv3x3(x, k, kb, u, ub), whole)
    g = jnp.asarray(rng.integers(-2, 3, y.shape), jnp.float32)
    assert _l2(y, _bf16_reference(whole, k)) < 2e-6
    assert _l2(vjp(g)[0], _bf16_reference(g, kb)) < 2e-6
    y = layers.conv3x3(x, k, kb, u, ub)
    direct = layers.xla_conv(x, k)
    assert 1e-3 < float(jnp.linalg.norm(y - direct) / jnp.linalg.norm(direct)) < convforms.F4_BF16_BUDGET
    again = jax.jit(lambda x: layers.conv3x3(x, k, kb, u, ub))(x)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(jax.jit(lambda x: layers.conv3x3(x, k, kb, u, ub))(x)))
    per_image = jax.vmap(lambda one: layers.FORMS[FORM[units]].conv(one[None], u.u, None)[0])(x)
    np.testing.assert_array_equal(np.asarray(layers.FORMS[FORM[units]].conv(x, u.u, None)), np.asarray(per_image))


def test_both_units_give_the_same_numbers_to_summation_order():
    for units in FORM:
        _units(units)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((1, 20, 12, 96)), jnp.float32)
    u = layers.transformed("f4fa", jnp.asarray(rng.standard_normal((3, 3, 96, 64)) / 30, jnp.float32)).u
    assert _rel(winograd.conv_f4fa(x, u), winograd.conv_f4fb(x, u)) < 1e-5


def test_the_planner_offers_them_only_when_asked_and_where_the_units_are(monkeypatch):
    shape = Shape(32, 48, 64, 128)
    have = tuple(FORM[u] for u in fused.bf16_units()) + (("f4fa3",) if "amx" in fused.bf16_units() else ())
    assert convforms.candidates(shape, fused=True) == ("xla", "f2", "f4f")
    assert convforms.candidates(shape, bf16=True, fused=True) == ("xla", "f2", "f2b", "f4f") + have
    assert convforms.candidates(Shape(32, 48, 80, 128), bf16=True, fused=True)[-1] == "f4f"   # 80: not a multiple of 32
    monkeypatch.setattr(fused, "bf16_units", lambda: ())
    assert convforms.candidates(shape, bf16=True, fused=True) == ("xla", "f2", "f2b", "f4f")
    errors = {"f4fa": 0.03, "f4fb": 0.05, "f4f": 2e-6}
    assert convforms.within_budget("f4fa", errors) and not convforms.within_budget("f4fb", errors)
    assert convforms.choose({"xla": 1.0, "f4f": 0.5, "f4fa": 0.2, "f4fb": 0.1}, errors) == "f4fa"


def test_asking_for_units_the_cpu_lacks_is_one_clear_error(monkeypatch):
    from nst_jax.transfer import planning
    monkeypatch.setattr(fused, "bf16_units", lambda: ())
    with pytest.raises(NSTError, match="--conv-forms f4fa: .*no AMX products"):
        planning._need_fused(recorded=False, form="f4fa")
    with pytest.raises(NSTError, match="started with the fused .* no AVX512-BF16 products"):
        planning._need_fused(recorded=True, form="f4fb")
    with pytest.raises(NSTError, match="started with the fused .* no AMX products"):
        planning._need_fused(recorded=True, form="f4fa3")
    with pytest.raises(NSTError, match="--conv-forms f4fa3: .*no AMX products"):
        planning._need_fused(recorded=False, form="f4fa3")
    planning._need_fused(recorded=False, form="f4f")


def test_auto_takes_them_only_where_the_guard_holds(monkeypatch):
    assert hardware.bf16_forms_by_default({"avx2"}) == ((), "this CPU has no bfloat16 units")
    monkeypatch.setattr(hardware, "BF16_FORMS_GUARD", {"amx_bf16": (("f4fa3",), "measured")})
    assert hardware.bf16_forms_by_default({"amx_bf16", "avx512_bf16"}) == (("f4fa3",), "measured")
    held, why = hardware.bf16_forms_by_default({"avx512_bf16"})
    assert held == () and "not measured on avx512_bf16" in why
    shape = Shape(32, 48, 64, 128)
    assert convforms.candidates(shape, bf16=("f4fa3",), fused=True) == ("xla", "f2", "f4f") + \
        (("f4fa3",) if "amx" in fused.bf16_units() else ())


_CHILD = ("from nst_jax.model import fused; print(fused.why_unavailable(), ','.join(fused.bf16_units()) or '-', "
          "fused.fits_bf16(64, fused.library().panel, 'amx'))")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 architecture levels")
@pytest.mark.parametrize("arch, units", [("x86-64-v3", "-"), ("cooperlake", "avx512-bf16")])
def test_a_build_without_the_units_does_not_offer_them(arch, units, tmp_path):
    """An AVX2 build has no bfloat16 products, and an AVX512-BF16 build without AMX only vdpbf16ps."""
    if arch == "cooperlake" and "avx512_bf16" not in hardware.cpu_flags():
        pytest.skip("this CPU cannot run an AVX512-BF16 build")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NST_JAX_CACHE=str(tmp_path), NST_JAX_FUSED_ARCH=arch)
    child = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, cwd=ROOT, env=env)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["None", units, "False"]


@pytest.mark.parametrize("form", ["f4fa3", "f4fa"])
def test_a_run_with_them_continues_bit_for_bit(form, tmp_path):
    from conftest import small_cfg
    from nst_jax.transfer.runs import run
    _units("amx")
    cfg = lambda name, **kw: small_cfg(tmp_path / name, conv_forms=form, size=46, **kw)   # noqa: E731
    whole = run(cfg("whole.png", iterations=6), progress=False)
    assert [["conv1_2", form, form]] == [r for r in json.loads((tmp_path / "whole.json").read_text())
                                         ["conv_forms"]["forms"] if r[0] == "conv1_2"]
    run(cfg("o.png", iterations=3, keep_checkpoint=True), progress=False)
    continued = run(cfg("o.png", iterations=6, checkpoint_every=3, keep_checkpoint=True), progress=False)
    np.testing.assert_array_equal(continued.image, whole.image)
