"""The solvers: the compact L-BFGS direction equals the two-loop recursion, minima match scipy's,
and a 64×64 transfer tracks torch.optim.LBFGS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from nst_jax import solvers
from nst_jax.solvers.lbfgs import _compact_direction, lbfgs

from conftest import torch_or_skip

jax.config.update("jax_enable_x64", False)


def _two_loop(g, pairs, gamma):
    """The textbook recursion (Nocedal & Wright, Alg. 7.4) in float64: returns H·g."""
    q = g.astype(np.float64).copy()
    alphas = []
    for s, y in reversed(pairs):
        rho = 1.0 / np.dot(y, s)
        a = rho * np.dot(s, q)
        alphas.append(a)
        q -= a * y
    r = gamma * q
    for (s, y), a in zip(pairs, reversed(alphas)):
        rho = 1.0 / np.dot(y, s)
        b = rho * np.dot(y, r)
        r += s * (a - b)
    return r


def _quadratic(dim, seed=0, condition=None):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((dim, dim))
    if condition is None:
        a = (q @ q.T / dim + np.eye(dim)).astype(np.float32)
    else:  # eigenvalues spread over [1, condition]: converges slowly, so the history stays informative
        basis, _ = np.linalg.qr(q)
        a = ((basis * np.geomspace(1, condition, dim)) @ basis.T).astype(np.float32)
    b = rng.standard_normal(dim).astype(np.float32)
    fun = lambda x, aux: (0.5 * x @ (aux[0] @ x) - aux[1] @ x, {})
    return fun, (jnp.asarray(a), jnp.asarray(b)), a, b


@pytest.mark.parametrize("m,steps", [(5, 3), (5, 12), (8, 30), (100, 20)])
def test_compact_direction_equals_two_loop(m, steps):
    """After `steps` steps (ring buffer wrapped when steps > m) the direction equals the recursion."""
    fun, aux, a, b = _quadratic(200, condition=1e4)
    solver = lbfgs(fun, history=m, lr=0.5, safeguard=False)
    st = solver.init(jnp.zeros(200), aux)
    step = jax.jit(solver.step)
    xs, gs = [np.asarray(st.x)], [np.asarray(st.grad)]
    for _ in range(steps):
        st = step(st, aux)
        xs.append(np.asarray(st.x, np.float64))
        gs.append(np.asarray(st.grad, np.float64))
    pairs = [(xs[i + 1] - xs[i], gs[i + 1] - gs[i]) for i in range(steps)]
    pairs = [p for p in pairs if np.dot(p[0], p[1]) > 1e-10][-m:]
    s, y = pairs[-1]
    gamma = np.dot(s, y) / np.dot(y, y)
    expect = -_two_loop(gs[-1], pairs, gamma)
    got = np.asarray(_compact_direction(st.grad, st, m))
    np.testing.assert_allclose(got, expect, rtol=2e-3, atol=2e-4 * np.abs(expect).max())
    assert int(st.pairs) == steps  # every pair of a convex quadratic has sᵀy > 0


def test_lbfgs_quadratic_matches_scipy():
    fun, aux, a, b = _quadratic(30, seed=3)
    solver = lbfgs(fun, history=10, safeguard=False)
    st = solver.init(jnp.zeros(30), aux)
    step = jax.jit(solver.step)
    for _ in range(60):
        st = step(st, aux)
    ref = scipy.optimize.minimize(lambda x: 0.5 * x @ a @ x - b @ x, np.zeros(30),
                                  jac=lambda x: a @ x - b, method="L-BFGS-B").x
    np.testing.assert_allclose(np.asarray(st.x), ref, atol=1e-4)
    np.testing.assert_allclose(np.asarray(st.x), np.linalg.solve(a.astype(np.float64), b), atol=1e-4)


def test_lbfgs_rosenbrock_matches_scipy():
    def rosen(x, aux):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2), {}

    x0 = jnp.asarray([-1.2, 1.0, -0.5, 0.8], jnp.float32)
    solver = lbfgs(rosen, history=10, lr=0.5, safeguard=False)
    st = solver.init(x0, None)
    step = jax.jit(solver.step)
    for _ in range(600):
        st = step(st, None)
    ref = scipy.optimize.minimize(scipy.optimize.rosen, np.asarray(x0, np.float64), jac=scipy.optimize.rosen_der,
                                  method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-14}).x
    np.testing.assert_allclose(np.asarray(st.x), ref, atol=2e-3)


@pytest.mark.parametrize("name", ["jaxopt", "adam", "lbfgs"])
def test_every_solver_decreases_and_counts(name):
    fun, aux, a, b = _quadratic(20, seed=5)
    solver = solvers.make_solver(name, fun, lr=0.1 if name == "adam" else None, safeguard=False)
    st = solver.init(jnp.zeros(20), aux)
    f0 = float(st.value)
    step = jax.jit(solver.step)
    for _ in range(30):
        st = step(st, aux)
    assert float(st.value) < f0 - 0.5 * abs(f0)
    assert int(st.iteration) == 30
    assert int(st.evaluations) == 31  # one evaluation per iteration, plus init's


def test_lbfgs_first_step_scaled_like_torch():
    """First step: min(1, 1/‖g‖₁)·lr along −g (torch.optim.LBFGS's rule)."""
    fun = lambda x, aux: (jnp.sum(50.0 * x ** 2), {})
    x0 = jnp.asarray([1.0, -2.0, 3.0])
    solver = lbfgs(fun)
    st = solver.step(solver.init(x0, None), None)
    g = 100.0 * np.asarray(x0)
    np.testing.assert_allclose(np.asarray(st.x), np.asarray(x0) - g / np.abs(g).sum(), rtol=1e-6)


def test_lbfgs_transfer_tracks_torch(embedded, small_images):
    """64×64-scale transfer: loss after 50 iterations within 2 % of torch.optim.LBFGS's."""
    torch = torch_or_skip()
    from bench.torch_reference import Objective, run_lbfgs
    from nst_jax.objective import losses

    content, style = small_images
    layers_c, layers_s = ("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    spec = losses.ObjectiveSpec(layers_c, layers_s, (0.2,) * 5, "max", embedded.preprocessing)
    lw = losses.LossWeights(1.0, 100.0, 1000.0)
    targets = losses.compute_targets(embedded.params, spec, jnp.asarray(content), [jnp.asarray(style)])
    fun = lambda x, aux: losses.objective(x, aux[0], aux[1], lw, spec)
    x0 = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), content.shape))
    solver = lbfgs(fun)
    aux = (embedded.params, targets)
    st = jax.jit(solver.init)(jnp.asarray(x0), aux)
    step = jax.jit(solver.step, donate_argnums=0)
    ours = [float(st.value)]
    for _ in range(50):
        st = step(st, aux)
        ours.append(float(st.value))
    torch.manual_seed(0)
    ref_obj = Objective(embedded, content[0], style[0], layers_c, layers_s, (0.2,) * 5, 1.0, 100.0, 1000.0)
    _, ref = run_lbfgs(ref_obj, x0[0], 50)
    assert abs(ours[0] - ref[0]) <= 1e-4 * ref[0]  # the same objective
    assert abs(ours[50] - ref[50]) <= 0.02 * ref[50], (ours[50], ref[50])
    assert ours[50] < 0.2 * ours[0]


