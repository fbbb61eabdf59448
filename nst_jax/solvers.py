"""Optimisers of the image as pure (init, step) pairs over NamedTuple state.

Every solver optimises `fun(x, aux) -> (value, parts)` over an array x and keeps, in its state, x
with its value, parts and gradient: `init(x0, aux)` evaluates once, and each `step(state, aux)` moves
x and evaluates once more, so one step is one function evaluation (plus, for jaxopt, what it reports).
The caller jits `step` once (donating the state) and drives it from Python: on XLA-CPU a
convolution inside `lax.scan`/`while_loop` runs ~3.4× slower than in a top-level call.

- `lbfgs`: the classic L-BFGS of torch.optim.LBFGS with no line search (neural-style's algorithm):
  first step min(1, 1/‖g‖₁)·lr along −g, then steps of lr along −H·g, H from the last `history`
  pairs (s, y) with initial scale γ = sᵀy/yᵀy, pairs with yᵀs ≤ 1e-10 skipped. H·g is computed in
  the compact form of Byrd, Nocedal & Schnabel (1994): with the history as m×D matrices S, Y,
      H g = γ g + Sᵀ p + γ Yᵀ q,   q = −R⁻¹ Sg,   p = R⁻ᵀ((D + γ YYᵀ) R⁻¹ Sg − γ Yg),
  R the upper triangle of S Yᵀ in chronological order and D its diagonal. S Yᵀ and Y Yᵀ are kept
  incrementally, so a step costs four passes over the m×D history and an m×m triangular solve,
  instead of the 2m dependent passes of the two-loop recursion.
- `jaxopt`: jaxopt.LBFGS with the same step rule as `lbfgs` (a callable step size: the scaled
  first step, then lr), so it needs one evaluation per iteration; jaxopt's line searches run inside
  `while_loop` (slow on CPU) and cost 2–3 evaluations per iteration for no better loss per second.
- `adam`: optax.adam on the pixels.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

HIGHEST = jax.lax.Precision.HIGHEST
BLOWUP = 4.0
Fun = Callable[[jnp.ndarray, Any], tuple[jnp.ndarray, dict]]


class Solver(NamedTuple):
    """A pure optimiser: `init(x0, aux) -> state`, `step(state, aux) -> state`."""

    name: str
    init: Callable
    step: Callable


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


def _value_and_grad(fun: Fun):
    vg = jax.value_and_grad(lambda x, aux: fun(x, aux), has_aux=True)

    def call(x, aux):
        (value, parts), grad = vg(x, aux)
        return value, parts, grad
    return call


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
    vg = _value_and_grad(fun)
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


class JaxoptState(NamedTuple):
    x: jnp.ndarray
    value: jnp.ndarray
    parts: dict
    grad: jnp.ndarray
    iteration: jnp.ndarray
    evaluations: jnp.ndarray
    first_step: jnp.ndarray
    inner: Any


def jaxopt_lbfgs(fun: Fun, history: int = 100, lr: float = 1.0) -> Solver:
    """jaxopt.LBFGS with the classic step rule (first step min(1, 1/‖g‖₁)·lr, then lr): one
    evaluation per iteration. A fixed step of 1 from the start goes NaN (the first step is −g)."""
    import jaxopt

    def make(first_step):
        rule = lambda it: jnp.where(it == 0, first_step, lr)
        return jaxopt.LBFGS(fun=fun, has_aux=True, history_size=history, stepsize=rule,
                            maxiter=1 << 30, tol=0.0, jit=False, unroll=False)

    def init(x0, aux) -> JaxoptState:
        inner = make(jnp.asarray(1.0, x0.dtype)).init_state(x0, aux)
        g = inner.grad
        first = (jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * lr).astype(x0.dtype)
        return JaxoptState(x0, inner.value, inner.aux, g, jnp.int32(0), jnp.int32(1), first, inner)

    def step(st: JaxoptState, aux) -> JaxoptState:
        x, inner = make(st.first_step).update(st.x, st.inner, aux)
        return JaxoptState(x, inner.value, inner.aux, inner.grad, st.iteration + 1,
                           jnp.asarray(inner.num_fun_eval, jnp.int32), st.first_step, inner)

    return Solver("jaxopt", init, step)


class AdamState(NamedTuple):
    x: jnp.ndarray
    value: jnp.ndarray
    parts: dict
    grad: jnp.ndarray
    iteration: jnp.ndarray
    evaluations: jnp.ndarray
    opt: Any


def adam(fun: Fun, lr: float = 0.02) -> Solver:
    """optax.adam on the pixels; lr is in units of the [0, 1] pixel range."""
    import optax

    tx = optax.adam(lr)
    vg = _value_and_grad(fun)

    def init(x0, aux) -> AdamState:
        value, parts, grad = vg(x0, aux)
        return AdamState(x0, value, parts, grad, jnp.int32(0), jnp.int32(1), tx.init(x0))

    def step(st: AdamState, aux) -> AdamState:
        updates, opt = tx.update(st.grad, st.opt, st.x)
        x = st.x + updates
        value, parts, grad = vg(x, aux)
        return AdamState(x, value, parts, grad, st.iteration + 1, st.evaluations + 1, opt)

    return Solver("adam", init, step)


SOLVERS = ("lbfgs", "jaxopt", "adam")
DEFAULT_LR = {"lbfgs": 1.0, "jaxopt": 1.0, "adam": 0.02}


def make_solver(name: str, fun: Fun, lr: float | None = None, history: int = 100,
                safeguard: bool = True) -> Solver:
    """The solver called `name` ('lbfgs', 'jaxopt' or 'adam') for `fun` (safeguard: see `lbfgs`)."""
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "lbfgs":
        return lbfgs(fun, history, lr, safeguard)
    if name == "jaxopt":
        return jaxopt_lbfgs(fun, history, lr)
    if name == "adam":
        return adam(fun, lr)
    raise ValueError(f"unknown solver {name!r}")
