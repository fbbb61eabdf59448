"""The one table of convolution forms (`layers.FORMS`): the same names wherever forms are named, a
transformed kernel that carries its form's name through `jit` as static metadata (nothing is guessed from
an array's shape), `prepare_params` putting named kernels in, and each Winograd form's convolution equal
to XLA's on a small input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.model import convforms, layers, winograd
from nst_jax.model.winograd import Transformed
from nst_jax.transfer.config import CONV_FORMS

WINOGRAD = ("f2", "f4", "f2b", "f4f", "f4fb", "f4fa", "f4fa3")


def _random(shape, seed):
    return jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float32)


def test_one_table_names_the_forms_everywhere():
    assert tuple(layers.FORMS) == ("xla",) + WINOGRAD
    assert convforms.FORMS == tuple(layers.FORMS)
    assert tuple(f for f in CONV_FORMS if f not in ("auto", "auto-bf16")) == tuple(layers.FORMS)
    for name, form in layers.FORMS.items():
        assert form.name == name and form.title and form.short
        assert (form.transform is None) == (name == "xla")


def test_which_shapes_each_form_takes():
    applies = lambda name, shape: layers.FORMS[name].applies(shape)
    assert applies("xla", (1, 7, 5, 3)) and applies("f4", (1, 7, 5, 3))
    assert applies("f2", (1, 8, 6, 3)) and not applies("f2", (1, 7, 6, 3)) and not applies("f2", (1, 8, 5, 3))
    assert applies("f2b", (2, 4, 4, 64)) and not applies("f2b", (2, 5, 4, 64))


def test_a_transformed_kernel_carries_its_form_and_one_leaf():
    k = _random((3, 3, 4, 5), 0)
    t = layers.transformed("f4", k)
    assert isinstance(t, Transformed) and t.form == "f4"
    np.testing.assert_array_equal(t.u, winograd.kernel_f4(k))
    assert t.u.shape == (36, 4, 5)
    leaves, treedef = jax.tree.flatten(t)
    assert len(leaves) == 1 and leaves[0] is t.u      # the name is no leaf: tree maps and checkpoints skip it
    again = jax.tree.unflatten(treedef, [leaves[0] * 2])
    assert again.form == "f4"
    assert jax.tree.map(jnp.zeros_like, t).form == "f4"
    assert layers.transformed("f2", k).u.shape == (16, 4, 5)
    assert layers.transformed("f2b", k).u.dtype == jnp.bfloat16


def test_the_form_is_static_under_jit():
    """A jitted function may branch on `t.form` in Python (a traced value could not be a dict key), gets the
    name back on a returned kernel, and is traced once per form for arrays of one shape."""
    traced = []

    @jax.jit
    def scaled(t):
        traced.append(t.form)
        return t.u * {"f2": 2.0, "f4": 3.0, "f2b": 5.0}[t.form]

    u = jnp.ones((16, 2, 2))
    assert float(scaled(Transformed("f2", u))[0, 0, 0]) == 2.0
    assert float(scaled(Transformed("f2b", u))[0, 0, 0]) == 5.0     # the same array, another form
    assert float(scaled(Transformed("f2", u * 1))[0, 0, 0]) == 2.0  # cached: no new trace
    assert traced == ["f2", "f2b"]
    back = jax.jit(lambda t: Transformed(t.form, t.u + 1))(Transformed("f4", jnp.zeros((36, 2, 2))))
    assert back.form == "f4" and float(back.u[0, 0, 0]) == 1.0


def test_prepare_params_puts_named_kernels_in():
    params = {"conv1_1": {"kernel": np.asarray(_random((3, 3, 8, 8), 1)), "bias": np.zeros(8, np.float32)},
              "conv1_2": {"kernel": np.asarray(_random((3, 3, 8, 8), 2)), "bias": np.zeros(8, np.float32)},
              "conv2_1": {"kernel": np.asarray(_random((3, 3, 8, 16), 3)), "bias": np.zeros(16, np.float32)}}
    out = layers.prepare_params(params, {"conv1_2": ("f4", "f2"), "conv2_1": ("xla", "f4")})
    assert set(out["conv1_1"]) == {"kernel", "bias", "kernel_bwd"}           # not named: XLA's both ways
    p = out["conv1_2"]
    assert (p["kernel_wino"].form, p["kernel_wino_bwd"].form) == ("f4", "f2")
    np.testing.assert_array_equal(p["kernel_wino"].u, winograd.kernel_f4(params["conv1_2"]["kernel"]))
    np.testing.assert_array_equal(p["kernel_wino_bwd"].u, winograd.kernel_f2(p["kernel_bwd"]))
    np.testing.assert_array_equal(p["kernel_bwd"], layers.backward_kernel(params["conv1_2"]["kernel"]))
    assert "kernel_wino" not in out["conv2_1"] and out["conv2_1"]["kernel_wino_bwd"].form == "f4"
    assert out["conv2_1"]["kernel_wino_bwd"].u.shape == (36, 16, 8)          # the gradient's channels swapped
    narrow = layers.prepare_params(params, {"conv1_2": ("f4", "f2")}, jnp.bfloat16)
    assert "kernel_wino" not in narrow["conv1_2"] and "kernel_wino_bwd" not in narrow["conv1_2"]
    assert narrow["conv1_2"]["kernel"].dtype == jnp.bfloat16 and narrow["conv1_2"]["bias"].dtype == jnp.float32


def _fused_or_skip():
    from nst_jax.model import fused
    why = fused.why_unavailable()
    if why:
        pytest.skip(f"the fused F(4×4) kernel is not available here: {why}")
    return fused.library()


@pytest.mark.parametrize("form", WINOGRAD)
def test_each_winograd_form_equals_xlas_convolution(form):
    if form.startswith("f4f"):
        lib = _fused_or_skip()
        from nst_jax.model import fused
        if fused.form_units(form) not in (None, *fused.bf16_units()):
            pytest.skip(f"this CPU has no {fused.form_units(form)} products")
        cin, cout = 2 * lib.lanes, lib.panel
    else:
        cin, cout = 8, 12
    h, w = (8, 10) if form in ("f2", "f2b") else (9, 7)      # F(2×2) takes even sizes only
    x, k = _random((2, h, w, cin), 4), _random((3, 3, cin, cout), 5) / np.sqrt(9 * cin)
    kb = layers.backward_kernel(k)
    high = jax.lax.Precision.HIGHEST

    @jax.jit
    def convs(x, t):   # the form's own convolution, the layer's (its form read from the kernel), XLA's
        return layers.FORMS[t.form].conv(x, t.u, high), layers.conv3x3(x, k, kb, t, None, high), \
            layers.xla_conv(x, k, high)
    got, through, reference = convs(x, layers.transformed(form, k))
    assert got.shape == reference.shape and got.dtype == jnp.float32
    error = float(jnp.linalg.norm(got - reference) / jnp.linalg.norm(reference))
    budget = convforms.BUDGETS.get(form, convforms.ERROR_BUDGET)
    assert error < budget, (form, error)
    np.testing.assert_allclose(through, got, rtol=1e-6, atol=1e-6)


def test_a_form_that_does_not_take_the_shape_gives_way_to_xlas():
    x, k = _random((1, 7, 6, 8), 6), _random((3, 3, 8, 8), 7)
    t = layers.transformed("f2", k)       # F(2×2) needs even sizes; 7 is odd
    got = layers.conv3x3(x, k, layers.backward_kernel(k), t, None)
    np.testing.assert_array_equal(got, layers.xla_conv(x, k))
