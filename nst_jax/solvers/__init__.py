"""Optimisers of the image as pure (init, step) pairs over NamedTuple state, in a registry.

Every solver optimises `fun(x, aux) -> (value, parts)` over an array x and keeps, in its state, x
with its value, parts and gradient: `init(x0, aux)` evaluates once, and each `step(state, aux)` moves
x and evaluates once more, so one step is one function evaluation (plus, for jaxopt, what it reports).
The caller jits `step` once (donating the state) and drives it from Python: on XLA-CPU a
convolution inside `lax.scan`/`while_loop` runs ~3.4× slower than in a top-level call.

Each solver is one module of this package that calls `_base.register(SolverInfo(...))`: its name, a
factory `make(fun, lr, history, safeguard) -> Solver`, its default step size, and whether each step
draws a fresh PRNG key for the random style statistics (Adam: yes; L-BFGS: no, its curvature pairs
assume one objective). Adding an optimizer is adding one module.

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

from nst_jax.base import catalogue
from nst_jax.base.registry import import_modules
from nst_jax.solvers._base import REGISTRY, Fun, Settings, Solver, SolverInfo, State, value_and_grad

get = REGISTRY.get


def make_solver(name: str, fun: Fun, lr: float | None = None, history: int = 100,
                safeguard: bool = True, history_dtype: str = "float32") -> Solver:
    """The solver called `name` for `fun`, with its default step size when lr is None."""
    info = get(name)
    return info.make(fun, Settings(info.default_lr if lr is None else lr, history, safeguard, history_dtype))


# the classic L-BFGS first (the default), then every other module of the package in name order
import_modules(__name__, __path__, first="lbfgs")
NAMES = REGISTRY.names()
if NAMES != catalogue.solver_names():  # the command line reads the names from the modules' source
    raise ImportError(f"{__name__}: registered {NAMES}, but nst_jax.catalogue reads {catalogue.solver_names()}")

__all__ = ["Fun", "Settings", "Solver", "SolverInfo", "State", "REGISTRY", "NAMES", "get", "make_solver",
           "value_and_grad"]
