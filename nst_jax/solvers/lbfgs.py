"""The classic L-BFGS of torch.optim.LBFGS without line search, in the compact form (see the package doc)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from nst_jax.solvers._base import Fun, Settings, Solver, SolverInfo, register, value_and_grad

HIGHEST = jax.lax.Precision.HIGHEST
BLOWUP = 4.0
HISTORY_CHUNK = 10   # at most this many rows of a bfloat16 history are widened at once


class LBFGSState(NamedTuple):
    x: jnp.ndarray
    value: jnp.ndarray
    parts: dict
    grad: jnp.ndarray
    iteration: jnp.ndarray      # steps taken
    evaluations: jnp.ndarray    # function evaluations so far
    s_hist: jnp.ndarray         # (m, D) ring buffer of steps s
    y_hist: jnp.ndarray         # (m, D) ring buffer of gradient changes y
    sy: jnp.ndarray             # (m, m) s_i·y_j
    yy: jnp.ndarray             # (m, m) y_i·y_j
    s_g: jnp.ndarray            # (m,) s_i·g for the current gradient
    y_g: jnp.ndarray            # (m,) y_i·g
    pairs: jnp.ndarray          # pairs accepted so far (the ring position is pairs % m)
    gamma: jnp.ndarray          # initial inverse-Hessian scale sᵀy/yᵀy of the last accepted pair
    damping: jnp.ndarray        # step multiplier, 1 unless a step blew up (see `lbfgs`)


def _narrow(v):
    """float32 → bfloat16 (round to nearest even), kept as its 16 bits in a uint16 array."""
    return jax.lax.bitcast_convert_type(v.astype(jnp.bfloat16), jnp.uint16)


def _widen(bits):
    """bfloat16 bits (uint16) → float32, exactly: the 16 bits become the float's upper half. Integer
    arithmetic throughout — XLA-CPU computes bfloat16 updates and conversions of a whole array in float32,
    which would bring back the float32 copy of the history this storage avoids."""
    return jax.lax.bitcast_convert_type(bits.astype(jnp.uint32) << 16, jnp.float32)


def _compact_direction(g, st: LBFGSState, m: int, vecmat=None):
    """−H·g from the compact representation (see the module docstring); vecmat(c, H) = c·H for the
    history's storage (default: float32)."""
    vecmat = vecmat or (lambda c, h: jnp.dot(c, h, precision=HIGHEST))
    pairs = st.pairs
    start = jnp.where(pairs >= m, pairs % m, 0)
    order = (start + jnp.arange(m)) % m                      # chronological slot order
    valid = jnp.arange(m) < jnp.minimum(pairs, m)             # in chronological positions
    sg, yg = st.s_g[order], st.y_g[order]
    sy = st.sy[order][:, order]
    yy = st.yy[order][:, order]
    r = jnp.where(valid[:, None] & valid[None, :], jnp.triu(sy), 0.0)
    r = r + jnp.diag(jnp.where(valid, 0.0, 1.0))
    d = jnp.where(valid, jnp.diag(sy), 0.0)
    gamma = st.gamma
    u = solve_triangular(r, jnp.where(valid, sg, 0.0), lower=False)
    w = d * u + gamma * jnp.dot(yy, u, precision=HIGHEST) - gamma * jnp.where(valid, yg, 0.0)
    p = solve_triangular(r, w, trans=1, lower=False)
    q = -u
    inv = jnp.argsort(order)
    p, q = jnp.where(valid, p, 0.0)[inv], jnp.where(valid, q, 0.0)[inv]
    hg = gamma * g + vecmat(p, st.s_hist) + gamma * vecmat(q, st.y_hist)
    return -hg


