"""nst_jax's compiler options: passed per program on CPU, switchable off, absent elsewhere."""

import jax
import jax.numpy as jnp
import pytest

from nst_jax import compiler, layers


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