def test_torch_reference_steps_equal_one_call(embedded, small_images):
    """The bench's torch reference one iteration per call (`LBFGSSteps`, so that the bench can time it in
    turns with nst_jax) does the same arithmetic as torch.optim.LBFGS run for all iterations in one call."""
    torch = torch_or_skip()
    from bench.torch_reference import LBFGSSteps, Objective

    content, style = small_images
    obj = Objective(embedded, content[0], style[0], ("relu4_2",), ("relu1_1", "relu3_1"), (0.5, 0.5), 1.0, 100.0, 1000.0)
    x0 = np.random.default_rng(0).random(content.shape[1:]).astype(np.float32)
    x = obj.to_tensor(x0).requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=12, history_size=100, tolerance_grad=-1, tolerance_change=-1,
                            line_search_fn=None)
    whole = []

    def closure():
        opt.zero_grad()
        loss, _ = obj(x)
        loss.backward()
        whole.append(float(loss.detach()))
        return loss

    opt.step(closure)
    steps = LBFGSSteps(obj, x0)
    assert [steps.step() for _ in range(12)] == whole
    image, _ = steps.final()
    np.testing.assert_array_equal(image, x.detach().numpy()[0].transpose(1, 2, 0))


def test_lbfgs_safeguard_recovers_from_a_blown_up_step(embedded, tmp_path):
    """From the flat 'mean' image with k = 1000, the classic rule's second step explodes the loss
    (torch.optim.LBFGS then stalls or returns NaN); the safeguard rejects such steps and damps, so the
    run stays finite and makes progress."""
    import json
    from nst_jax.transfer.config import with_preset
    from nst_jax.transfer.runs import run
    from conftest import CONTENT, STYLE
    out = tmp_path
    cfg = with_preset("default", content=str(CONTENT), styles=(str(STYLE),), size=48, iterations=40, init="mean",
                      style_weight=1000.0, output=f"{out}/o.png", checkpoint_every=0, print_every=0)
    res = run(cfg, progress=False, loaded_weights=embedded)
    log = [json.loads(line)["loss"] for line in open(f"{out}/o.losses.jsonl")]
    assert all(np.isfinite(log))
    assert max(log) <= 4.0 * log[0] and res.loss < 0.5 * log[0]


