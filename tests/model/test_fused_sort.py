"""The native library's sort of columns (`fused.sort_columns`, `fused.unsort_columns`, `native/sort.cc`):
the bits of `jnp.sort` and the stable `jnp.argsort` with zeros of both signs, NaNs, infinities and ties,
over one and several groups of columns, batched and vmapped; its inverse, and its errors; the sorting
statistics' gradients have XLA's bits with it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.model import fused
from nst_jax.objective import statistics
from nst_jax.objective.statistics import _common

pytestmark = pytest.mark.skipif(fused.why_unavailable() is not None,
                                reason=f"the native library cannot be built here: {fused.why_unavailable()}")


def _awkward(shape, seed=0):
    """Normal numbers with exact ties, +0 and -0, NaNs and infinities among them."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal(shape) * 4).astype(np.float32) / 4   # few distinct values: many ties
    for value, share in ((0.0, 0.2), (-0.0, 0.1), (np.nan, 0.03), (np.inf, 0.02), (-np.inf, 0.02)):
        x[rng.random(shape) < share] = value
    x[..., 0] = rng.standard_normal(x.shape[:-1])                      # one column of distinct values
    return x


def _bits(a):
    return np.asarray(a).view(np.uint32)


# 1 row; one group of 16 columns and a short last one; 70000 rows: groups of 14 columns (at most 4 MB of keys)
@pytest.mark.parametrize("shape", [(1, 5), (3, 1), (300, 37), (70000, 20), (2, 4, 33, 16)])
def test_it_gives_the_bits_of_jnps_sort_and_stable_argsort(shape):
    x = _awkward(shape)
    s, o = jax.jit(fused.sort_columns)(x)
    assert s.dtype == jnp.float32 and o.dtype == jnp.int32 and s.shape == o.shape == shape
    np.testing.assert_array_equal(_bits(s), _bits(jnp.sort(x, axis=-2)))    # -0 kept where it was, NaNs' bits
    np.testing.assert_array_equal(np.asarray(o), np.asarray(jnp.argsort(x, axis=-2, stable=True)))


def test_it_vmaps_and_unsort_puts_every_entry_back():
    x = _awkward((3, 200, 24), seed=1)
    s, o = jax.jit(jax.vmap(fused.sort_columns))(x)
    np.testing.assert_array_equal(_bits(s), _bits(jnp.sort(x, axis=1)))
    np.testing.assert_array_equal(_bits(jax.jit(fused.unsort_columns)(s, o)), _bits(x))
    one = jax.jit(jax.vmap(fused.unsort_columns, in_axes=(0, None)))(s, o[0])   # one order for three arrays
    np.testing.assert_array_equal(_bits(one[0]), _bits(x[0]))
    for i in (1, 2):
        np.testing.assert_array_equal(_bits(one[i]), _bits(np.take_along_axis(np.asarray(s[i]),
                                                                               np.argsort(np.asarray(o[0]), axis=0), axis=0)))


def test_empty_arrays_are_sorted_and_bad_orders_or_shapes_are_errors():
    s, o = jax.jit(fused.sort_columns)(np.zeros((0, 4), np.float32))
    assert s.shape == o.shape == (0, 4)
    v = np.ones((5, 2), np.float32)
    with pytest.raises(Exception, match="an order entry is outside 0..M-1"):
        jax.block_until_ready(jax.jit(fused.unsort_columns)(v, np.full((5, 2), 5, np.int32)))
    wrong = (jax.ShapeDtypeStruct((5, 3), jnp.float32), jax.ShapeDtypeStruct((5, 2), jnp.int32))
    with pytest.raises(Exception, match=r"nst_jax sort: result shape \(5×3;"):
        jax.block_until_ready(jax.jit(lambda v: jax.ffi.ffi_call(fused.TARGET_SORT, wrong)(v))(v))


def test_the_statistics_sorts_are_native_and_give_xlas_bits_with_their_gradient():
    x, w = _awkward((500, 24), seed=2), _awkward((500, 24), seed=3)
    w[np.isnan(w) | np.isinf(w)] = 1.0
    loss = lambda x: jnp.sum(jnp.where(jnp.isfinite(_common.sort_columns(x)), _common.sort_columns(x) * w, 0.0))
    native = jax.jit(jax.value_and_grad(loss))
    assert fused.TARGET_SORT in native.lower(x).as_text()
    with _common.xla_sorts():
        xla = jax.jit(jax.value_and_grad(loss))
        assert fused.TARGET_SORT not in xla.lower(x).as_text()
        (v0, g0) = xla(x)
    v1, g1 = native(x)
    np.testing.assert_array_equal(_bits(v1), _bits(v0))
    np.testing.assert_array_equal(_bits(g1), _bits(g0))
    table = np.sort(_awkward((500, 24), seed=4), axis=0)
    ranked = jax.jit(_common.ranked)
    assert fused.TARGET_SORT in ranked.lower(table, x).as_text()
    got = ranked(table, x)
    with _common.xla_sorts():   # JAX's caches cleared: the same function traced again, with XLA's sorts
        assert fused.TARGET_SORT not in ranked.lower(table, x).as_text()
        want = ranked(table, x)
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("name", ["sliced_wasserstein", "histogram"])
def test_the_sorting_statistics_agree_with_xlas_sorts(name):
    """Sliced Wasserstein's gradient to the bit; histogram's to the rounding of the style's resampled
    quantiles, which XLA fuses with its gather of them (table[rank]) but computes apart before the native
    one; values to float32 rounding (a differently fused program may be summed in another order)."""
    rng = np.random.default_rng(5)
    f, s = (jnp.maximum(jnp.asarray(rng.standard_normal(shape), jnp.float32), 0) for shape in ((400, 64), (300, 64)))
    stat, key = statistics.get(name), jax.random.PRNGKey(0)
    # the style's features an argument, as in a run (a constant would be folded by XLA's own arithmetic)
    value_and_grad = jax.jit(jax.value_and_grad(lambda f, s: stat.loss(f, stat.target(s, key), key)))
    assert fused.TARGET_SORT in value_and_grad.lower(f, s).as_text()
    v1, g1 = value_and_grad(f, s)
    with _common.xla_sorts():
        assert fused.TARGET_SORT not in value_and_grad.lower(f, s).as_text()
        v0, g0 = value_and_grad(f, s)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-6)
    if name == "sliced_wasserstein":
        np.testing.assert_array_equal(_bits(g1), _bits(g0))
    else:
        assert float(jnp.abs(g1 - g0).max()) <= 1e-6 * float(jnp.abs(g0).max())
