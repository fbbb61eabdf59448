"""The package's shape: modules short enough to read in one sitting, functions short enough to follow,
and no import cycle between modules (what each imports at its top)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nst_jax"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "samples" not in p.parts)


def _inner_functions(node):
    """The functions defined directly inside `node` (not those inside them)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield child
        else:
            yield from _inner_functions(child)


def _own_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines without its docstring and without the functions defined inside it (a solver
    factory's init and step are functions of their own)."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        docstring = body[0].end_lineno - body[0].lineno + 1
    else:
        docstring = 0
    nested = sum(n.end_lineno - n.lineno + 1 for n in _inner_functions(fn))
    return fn.end_lineno - fn.lineno + 1 - docstring - nested


def test_no_module_is_over_350_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_function_is_over_60_lines():
    long = {}
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _own_lines(node) > MAX_FUNCTION_LINES:
                long[f"{p.relative_to(PACKAGE)}:{node.name}"] = _own_lines(node)
    assert not long, long


def test_own_lines_counts_a_body_without_its_docstring_and_inner_functions():
    fn = ast.parse('def f():\n    """doc\n    more"""\n    a = 1\n    def g():\n        return 2\n    return a\n').body[0]
    assert _own_lines(fn) == 3   # def f, a = 1, return a


def _top_level_imports(path: Path) -> set[str]:
    """The nst_jax modules a module imports at its top (imports inside functions are lazy by design)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nst_jax"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("nst_jax")}
    return found


def _graph() -> dict[str, set[str]]:
    names = {}
    for p in _modules():
        rel = p.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names[".".join(parts)] = p
    return {m: {i for i in _top_level_imports(p) if i in names and i != m} for m, p in names.items()}


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " → ".join(path[path.index(m):] + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            if n.startswith(m + "."):  # a package importing its own submodules is not a cycle
                continue
            visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])


def test_the_run_layer_keeps_its_order():
    """What was asked (config) imports nothing of the run; the plan does not import the run's steps."""
    graph = _graph()
    assert not {m for m in graph["nst_jax.config"] if m.rsplit(".", 1)[-1] in
                ("transfer", "planning", "runplan", "starts", "resume", "loop", "finish", "identity", "options")}
    assert "nst_jax.transfer" not in graph["nst_jax.planning"] | graph["nst_jax.runplan"] | graph["nst_jax.resume"]
