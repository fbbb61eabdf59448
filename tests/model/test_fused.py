"""The fused Winograd F(4×4, 3×3) kernel ('f4f', `nst_jax.fused`): equal to the direct convolution,
forward and input gradient, on odd sizes, batched and vmapped; built once per machine into the cache and
rebuilt when the file is damaged; not offered (with the reason said) where no compiler works; and a run
with it compiles once and continues bit for bit."""

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

from conftest import CONTENT, ROOT, STYLE, call_main, small_cfg
from nst_jax.files import checkpoints
from nst_jax.model import convforms
from nst_jax.model import fused, layers, winograd
from nst_jax.model.convforms import Choice, Shape

pytestmark = pytest.mark.skipif(fused.why_unavailable() is not None,
                                reason=f"the fused kernel cannot be built here: {fused.why_unavailable()}")


@pytest.fixture
def fresh_library():
    """The library looked up afresh in this test (and again after it, as it was)."""
    fused._library.cache_clear()
    yield
    fused._library.cache_clear()


def _rel(a, b) -> float:
    return float(jnp.abs(a - b).max() / jnp.abs(b).max())


@pytest.mark.parametrize("shape", [(2, 13, 11, 64, 64), (1, 16, 16, 64, 128), (1, 9, 7, 128, 64),
                                   (1, 1, 1, 64, 64), (1, 5, 6, 64, 64)])
def test_it_equals_the_direct_convolution_forward_and_input_gradient(shape):
    b, h, w, c, o = shape
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((b, h, w, c)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, c, o)) / np.sqrt(9 * c), jnp.float32)
    kb = layers.backward_kernel(k)
    u, ub = layers.transformed("f4f", k), layers.transformed("f4f", kb)
    assert u.form == "f4f" and u.u.shape == (36, o // fused.library().panel, c, fused.library().panel)
    y, vjp = jax.vjp(lambda x: layers.conv3x3(x, k, kb, u, ub), x)
    y0, vjp0 = jax.vjp(lambda x: layers.xla_conv(x, k), x)
    g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
    assert y.shape == y0.shape and _rel(y, y0) < convforms.ERROR_BUDGET
    assert _rel(vjp(g)[0], vjp0(g)[0]) < convforms.ERROR_BUDGET
    assert 0 < _rel(y, y0)                                   # not XLA's convolution under another name
    per_image = jax.vmap(lambda one: winograd.conv_f4f(one[None], u.u)[0])(x)
    np.testing.assert_array_equal(np.asarray(jax.jit(winograd.conv_f4f)(x, u.u)), np.asarray(per_image))


_CHILD_CHECK = """
import jax, jax.numpy as jnp, numpy as np
from nst_jax.model import fused, layers, winograd
lib = fused.library()
rng = np.random.default_rng(1)
x = jnp.asarray(rng.standard_normal((1, 11, 13, 64)), jnp.float32)
k = jnp.asarray(rng.standard_normal((3, 3, 64, 64)) / 24, jnp.float32)
kb = layers.backward_kernel(k)
y, vjp = jax.vjp(lambda x: layers.conv3x3(x, k, kb, layers.transformed("f4f", k), layers.transformed("f4f", kb)), x)
y0, vjp0 = jax.vjp(lambda x: layers.xla_conv(x, k), x)
rel = lambda a, b: float(jnp.abs(a - b).max() / jnp.abs(b).max())
f = jnp.asarray(rng.standard_normal((301, 64)), jnp.float32)
f64 = np.asarray(f, np.float64)
print(lib.lanes, lib.panel, rel(y, y0), rel(vjp(y)[0], vjp0(y)[0]), lib.gram_channels, rel(fused.gram(f), f64.T @ f64))
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 architecture levels")
@pytest.mark.parametrize("arch, lanes", [("x86-64-v3", 8), ("x86-64", 4)])
def test_built_for_narrower_vectors_it_gives_the_same_convolution(arch, lanes, tmp_path):
    """The kernel's AVX2 (8 lanes) and SSE2 (4 lanes) builds, which this machine can run too; and the
    library's Gram product so built."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NST_JAX_CACHE=str(tmp_path), NST_JAX_FUSED_ARCH=arch)
    child = subprocess.run([sys.executable, "-c", _CHILD_CHECK], capture_output=True, text=True, cwd=ROOT, env=env)
    assert child.returncode == 0, child.stderr
    got_lanes, panel, forward, gradient, gram_channels, gram = child.stdout.split()
    assert (int(got_lanes), int(panel), int(gram_channels)) == (lanes, 2 * lanes, 2 * lanes)
    assert float(forward) < convforms.ERROR_BUDGET and float(gradient) < convforms.ERROR_BUDGET
    assert float(gram) < 2e-6


def test_it_takes_the_channels_its_panels_fit():
    lib = fused.library()
    assert lib.trial_calls == 10          # five block sizes, two calls each (the planner warms past them)
    assert fused.fits(lib.lanes * 4, lib.panel) and not fused.fits(lib.lanes * 4 + 1, lib.panel)
    assert not fused.fits(64, lib.panel + lib.lanes)
    assert convforms.candidates(Shape(32, 48, 64, 128), fused=True) == ("xla", "f2", "f4f")   # not its twin f4
    assert convforms.candidates(Shape(33, 48, 64, 128), fused=True) == ("xla", "f4f")
    assert "f4f" not in convforms.candidates(Shape(32, 48, 64, 128))
    assert "f4f" not in convforms.candidates(Shape(32, 48, 64, 3), fused=True)


def test_it_is_built_once_per_machine_and_rebuilt_when_damaged(tmp_path, monkeypatch, fresh_library):
    monkeypatch.setenv("NST_JAX_CACHE", str(tmp_path / "cache"))
    assert fused.why_unavailable() is None
    path = fused.library().path
    assert path.is_relative_to(tmp_path / "cache" / "native") and path.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".sha256.json"]  # no partial
    fused._library.cache_clear()
    monkeypatch.setattr(fused, "_build", lambda *a: pytest.fail("built again"))
    assert fused.library().path == path                                     # found, not built again
    damaged = path.with_name("damaged")                 # a new file, not written over the one this process mapped
    damaged.write_bytes(b"not a library")
    os.replace(damaged, path)                                               # damaged: a new process builds it again
    code = "from nst_jax.model import fused; print(fused.why_unavailable(), fused.library().path)"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert child.returncode == 0 and child.stdout.split() == ["None", str(path)], child.stderr
    assert path.read_bytes()[:4] == b"\x7fELF"


