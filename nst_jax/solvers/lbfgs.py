"""The classic L-BFGS of torch.optim.LBFGS without line search, in the compact form (see the package doc)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from nst_jax.solvers._base import Fun, Solver, SolverInfo, register, value_and_grad

HIGHEST = jax.lax.Precision.HIGHEST
BLOWUP = 4.0


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


def _compact_direction(g, st: LBFGSState, m: int):
    """−H·g from the compact representation (see the module docstring)."""
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
    hg = gamma * g + jnp.dot(p, st.s_hist, precision=HIGHEST) + gamma * jnp.dot(q, st.y_hist, precision=HIGHEST)
    return -hg


def lbfgs(fun: Fun, history: int = 100, lr: float = 1.0, safeguard: bool = True) -> Solver:
    """torch.optim.LBFGS (no line search, tolerances off) as a pure (init, step) pair; see module doc.

    `safeguard` (for objectives ≥ 0, such as every style-transfer loss) rejects blown-up steps;
    without it the iterates are exactly torch's."""
    vg = value_and_grad(fun)
    m = int(history)

    def init(x0, aux) -> LBFGSState:
        value, parts, grad = vg(x0, aux)
        dim = x0.size
        z = jnp.zeros
        return LBFGSState(x0, value, parts, grad, jnp.int32(0), jnp.int32(1),
                          z((m, dim), x0.dtype), z((m, dim), x0.dtype), z((m, m), x0.dtype),
                          z((m, m), x0.dtype), z((m,), x0.dtype), z((m,), x0.dtype), jnp.int32(0),
                          jnp.asarray(1.0, x0.dtype), jnp.asarray(1.0, x0.dtype))

    def step(st: LBFGSState, aux) -> LBFGSState:
        shape = st.x.shape
        g = st.grad.reshape(-1)
        d = jnp.where(st.pairs > 0, _compact_direction(g, st, m), -g)
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
        # image with k = 1000). Normal runs never trigger it (their worst increase is ~1.2×), so they
        # match torch step for step.
        blown = ~jnp.isfinite(value) | (value > BLOWUP * jnp.abs(st.value) + 1e-30)
        blown = blown & safeguard
        accept = (ys > 1e-10) & ~blown
        k = st.pairs % m
        # products with the old history, then the slot k replaced by the new pair
        s_gn = jnp.dot(st.s_hist, g_new, precision=HIGHEST)
        y_both = jnp.dot(st.y_hist, jnp.stack([g_new, d], axis=1), precision=HIGHEST)
        y_gn, y_d = y_both[:, 0], y_both[:, 1]
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
            s_hist=st.s_hist.at[k].set(sel(s, st.s_hist[k])), y_hist=st.y_hist.at[k].set(sel(y, st.y_hist[k])),
            sy=sel(sy_upd, st.sy), yy=sel(yy_upd, st.yy),
            s_g=keep(sel(s_g_upd, s_gn), st.s_g), y_g=keep(sel(y_g_upd, y_gn), st.y_g),
            pairs=st.pairs + accept.astype(jnp.int32),
            gamma=sel(ys / yy_new, st.gamma),
            damping=jnp.where(blown, 0.1 * st.damping, jnp.minimum(1.0, 2.0 * st.damping)))

    return Solver("lbfgs", init, step)


register(SolverInfo("lbfgs", lambda fun, lr, history, safeguard: lbfgs(fun, history, lr, safeguard), 1.0, False,
                    "classic L-BFGS (torch.optim.LBFGS's algorithm, no line search)"))
