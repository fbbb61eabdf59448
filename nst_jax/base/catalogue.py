"""What the statistics and solvers registries hold, read from their modules' source without importing
them: the command line's choices and help texts are built without loading JAX (`--help` in well under a
second), while each statistic and solver is still declared in one place, its own module.

Every module of `nst_jax/objective/statistics/` and `nst_jax/solvers/` registers its entries with a top-level
`register(Statistic("name", …))` or `register(SolverInfo("name", make, default_lr, …))` call; this
module finds those calls with `ast`, in the order the packages import the modules (the preferred
first, then name order), and reads their literal arguments. The packages check at import that their
registries hold exactly these names (tests compare the values).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent


def module_order(folder: Path, first: str) -> list[str]:
    """The public modules of a package folder: `first`, then the others in name order."""
    rest = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_") and p.stem != first)
    return [first] + rest


def registrations(folder: Path, first: str) -> list[tuple]:
    """The positional arguments of every top-level `register(Entry(…))` call in the package's modules,
    as literals (None where an argument is not a literal), in registration order."""
    found = []
    for module in module_order(folder, first):
        tree = ast.parse((folder / f"{module}.py").read_text(encoding="utf-8"))
        for node in tree.body:
            call = node.value if isinstance(node, ast.Expr) else None
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "register"
                    and call.args and isinstance(call.args[0], ast.Call)):
                continue
            found.append(tuple(_literal(a) for a in call.args[0].args))
    return found


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


@functools.lru_cache(maxsize=None)
def statistic_names() -> tuple[str, ...]:
    return tuple(entry[0] for entry in registrations(PACKAGE / "objective" / "statistics", "gram"))


@functools.lru_cache(maxsize=None)
def solver_default_lrs() -> dict[str, float]:
    """{solver name: default step size}, in registration order."""
    return {entry[0]: entry[2] for entry in registrations(PACKAGE / "solvers", "lbfgs")}


def solver_names() -> tuple[str, ...]:
    return tuple(solver_default_lrs())