@pytest.mark.parametrize("cxx, why", [("/nonexistent/c++", "no C++ compiler found"), ("false", "false failed")])
def test_without_a_working_compiler_it_is_not_offered_and_asking_for_it_is_one_error(
        cxx, why, tmp_path, monkeypatch, capsys, fresh_library):
    from nst_jax import run
    monkeypatch.setenv("NST_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", cxx)
    monkeypatch.delenv("NST_JAX_TUNE", raising=False)
    assert why in fused.why_unavailable() and not fused.fits(64, 64)
    said = []
    measured = lambda s, forms: Choice("xla", {f: 1.0 for f in forms}, {f: 0.0 for f in forms})
    forms = convforms.choose_forms(("relu1_1", "relu2_1"), 64, 64, measure_fn=measured, say=said.append)
    assert all(f != "f4f" for _, a, b in forms.by_layer for f in (a, b))
    assert any("fused F(4×4) kernel is not available" in line and why in line for line in said)
    code, _, err = call_main(run.main, [CONTENT, STYLE, "-o", tmp_path / "o.png", "--size", "48", "--iterations", "2",
                                        "--conv-forms", "f4f", "--quiet"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --conv-forms f4f: the fused") and why in err[0]
    assert not (tmp_path / "o.png").exists()


def test_a_run_started_with_it_is_not_continued_without_it(tmp_path, monkeypatch, fresh_library):
    from nst_jax.base.errors import NSTError
    from nst_jax.transfer.runs import run
    run(small_cfg(tmp_path / "o.png", iterations=3, keep_checkpoint=True, conv_forms="f4f"), progress=False)
    monkeypatch.setenv("NST_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    fused._library.cache_clear()
    with pytest.raises(NSTError, match="this run was started with the fused Winograd F.4×4, 3×3. kernel"):
        run(small_cfg(tmp_path / "o.png", iterations=6, checkpoint_every=3, keep_checkpoint=True), progress=False)


def test_turned_off_it_is_not_offered_and_nothing_is_said(monkeypatch, tmp_path):
    monkeypatch.setenv("NST_JAX_FUSED", "off")
    said = []
    assert not convforms.fused_ready(said.append) and said == [] and not fused.fits(64, 64)


def test_a_run_with_it_compiles_once_and_continues_bit_for_bit(tmp_path):
    from nst_jax.transfer.runs import run
    whole = run(small_cfg(tmp_path / "whole.png", iterations=6, conv_forms="f4f", size=46), progress=False)
    forms = json.loads((tmp_path / "whole.json").read_text())["conv_forms"]
    assert forms["source"] == "asked" and ["conv1_2", "f4f", "f4f"] in forms["forms"] and forms["native_gram"]
    run(small_cfg(tmp_path / "o.png", iterations=3, keep_checkpoint=True, conv_forms="f4f", size=46), progress=False)
    assert checkpoints.read_meta(tmp_path / "o.ckpt.npz")["native_gram"] is True
    continued = run(small_cfg(tmp_path / "o.png", iterations=6, checkpoint_every=3, keep_checkpoint=True,
                              conv_forms="f4f", size=46), progress=False)
    np.testing.assert_array_equal(continued.image, whole.image)
    assert whole.compiles == 1 and continued.compiles <= 1
    xla = run(small_cfg(tmp_path / "xla.png", iterations=6, conv_forms="xla", size=46), progress=False)
    assert abs(xla.loss - whole.loss) < 1e-3 * abs(xla.loss) and not np.array_equal(xla.image, whole.image)


def test_a_checkpoint_that_does_not_record_the_native_gram_continues_with_xlas(tmp_path):
    """Checkpoints written before the Gram's product was native record the fused forms alone: such a run
    continues as it began, with XLA's Gram product."""
    from nst_jax.transfer.runs import run
    cfg = small_cfg(tmp_path / "o.png", iterations=3, keep_checkpoint=True, conv_forms="f4f", size=46)
    run(cfg, progress=False)
    path = tmp_path / "o.ckpt.npz"
    with np.load(path) as data:
        arrays = dict(data)
    meta = json.loads(arrays["meta"].tobytes())
    assert meta.pop("native_gram") is True and any(f == "f4f" for _, *both in meta["conv_forms"] for f in both)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    run(small_cfg(tmp_path / "o.png", iterations=6, keep_checkpoint=True, conv_forms="f4f", size=46), progress=False)
    forms = json.loads((tmp_path / "o.json").read_text())["conv_forms"]
    assert forms["source"] == "asked" and forms["native_gram"] is False


@pytest.mark.parametrize("form", ["f4f", "f4fa3"])
def test_a_pruned_layer_the_fused_kernel_does_not_take_runs_xlas_convolution(form):
    """Forms are planned for VGG19's channel counts; a pruned network's layer with fewer output
    channels than a panel keeps XLA's convolution (and the same values) instead of failing to pack."""
    if fused.form_units(form) and fused.form_units(form) not in fused.bf16_units():
        pytest.skip(f"{form} needs {fused.form_units(form)}, which this CPU lacks")
    from nst_jax.model import layers
    rng = np.random.default_rng(0)
    panel = fused.library().panel
    whole = {"kernel": rng.standard_normal((3, 3, 64, panel)).astype(np.float32), "bias": np.zeros(panel, np.float32)}
    pruned = {"kernel": rng.standard_normal((3, 3, 64, panel // 2)).astype(np.float32),
              "bias": np.zeros(panel // 2, np.float32)}
    assert layers.takes_kernel(form, whole["kernel"]) and not layers.takes_kernel(form, pruned["kernel"])
    prepared = layers.prepare_params({"conv2_1": whole, "conv2_2": pruned}, {"conv2_1": (form, "xla"),
                                                                            "conv2_2": (form, "xla")})
    assert prepared["conv2_1"]["kernel_wino"].form == form
    assert "kernel_wino" not in prepared["conv2_2"]


@pytest.mark.parametrize("form", ["f4f", "f4fa3"])
def test_the_block_size_it_measures_for_itself_changes_no_value(form):
    """The kernel tries five block sizes on its first calls of a shape (two calls each) and keeps the
    fastest: every call, and every size asked for, gives the same bits. The map (2 × 60 × 92: 690
    tiles, odd so the last ones are padded) is large enough for the sizes to differ."""
    method = fused.FORM_METHODS.get(form)
    if method and fused.form_units(form) not in fused.bf16_units():
        pytest.skip(f"{form} needs {fused.form_units(form)}, which this CPU lacks")
    rng = np.random.default_rng(5)
    lanes, panel = fused.library().lanes, fused.library().panel
    x = jnp.asarray(rng.standard_normal((2, 59, 91, 2 * lanes)), jnp.float32)
    u = layers.FORMS[form].transform(jnp.asarray(rng.standard_normal((3, 3, 2 * lanes, panel)), jnp.float32))

    def conv(tiles):
        return jax.jit(lambda x, u: fused.conv(x, u, tiles=tiles) if method is None
                       else fused.conv_bf16(x, u, method, tiles=tiles))
    tuned = conv(0)
    first = np.asarray(tuned(x, u))
    for _ in range(12):   # through the trials and past them
        np.testing.assert_array_equal(np.asarray(tuned(x, u)), first)
    for tiles in (-1, 6, 32, 64, 128, 384):
        np.testing.assert_array_equal(np.asarray(conv(tiles)(x, u)), first)
