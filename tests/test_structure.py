"""The package's shape: folders that show the architecture (each package with one job, said in its
docstring, and imports pointing one way, from the interfaces down to the numeric core), no import cycle
between modules (every import counted, those inside functions too), modules short enough to read in one
sitting and functions short enough to follow."""

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


# the packages from the bottom up: a module may import from its own package and from those below it
LAYERS = ("base", "files", "machine", "model", "objective", "solvers", "scale", "transfer", "web", "studies", "apps")
COMMAND_MODULES = ("run", "__main__")   # the command line, above every package


def _imports(path: Path) -> set[str]:
    """Every nst_jax module a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nst_jax"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("nst_jax")}
    return found


def _names() -> dict[str, Path]:
    names = {}
    for p in _modules():
        rel = p.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names[".".join(parts)] = p
    return names


def _graph() -> dict[str, set[str]]:
    names = _names()
    return {m: {i for i in _imports(p) if i in names and i != m} for m, p in names.items()}


def test_no_import_cycle_counting_imports_inside_functions():
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


def test_the_cycle_check_reads_imports_inside_functions(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    from nst_jax.model import vgg\n")
    assert "nst_jax.model.vgg" in _imports(tmp_path / "m.py")


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    return len(LAYERS) if top in COMMAND_MODULES else LAYERS.index(top)


def test_the_folders_are_the_packages_and_imports_point_down():
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert entries == {*LAYERS, *(f"{m}.py" for m in COMMAND_MODULES), "__init__.py", "samples"}, entries
    upward = sorted(f"{m} → {n}" for m, targets in _graph().items() if m != "nst_jax"
                    for n in targets if n != "nst_jax" and _layer(n) > _layer(m))
    assert not upward, upward


def test_every_package_says_its_job_in_its_docstring():
    for p in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(p.read_text()))
        assert doc and len(doc.split()) >= 6, p


def test_importing_the_objective_loads_neither_the_kernel_builder_nor_the_caches():
    import subprocess
    import sys
    code = ("import sys, nst_jax.objective.losses; "
            "print(sorted(m for m in sys.modules if m.startswith('nst_jax')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent).stdout
    for module in ("nst_jax.model.fused", "nst_jax.model.convforms", "nst_jax.machine.identity",
                   "nst_jax.files.untrusted", "nst_jax.files.fileio"):
        assert module not in loaded, (module, loaded)
