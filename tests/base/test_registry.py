"""The name → entry registry: entries kept in registration order, a name registered twice refused, an
unknown name answered with the choices, and a package's modules imported preferred-first, then by name."""

import sys

import pytest

from nst_jax.base.registry import Registry, import_modules


def test_entries_are_kept_in_registration_order_and_returned_by_name():
    reg = Registry("widget")
    a, b = object(), object()
    assert reg.register("zeta", a) is a          # register returns the entry (usable as a decorator's value)
    reg.register("alpha", b)
    assert reg.names() == ("zeta", "alpha")      # registration order, not name order
    assert reg.get("alpha") is b and reg.get("zeta") is a


def test_a_name_registered_twice_is_refused_and_the_first_entry_kept():
    reg = Registry("widget")
    first = object()
    reg.register("x", first)
    with pytest.raises(ValueError, match=r"widget 'x' registered twice"):
        reg.register("x", object())
    assert reg.get("x") is first and reg.names() == ("x",)


def test_an_unknown_name_says_the_kind_and_every_choice():
    reg = Registry("solver")
    reg.register("lbfgs", 1)
    reg.register("adam", 2)
    with pytest.raises(ValueError) as err:
        reg.get("sgd")
    assert str(err.value) == "unknown solver 'sgd'; choose one of lbfgs, adam"
    assert err.value.__cause__ is None and err.value.__suppress_context__   # no KeyError chained onto it


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway package whose modules record the order they are imported in."""
    name = "nst_jax_test_registry_pkg"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("SEEN = []\n")
    for module in ("delta", "alpha", "charlie", "bravo", "_private"):
        (root / f"{module}.py").write_text(f"from {name} import SEEN\nSEEN.append({module!r})\n")
    (root / "notes.txt").write_text("not a module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def test_import_modules_imports_the_preferred_module_first_then_the_others_by_name(package):
    import importlib
    pkg = importlib.import_module(package)
    import_modules(package, pkg.__path__, first="charlie")
    assert pkg.SEEN == ["charlie", "alpha", "bravo", "delta"]   # '_private' and notes.txt are not imported


def test_the_real_registries_follow_that_order():
    """The solvers register the classic L-BFGS first, the statistics the Gram first; then name order."""
    from nst_jax import solvers
    from nst_jax.objective import statistics
    assert solvers.NAMES[0] == "lbfgs" and statistics.NAMES[0] == "gram"
    modules = {"adam": "adam", "jaxopt": "jaxopt_lbfgs"}
    assert [modules[n] for n in solvers.NAMES[1:]] == sorted(modules[n] for n in solvers.NAMES[1:])
    assert len(set(statistics.NAMES)) == len(statistics.NAMES) >= 5
