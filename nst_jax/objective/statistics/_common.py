"""Helpers shared by the statistics: float32 (M, C) features, HIGHEST-precision products, quantiles, and
sorts along the positions (by nst_jax's native library where it is built)."""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST


def mm(a, b):
    return jnp.matmul(a, b, precision=HIGHEST)


def tmm(a, b):
    """aᵀ·b for a (M, K), b (M, N), contracting the positions' axis in place. Written as `mm(a.T, b)`,
    XLA-CPU fuses the transpose into the op that produces `a` and writes a transposed copy of every
    feature map (with the ReLU computed once more for it) under the objective's vmap: 3–8 % of a Gatys
    value+grad at 256² and 6 % at 512² on a 2-core AMD EPYC (Zen 4); as one dot_general the product reads
    the features where they are."""
    return jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())), precision=HIGHEST)


def check(f):
    """Features (M, C) as float32; ValueError for any other rank."""
    if f.ndim != 2:
        raise ValueError(f"statistics take features of shape (M, C), got {tuple(f.shape)}")
    return f.astype(jnp.float32)


def no_mask(name: str, mask) -> None:
    if mask is not None:
        raise ValueError(f"style statistic {name!r} does not support masks")


def resample_sorted(sorted_cols, m):
    """Sorted columns (M_s, K) resampled to m quantiles by linear interpolation."""
    ms = sorted_cols.shape[0]
    if ms == m:
        return sorted_cols
    q = (jnp.arange(m, dtype=jnp.float32) + 0.5) / m * ms - 0.5
    q = jnp.clip(q, 0.0, ms - 1.0)
    lo = jnp.floor(q).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, ms - 1)
    t = (q - lo)[:, None]
    return sorted_cols[lo] * (1 - t) + sorted_cols[hi] * t


_XLA_SORTS = contextvars.ContextVar("xla_sorts", default=False)


@contextlib.contextmanager
def xla_sorts():
    """Sorts traced inside this block are XLA's (benchmarks and tests compare the two). JAX reuses a trace
    for a function it has traced before, whichever way its sorts went, so its caches are cleared on
    entering and on leaving."""
    jax.clear_caches()
    token = _XLA_SORTS.set(True)
    try:
        yield
    finally:
        _XLA_SORTS.reset(token)
        jax.clear_caches()


def _native_sort() -> bool:
    """Whether the sorts run by nst_jax's native library (`model.fused.sort_columns`: the same bits as XLA's
    sort, 7–30× faster on a 2-core Xeon): where the default backend is the CPU and the library is built,
    outside `xla_sorts`. Looked up when a sort is traced, so importing the statistics loads no kernel
    builder."""
    if _XLA_SORTS.get() or jax.default_backend() != "cpu":
        return False
    from nst_jax.model import fused
    return fused.why_unavailable() is None


def _sorted_with_order(x):
    from nst_jax.model import fused
    return fused.sort_columns(x)


def _put_back(v, order, plus_zero=False):
    from nst_jax.model import fused
    return fused.unsort_columns(v, order, plus_zero)


@jax.custom_vjp
def _native_sorted(x):
    return _sorted_with_order(x)[0]


def _native_sorted_fwd(x):
    return _sorted_with_order(x)


# each cotangent put back where its entry came from, plus 0 as XLA's transposed gather (a scatter-add into
# zeros) gives it
_native_sorted.defvjp(_native_sorted_fwd, lambda order, g: (_put_back(g, order, plus_zero=True),))


def sort_columns(x):
    """`jnp.sort(x, axis=0)` of x (M, K), by the native library where it is built (`_native_sort`); its
    gradient (reverse mode only, there) puts each sorted entry's cotangent back where the entry came from."""
    return _native_sorted(x) if _native_sort() else jnp.sort(x, axis=0)


def ranked(table, f):
    """For each entry of f (M, K), the row of `table` (M, K) at the entry's rank in its column (stable):
    `take_along_axis(table, argsort(argsort(f)))`, one sort and no second one where the library is built.
    A constant: no gradient flows through it."""
    table, f = jax.lax.stop_gradient(table), jax.lax.stop_gradient(f)
    if _native_sort():
        return _put_back(table, _sorted_with_order(f)[1])
    return jnp.take_along_axis(table, jnp.argsort(jnp.argsort(f, axis=0), axis=0), axis=0)
