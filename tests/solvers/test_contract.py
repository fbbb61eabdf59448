"""The solver contract: every registered solver is made by `make(fun, Settings)`, its init and step
states have every field of `State`, and `make_solver` passes the step size, the history, the safeguard
and the history's precision through one `Settings` record."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import solvers
from nst_jax.base import catalogue
from nst_jax.solvers import Settings, SolverInfo, State, make_solver

STATE_FIELDS = tuple(State.__annotations__)
A = np.asarray([1.0, -2.0, 0.5, 3.0], np.float32)   # numpy: no JAX backend at collection, before Ray forks


def fun(x, aux):
    """½‖x − aux‖² as (value, parts by name)."""
    d = x - aux
    value = 0.5 * jnp.sum(d * d)
    return value, {"content": value, "style": jnp.float32(0.0), "tv": jnp.float32(0.0)}


def test_state_names_the_fields_the_run_loop_reads():
    assert STATE_FIELDS == ("x", "value", "parts", "grad", "iteration", "evaluations")
    assert Settings._fields == ("lr", "history", "safeguard", "history_dtype")
    assert Settings(0.5) == Settings(0.5, 100, True, "float32")


def test_the_registry_holds_every_solver_module_and_the_catalogue_agrees():
    assert solvers.NAMES == catalogue.solver_names() == ("lbfgs", "adam", "jaxopt")
    for name in solvers.NAMES:
        info = solvers.get(name)
        assert isinstance(info, SolverInfo) and info.name == name
        assert info.default_lr == catalogue.solver_default_lrs()[name] > 0
        assert isinstance(info.fresh_key_per_step, bool) and info.description
    assert solvers.get("adam").fresh_key_per_step and not solvers.get("lbfgs").fresh_key_per_step


@pytest.mark.parametrize("name", solvers.NAMES)
def test_every_solver_is_made_from_settings_and_its_states_have_every_field(name):
    info = solvers.get(name)
    solver = info.make(fun, Settings(info.default_lr, history=3))
    assert solver.name == name
    x0 = jnp.zeros(4)
    st = solver.init(x0, A)
    for f in STATE_FIELDS:
        assert hasattr(st, f), f"{name}: init state has no {f}"
    assert (int(st.iteration), int(st.evaluations)) == (0, 1)
    np.testing.assert_allclose(float(st.value), 0.5 * float(jnp.sum(A * A)), rtol=1e-6)
    np.testing.assert_allclose(st.grad, x0 - A, rtol=1e-6)
    assert set(st.parts) == {"content", "style", "tv"}
    step = jax.jit(solver.step)
    for i in range(1, 4):
        st = step(st, A)
        for f in STATE_FIELDS:
            assert hasattr(st, f), f"{name}: step state has no {f}"
        assert int(st.iteration) == i and int(st.evaluations) >= i + 1
        np.testing.assert_allclose(st.grad, st.x - A, rtol=1e-5, atol=1e-6)   # the gradient at the new x
        np.testing.assert_allclose(float(st.value), float(fun(st.x, A)[0]), rtol=1e-5)
    assert float(st.value) < float(fun(x0, A)[0])


def test_make_solver_uses_the_default_step_size_when_none_is_given():
    x0 = jnp.zeros(4)
    adam = make_solver("adam", fun)
    st = adam.step(adam.init(x0, A), A)
    # Adam's first step is lr · sign(g) (to its ε): the default 0.02 along −g
    np.testing.assert_allclose(st.x, 0.02 * jnp.sign(A), rtol=1e-5)
    st = make_solver("adam", fun, lr=0.1).step(adam.init(x0, A), A)
    np.testing.assert_allclose(st.x, 0.1 * jnp.sign(A), rtol=1e-5)


@pytest.mark.parametrize("name", ["lbfgs", "jaxopt"])
def test_make_solver_passes_the_step_size_to_the_lbfgs_solvers(name):
    """The classic first step: min(1, 1/‖g‖₁)·lr along −g."""
    x0 = jnp.zeros(4)
    g = x0 - A
    for lr in (0.5, 1.0):
        s = make_solver(name, fun, lr=lr, history=3)
        st = s.step(s.init(x0, A), A)
        t = min(1.0, 1.0 / float(jnp.sum(jnp.abs(g)))) * lr
        np.testing.assert_allclose(st.x, x0 - t * g, rtol=1e-6)


def test_make_solver_passes_the_history_size():
    st = make_solver("lbfgs", fun, history=7).init(jnp.zeros(4), A)
    assert st.s_hist.shape == st.y_hist.shape == (7, 4) and st.sy.shape == (7, 7)
    inner = make_solver("jaxopt", fun, history=6).init(jnp.zeros(4), A).inner
    assert inner.s_history.shape[0] == 6


def test_make_solver_passes_the_safeguard():
    """A first step that blows the loss up (over 4× the last) is rejected only with the safeguard."""
    x0 = jnp.zeros(4)
    lr = 200.0   # t = lr / ‖g‖₁ = 200/6.5: far past the minimum
    guarded = make_solver("lbfgs", fun, lr=lr, safeguard=True)
    st = guarded.step(guarded.init(x0, A), A)
    np.testing.assert_array_equal(st.x, x0)
    assert float(st.damping) == pytest.approx(0.1) and int(st.iteration) == 1
    free = make_solver("lbfgs", fun, lr=lr, safeguard=False)
    st = free.step(free.init(x0, A), A)
    assert float(st.value) > 4 * float(fun(x0, A)[0]) and float(st.damping) == 1.0


def test_make_solver_passes_the_history_dtype():
    """lbfgs with history_dtype 'bfloat16' keeps its history as bfloat16 (its 16 bits in uint16): the
    stored step is the float32 step rounded to bfloat16; the small m×m matrices stay float32."""
    x0 = jnp.asarray([0.1, 0.2, 0.3, 0.4])
    narrow = make_solver("lbfgs", fun, lr=1.0, history=2, history_dtype="bfloat16")
    st0 = narrow.init(x0, A)
    assert st0.s_hist.dtype == st0.y_hist.dtype == jnp.uint16 and st0.sy.dtype == jnp.float32
    stored = jax.lax.bitcast_convert_type(narrow.step(st0, A).s_hist[0], jnp.bfloat16)
    wide = make_solver("lbfgs", fun, lr=1.0, history=2)
    assert wide.init(x0, A).s_hist.dtype == jnp.float32
    s = np.asarray(wide.step(wide.init(x0, A), A).s_hist[0])    # the same first step, kept in float32
    np.testing.assert_array_equal(np.asarray(stored), s.astype(jnp.bfloat16))
    assert not np.array_equal(np.asarray(stored, np.float32), s)    # rounded: not the float32 step
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        make_solver("lbfgs", fun, history_dtype="float16")


def test_an_unknown_solver_names_the_choices():
    with pytest.raises(ValueError, match="unknown solver 'sgd'; choose one of lbfgs, adam, jaxopt"):
        make_solver("sgd", fun)