def lbfgs(fun: Fun, history: int = 100, lr: float = 1.0, safeguard: bool = True,
          history_dtype: str = "float32") -> Solver:
    """torch.optim.LBFGS (no line search, tolerances off) as a pure (init, step) pair; see module doc.

    `safeguard` (for objectives ≥ 0, such as every style-transfer loss) rejects blown-up steps;
    without it the iterates are exactly torch's.

    `history_dtype` 'bfloat16' stores the 2·m history vectors in bfloat16 (as uint16 bit patterns) — half
    their memory — while
    every product with them is taken in float32, a few rows at a time in a loop (so no float32 copy
    of the whole history is made: XLA-CPU's own bfloat16 handling would make one); the small m×m matrices stay float32."""
    vg = value_and_grad(fun)
    m = int(history)
    hdt = jnp.dtype(history_dtype)
    if hdt == jnp.float32:
        matvec = lambda h, v: jnp.dot(h, v, precision=HIGHEST)          # (m, D) · (D, …)
        vecmat = lambda c, h: jnp.dot(c, h, precision=HIGHEST)          # (m,) · (m, D)
        narrow = lambda v: v
    else:
        if hdt != jnp.bfloat16:
            raise ValueError(f"history_dtype must be float32 or bfloat16, got {history_dtype}")
        hdt = jnp.dtype(jnp.uint16)   # bfloat16 bit patterns (see `_widen`)
        narrow = _narrow

        chunk = max(k for k in range(1, min(HISTORY_CHUNK, m) + 1) if m % k == 0)

        def rows(h, i):  # rows i·chunk … of the history, widened (in a loop: one chunk at a time is live)
            return _widen(jax.lax.dynamic_slice_in_dim(h, i * chunk, chunk))

        def matvec(h, v):
            out = jnp.zeros((m // chunk, chunk), jnp.float32)
            body = lambda i, out: out.at[i].set(jnp.dot(rows(h, i), v, precision=HIGHEST))
            return jax.lax.fori_loop(0, m // chunk, body, out).reshape(-1)

        def vecmat(c, h):
            c = c.reshape(-1, chunk)
            body = lambda i, acc: acc + jnp.dot(c[i], rows(h, i), precision=HIGHEST)
            return jax.lax.fori_loop(0, c.shape[0], body, jnp.zeros(h.shape[1], jnp.float32))

    def init(x0, aux) -> LBFGSState:
        value, parts, grad = vg(x0, aux)
        dim = x0.size
        z = jnp.zeros
        return LBFGSState(x0, value, parts, grad, jnp.int32(0), jnp.int32(1),
                          z((m, dim), hdt), z((m, dim), hdt), z((m, m), x0.dtype),
                          z((m, m), x0.dtype), z((m,), x0.dtype), z((m,), x0.dtype), jnp.int32(0),
                          jnp.asarray(1.0, x0.dtype), jnp.asarray(1.0, x0.dtype))

    def step(st: LBFGSState, aux) -> LBFGSState:
        shape = st.x.shape
        g = st.grad.reshape(-1)
        d = jnp.where(st.pairs > 0, _compact_direction(g, st, m, vecmat), -g)
        first = jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * lr
        t = (jnp.where(st.iteration == 0, first, lr) * st.damping).astype(g.dtype)
        s = t * d
        x_new = st.x + s.reshape(shape)
        value, parts, grad_new = vg(x_new, aux)
        g_new = grad_new.reshape(-1)
        y = g_new - g
        ys = jnp.dot(y, s, precision=HIGHEST)
        yy_new = jnp.dot(y, y, precision=HIGHEST)
        # Safeguard (not in torch): a step whose loss is not finite or over BLOWUP× the last one is
        # rejected — x, value and history stay, and later steps are damped ×0.1 (recovering ×2 per
        # good step), a backtracking spread over iterations that keeps one evaluation per step.
        # torch.optim.LBFGS takes such steps and then stalls or returns NaN (e.g. from the flat 'mean'
        # image with k = 1000). The main job (README) triggers it at steps 2–5 (its first full steps are
        # ~10⁴× too long) and recovers in ~14 steps; faster recoveries (an interpolated shrink, a reset
        # after a good step) save ~3 % of its iterations (time-to-quality-cpu-2026-12-03-xeon-amx.md).
        blown = ~jnp.isfinite(value) | (value > BLOWUP * jnp.abs(st.value) + 1e-30)
        blown = blown & safeguard
        accept = (ys > 1e-10) & ~blown
        k = st.pairs % m
        # products with the old history, then the slot k replaced by the new pair
        s_gn = matvec(st.s_hist, g_new)
        if hdt == jnp.float32:
            y_both = matvec(st.y_hist, jnp.stack([g_new, d], axis=1))
            y_gn, y_d = y_both[:, 0], y_both[:, 1]
        else:
            y_gn, y_d = matvec(st.y_hist, g_new), matvec(st.y_hist, d)
            y_both = y_gn + y_d
        # A pair is kept only if its products with the history are finite (a non-finite one would
        # poison S Yᵀ and Y Yᵀ). This data dependence also lets XLA write the new rows in place after
        # the products with the old rows; without it, it copies both m×D histories every step.
        accept = accept & jnp.isfinite(jnp.sum(s_gn) + jnp.sum(y_both))
        s_y = s_gn - st.s_g          # s_i·y   (i ≠ k)
        y_y = y_gn - st.y_g          # y_i·y   (i ≠ k)
        s_yrow = t * y_d             # s·y_j   (j ≠ k)
        onehot = jnp.arange(m) == k
        col = jnp.where(onehot, ys, s_y)
        row = jnp.where(onehot, ys, s_yrow)
        sy_upd = st.sy.at[:, k].set(col).at[k, :].set(row)
        yyv = jnp.where(onehot, yy_new, y_y)
        yy_upd = st.yy.at[:, k].set(yyv).at[k, :].set(yyv)
        s_g_upd = jnp.where(onehot, jnp.dot(s, g_new, precision=HIGHEST), s_gn)
        y_g_upd = jnp.where(onehot, jnp.dot(y, g_new, precision=HIGHEST), y_gn)
        sel = lambda new, old: jnp.where(accept, new, old)
        keep = lambda new, old: jnp.where(blown, old, new)
        return LBFGSState(
            x=keep(x_new, st.x), value=keep(value, st.value),
            parts=jax.tree.map(keep, parts, st.parts), grad=keep(grad_new, st.grad),
            iteration=st.iteration + 1, evaluations=st.evaluations + 1,
            s_hist=st.s_hist.at[k].set(sel(narrow(s), st.s_hist[k])),
            y_hist=st.y_hist.at[k].set(sel(narrow(y), st.y_hist[k])),
            sy=sel(sy_upd, st.sy), yy=sel(yy_upd, st.yy),
            s_g=keep(sel(s_g_upd, s_gn), st.s_g), y_g=keep(sel(y_g_upd, y_gn), st.y_g),
            pairs=st.pairs + accept.astype(jnp.int32),
            gamma=sel(ys / yy_new, st.gamma),
            damping=jnp.where(blown, 0.1 * st.damping, jnp.minimum(1.0, 2.0 * st.damping)))

    return Solver("lbfgs", init, step)


def make(fun: Fun, settings: Settings) -> Solver:
    return lbfgs(fun, settings.history, settings.lr, settings.safeguard, settings.history_dtype)


register(SolverInfo("lbfgs", make, 1.0, False,
                    "classic L-BFGS (torch.optim.LBFGS's algorithm, no line search)"))