def test_lbfgs_updates_its_history_in_place():
    """The compiled step writes the new (s, y) rows into the donated m×D histories in place: no copy
    of a whole history (two such copies per step cost 3× the rest of the solver at 256²)."""
    from nst_jax.machine import compiler

    dim, m = 3000, 7
    fun = lambda x, aux: (jnp.sum(aux * x ** 2) + jnp.sum(jnp.cos(x)), {})
    aux = jnp.linspace(0.5, 2.0, dim)
    solver = lbfgs(fun, history=m)
    st = solver.init(jnp.ones(dim), aux)
    hlo = compiler.jit(solver.step, donate_argnums=0).lower(st, aux).compile().as_text()
    history = f"f32[{m},{dim}]"
    copies = [line for line in hlo.splitlines() if " copy(" in line and history in line.split("copy(")[0]]
    assert history in hlo and not copies, copies


def test_lbfgs_rejects_pairs_whose_history_products_are_not_finite():
    """A pair is kept only if its products with the stored history are finite."""
    fun = lambda x, aux: (jnp.sum(x ** 2), {})
    solver = lbfgs(fun, history=3)
    st = solver.init(jnp.ones(4), None)
    st = solver.step(st, None)
    assert int(st.pairs) == 1
    poisoned = st._replace(s_hist=st.s_hist.at[0, 0].set(jnp.inf))
    st2 = solver.step(poisoned, None)
    assert int(st2.pairs) == 1 and bool(jnp.all(jnp.isfinite(st2.sy)))


@pytest.mark.parametrize("m", [7, 20])
def test_bfloat16_history_is_float32_arithmetic_on_rounded_vectors(m):
    """The history's storage is bfloat16 bits: widening them is exact, and the solver then follows the
    float32 one closely on a quadratic (m = 7 widens 7 rows at a time, m = 20 two chunks of 10)."""
    from nst_jax.solvers.lbfgs import _narrow, _widen
    v = np.random.default_rng(0).standard_normal((m, 50)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(_widen(_narrow(jnp.asarray(v)))),
                                  np.asarray(jnp.asarray(v).astype(jnp.bfloat16).astype(jnp.float32)))
    fun, aux, a, b = _quadratic(200, condition=1e3)
    values = {}
    for dtype in ("float32", "bfloat16"):
        solver = lbfgs(fun, history=m, lr=0.5, safeguard=False, history_dtype=dtype)
        st = solver.init(jnp.zeros(200), aux)
        step = jax.jit(solver.step)
        for _ in range(40):
            st = step(st, aux)
        values[dtype] = float(st.value)
    optimum = float(-0.5 * b @ np.linalg.solve(a, b))
    gap = {k: v - optimum for k, v in values.items()}
    assert gap["bfloat16"] < 0.05 * abs(optimum) and gap["bfloat16"] < 10 * max(gap["float32"], 1e-3 * abs(optimum))
