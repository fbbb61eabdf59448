"""nst_jax's compiler options: passed per program on CPU, switchable off, absent elsewhere; the commands'
compiled programs kept across runs, per machine."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CONTENT, ROOT, SMALL_FLAGS, STYLE
from nst_jax.machine import compiler, identity
from nst_jax.files import image
from nst_jax.model import layers


@pytest.fixture
def fresh_options(monkeypatch):
    compiler.compiler_options.cache_clear()
    yield monkeypatch
    compiler.compiler_options.cache_clear()


def _conv_program(jit):
    x, k = jnp.ones((1, 8, 8, 16)), jnp.ones((3, 3, 16, 16))
    return jit(lambda x, k: layers.conv3x3(x, k, layers.backward_kernel(k))).lower(x, k).compile().as_text()


def test_cpu_programs_use_xla_convolutions(fresh_options):
    if jax.default_backend() != "cpu":  # asked here, not at import: collection must not start JAX (see conftest)
        pytest.skip("the compiler options are for XLA-CPU only")
    assert compiler.compiler_options() == compiler.CPU_OPTIONS
    hlo = _conv_program(compiler.jit)
    assert " convolution(" in hlo and "ynn" not in hlo


def test_options_switch_off_and_stay_per_program(fresh_options):
    fresh_options.setenv("NST_JAX_XLA_DEFAULTS", "0")
    assert compiler.compiler_options() is None
    assert compiler.compiler_options("gpu") is None
    # switched off, nst_jax's programs compile as plain jax.jit's do
    assert ("ynn" in _conv_program(jax.jit)) == ("ynn" in _conv_program(compiler.jit))


def test_commands_keep_their_compiled_programs_per_machine(tmp_path):
    """A command's second run of the same settings loads its programs from the user's cache folder (one
    folder per machine) and ends on the same image; NST_JAX_COMPILE_CACHE=off or an unusable folder:
    every run compiles, as before. In child processes: JAX takes its cache folder once per process."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "NST_JAX_COMPILE_CACHE")}
    # every program kept, however fast it compiled (on a quick idle machine the 48-px step takes under 1 s)
    env.update(PYTHONPATH=str(ROOT), NST_JAX_CACHE=str(tmp_path / "cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")

    def run(name, **extra):
        args = [sys.executable, "-m", "nst_jax.run", str(CONTENT), str(STYLE), *SMALL_FLAGS, "--iterations", "3",
                "--quiet", "-o", str(tmp_path / f"{name}.png")]
        done = subprocess.run(args, env=dict(env, **extra), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return json.loads((tmp_path / f"{name}.json").read_text())["seconds"]

    folder = tmp_path / "cache" / "compiled" / identity.machine_key(identity.machine(backend=False))
    first = run("first")
    kept = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name.endswith("-cache")}
    assert any(n.startswith("jit_counted_step") for n in kept)             # the step, at least
    second = run("second")
    # loaded, not written again
    assert all((folder / n).stat().st_mtime_ns == t for n, t in kept.items())
    assert second < first                                                  # the first step compiled nothing
    np.testing.assert_array_equal(image.load_image(tmp_path / "second.png"), image.load_image(tmp_path / "first.png"))
    run("off", NST_JAX_COMPILE_CACHE="off", NST_JAX_CACHE=str(tmp_path / "other"))
    assert not (tmp_path / "other" / "compiled").exists()
    started = subprocess.run([sys.executable, "-c", "from nst_jax.machine import compiler; from jax._src import xla_bridge; "
                              "folder = compiler.keep_compiled_programs(); print(folder.name, bool(xla_bridge._backends))"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert started.stdout.split() == [folder.name, "False"], started.stderr   # JAX's backend not started by it
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "compiled").write_text("a file where the folder would be")
    run("blocked", NST_JAX_CACHE=str(tmp_path / "blocked"))                # runs, compiling as without the cache


def test_the_compiled_programs_folder_is_left_alone_when_jax_has_one(monkeypatch):
    given = jax.config.jax_compilation_cache_dir      # this suite's own (conftest), as a user's would be
    assert given and compiler.keep_compiled_programs() is None and jax.config.jax_compilation_cache_dir == given
    monkeypatch.setenv("NST_JAX_COMPILE_CACHE", "off")
    assert compiler.keep_compiled_programs() is None
