"""The native library's Gram product (`fused.gram`, `native/gram.cc`): FᵀF to float32 rounding on odd
position counts, over several chunks, batched and vmapped, exactly symmetric and the same bits every
call; the Gram statistic's native variant agrees with XLA's, value and gradient, and runs go with the
fused convolution forms."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT
from nst_jax.model import convforms, fused
from nst_jax.objective import statistics

pytestmark = pytest.mark.skipif(fused.why_unavailable() is not None,
                                reason=f"the native library cannot be built here: {fused.why_unavailable()}")


def _features(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("m, c", [(1, 64), (7, 64), (301, 64), (5000, 128), (77, 256), (130, 512), (9000, 512)])
def test_it_equals_ftf_to_float32_rounding_and_is_symmetric(m, c):
    """5000 positions of 128 channels are ten chunks summed in order, 9000 of 512 eight (the most there)."""
    f = _features((m, c))
    g = np.asarray(jax.jit(fused.gram)(f))
    f64 = np.asarray(f, np.float64)
    want = f64.T @ f64
    assert g.shape == (c, c) and g.dtype == np.float32
    assert np.abs(g - want).max() <= 2e-6 * np.abs(want).max()
    np.testing.assert_array_equal(g, g.T)
    np.testing.assert_array_equal(np.asarray(jax.jit(fused.gram)(f)), g)       # the same bits every call


def test_it_is_batched_and_vmapped_image_by_image():
    f = _features((2, 3, 45, 64), seed=1)
    batched = np.asarray(jax.jit(fused.gram)(f))
    one_by_one = np.stack([[np.asarray(fused.gram(f[i, j])) for j in range(3)] for i in range(2)])
    np.testing.assert_array_equal(batched, one_by_one)
    np.testing.assert_array_equal(np.asarray(jax.vmap(fused.gram)(f)), batched)


def test_no_positions_give_zeros():
    np.testing.assert_array_equal(np.asarray(fused.gram(jnp.zeros((2, 0, 64), jnp.float32))), np.zeros((2, 64, 64)))


_THREADS = """
import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # before XLA sizes its thread pool: one thread
import jax, jax.numpy as jnp, numpy as np
from nst_jax.model import fused
f = jnp.asarray(np.random.default_rng(4).standard_normal((2, 5000, 128)), jnp.float32)
np.save(sys.argv[1], np.asarray(jax.jit(fused.gram)(f)))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs this process may run on")
def test_it_gives_the_same_bits_on_one_thread_as_on_several(tmp_path):
    """Two images of ten chunks each: one thread does every item in order, here the pool shares them."""
    child = subprocess.run([sys.executable, "-c", _THREADS, str(tmp_path / "one.npy")], capture_output=True,
                           text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert child.returncode == 0, child.stderr
    f = jnp.asarray(np.random.default_rng(4).standard_normal((2, 5000, 128)), jnp.float32)
    np.testing.assert_array_equal(np.load(tmp_path / "one.npy"), np.asarray(jax.jit(fused.gram)(f)))


def test_it_takes_channel_counts_of_its_panel_width_only():
    step = fused.library().gram_channels
    assert step in (8, 16, 32) and 64 % step == 0
    assert fused.gram_fits(64) and fused.gram_fits(step) and not fused.gram_fits(step + 1) and not fused.gram_fits(3)
    with pytest.raises(Exception, match=f"nst_jax gram: features shape .10×{step + 1}; want .* multiple of {step}"):
        jax.block_until_ready(fused.gram(_features((10, step + 1))))
    wrong = jax.ffi.ffi_call(fused.TARGET_GRAM, jax.ShapeDtypeStruct((3, 64, 64), jnp.float32))
    with pytest.raises(Exception, match="nst_jax gram: result shape .3×64×64"):
        jax.block_until_ready(wrong(_features((2, 10, 64))))


@pytest.mark.parametrize("c", [64, 3])
def test_the_gram_statistics_native_variant_agrees_with_xlas(c):
    """Value and gradient of the Gram loss; 3 channels (no panel fits) fall back to XLA's product, bit for bit."""
    xla, native = statistics.get("gram"), statistics.get("gram", native=True)
    assert native is not xla and native is statistics.STATISTICS["gram"].native
    assert statistics.get("mean_std", native=True) is statistics.get("mean_std")   # no native variant: itself
    f, s = _features((300, c), 2), _features((200, c), 3)
    program = jax.jit(lambda f: native.loss(f, native.target(s, None), None)).lower(f).as_text()
    assert (fused.TARGET_GRAM in program) == (c == 64)
    loss = lambda stat: jax.jit(jax.value_and_grad(lambda f: stat.loss(f, stat.target(s, None), None)))(f)
    (v0, g0), (v1, g1) = loss(xla), loss(native)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5)
    assert float(jnp.abs(g1 - g0).max()) <= 1e-5 * float(jnp.abs(g0).max())
    if c == 3:
        np.testing.assert_array_equal(np.asarray(g1), np.asarray(g0))


def test_forms_say_whether_they_are_fused():
    fused_forms = convforms.Forms((("conv1_1", "xla", "xla"), ("conv1_2", "f4f", "xla")), "asked")
    plain = convforms.Forms((("conv1_1", "xla", "xla"), ("conv1_2", "f4", "f2")), "asked")
    assert fused_forms.fused() and convforms.Forms((("conv1_2", "xla", "f4fa3"),), "asked").fused()
    assert not plain.fused() and not convforms.NONE.fused()
    assert "Gram matrices' product by the native library" in convforms.describe(fused_forms._replace(native_gram=True))
    assert "Gram" not in convforms.describe(fused_forms)
