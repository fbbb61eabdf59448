"""The native library's Gram product (`fused.gram`, `native/gram.cc`): FᵀF to float32 rounding on odd
position counts, over several chunks, batched and vmapped, exactly symmetric and the same bits every
call; the Gram statistic's native variant agrees with XLA's, value and gradient, and runs go with the
fused convolution forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.model import convforms, fused
from nst_jax.objective import statistics

pytestmark = pytest.mark.skipif(fused.why_unavailable() is not None,
                                reason=f"the native library cannot be built here: {fused.why_unavailable()}")


def _features(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("m, c", [(1, 64), (7, 64), (301, 64), (5000, 128), (77, 256), (130, 512)])
def test_it_equals_ftf_to_float32_rounding_and_is_symmetric(m, c):
    """5000 positions of 128 channels are three chunks (2048 positions each) summed in order."""
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


def test_it_takes_channel_counts_of_its_panel_width_only():
    step = fused.library().gram_channels
    assert step in (8, 16, 32) and 64 % step == 0
    assert fused.gram_fits(64) and fused.gram_fits(step) and not fused.gram_fits(step + 1) and not fused.gram_fits(3)
    with pytest.raises(Exception, match="nst_jax gram: features shape"):
        jax.block_until_ready(fused.gram(_features((10, step + 1))))


@pytest.mark.parametrize("c", [64, 3])
def test_the_gram_statistics_native_variant_agrees_with_xlas(c):
    """Value and gradient of the Gram loss; 3 channels (no panel fits) fall back to XLA's product, bit for bit."""
    xla, native = statistics.get("gram"), statistics.get("gram", native=True)
    assert native is not xla and native is statistics.STATISTICS["gram"].native
    assert statistics.get("mean_std", native=True) is statistics.get("mean_std")   # no native variant: itself
    f, s = _features((300, c), 2), _features((200, c), 3)
    loss = lambda stat: jax.jit(jax.value_and_grad(lambda f: stat.loss(f, stat.target(s, None), None)))(f)
    (v0, g0), (v1, g1) = loss(xla), loss(native)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5)
    assert float(jnp.abs(g1 - g0).max()) <= 1e-5 * float(jnp.abs(g0).max())
    if c == 3:
        np.testing.assert_array_equal(np.asarray(g1), np.asarray(g0))


def test_a_run_uses_it_with_the_fused_forms_only():
    fused_forms = convforms.Forms((("conv1_1", "xla", "xla"), ("conv1_2", "f4f", "xla")), "asked")
    plain = convforms.Forms((("conv1_1", "xla", "xla"), ("conv1_2", "f4", "f2")), "asked")
    assert fused_forms.fused() and convforms.Forms((("conv1_2", "xla", "f4fa3"),), "asked").fused()
    assert not plain.fused() and not convforms.NONE.fused()
