"""The command line's choices read from the registries' source without importing them (no JAX)."""

import subprocess
import sys

from nst_jax.base import catalogue
from nst_jax import solvers
from nst_jax.objective import statistics

from conftest import ROOT


def test_names_and_default_rates_are_the_registries():
    assert catalogue.statistic_names() == statistics.NAMES
    assert catalogue.solver_names() == solvers.NAMES
    assert catalogue.solver_default_lrs() == {n: solvers.get(n).default_lr for n in solvers.NAMES}


def test_a_module_that_registers_an_entry_is_read(tmp_path):
    (tmp_path / "first.py").write_text('register(Entry("a", 1, 2.5))\n')
    (tmp_path / "other.py").write_text('import x\n\nregister(Entry("b", make, 0.1))\nregister(Entry("c"))\n'
                                       'def f():\n    register(Entry("inside"))\n')
    (tmp_path / "_private.py").write_text('register(Entry("no"))\n')
    assert catalogue.registrations(tmp_path, "first") == [("a", 1, 2.5), ("b", None, 0.1), ("c",)]


def test_the_run_parser_and_its_help_need_no_jax():
    code = ("import sys; from nst_jax.run import build_parser; text = build_parser().format_help(); "
            "assert 'sliced_wasserstein' in text and 'adam 0.02' in text, text; "
            "assert not any(m == 'jax' or m.startswith(('jax.', 'flax', 'optax')) for m in sys.modules), "
            "sorted(m for m in sys.modules if 'jax' in m)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
