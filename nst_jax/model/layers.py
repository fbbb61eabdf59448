"""The functions VGG19 is built from, written for speed on XLA: a 3×3 convolution whose gradient
uses precomputed kernels (and Winograd's minimal filtering where it pays), and 2×2 pooling.

Each has a custom VJP that gives exactly the gradient autodiff would (tested against XLA's autodiff),
computed in a form that is cheaper on XLA-CPU; measurements are in docs/benchmarks.md.
`prepare_params` adds the derived kernels to a parameter tree once per run.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from nst_jax.model import winograd


def xla_conv(x, kernel, precision=None):
    """3×3 'same' convolution (XLA's); bfloat16 operands accumulate and return in float32."""
    wide = jnp.float32 if x.dtype == jnp.bfloat16 else None
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    precision=precision, preferred_element_type=wide)


def im2col_conv(x, kernel):
    """The same convolution as one matrix product: the nine shifted copies of x side by side
    (B, H, W, 9·C) times the kernel as a (9·C, O) matrix, accumulated in float32 — the form whose
    bfloat16 products reach the CPU's bfloat16 units (XLA-CPU's bfloat16 convolutions do not)."""
    b, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=-1)
    return lax.dot_general(cols, kernel.reshape(9 * c, -1), (((3,), (0,)), ((), ())),
                           preferred_element_type=jnp.float32)


class Form(NamedTuple):
    """One way of computing a 3×3 'same' convolution: the one table of forms (`FORMS`)."""

    name: str
    title: str
    short: str
    transform: Callable | None               # kernel (3, 3, I, O) → the form's kernel; None: the kernel itself
    conv: Callable                           # (x, transformed kernel, precision) → y
    applies: Callable[[tuple], bool]         # whether it takes an input of this shape (…, H, W, C)


_ANY = lambda shape: True   # noqa: E731
FORMS: dict[str, Form] = {f.name: f for f in (
    Form("xla", "XLA's convolution", "XLA's", None, xla_conv, _ANY),
    Form("f2", "Winograd F(2×2, 3×3)", "F(2×2)", winograd.kernel_f2, winograd.conv_f2, winograd.even),
    Form("f4", "Winograd F(4×4, 3×3)", "F(4×4)", winograd.kernel_f4, winograd.conv_f4, _ANY),
    Form("f2b", "Winograd F(2×2, 3×3) with bfloat16 products", "F(2×2) bf16", winograd.kernel_f2b, winograd.conv_f2,
         winograd.even),
    Form("f4f", "Winograd F(4×4, 3×3), fused kernel compiled for this CPU", "F(4×4) fused", winograd.kernel_f4f,
         winograd.conv_f4f, winograd.fused_fits),
    Form("f4fb", "Winograd F(4×4, 3×3), fused kernel, bfloat16 products on AVX512-BF16", "F(4×4) fused bf16",
         winograd.kernel_f4fb, winograd.conv_f4fb, winograd.fused_fits_bf16),
    Form("f4fa", "Winograd F(4×4, 3×3), fused kernel, bfloat16 products on AMX", "F(4×4) fused AMX",
         winograd.kernel_f4fb, winograd.conv_f4fa, winograd.fused_fits_bf16),
    Form("f4fa3", "Winograd F(4×4, 3×3), fused kernel, each number split into two bfloat16 on AMX",
         "F(4×4) fused AMX split", winograd.kernel_f4fa3, winograd.conv_f4fa3, winograd.fused_fits_bf16))}


def transformed(form: str, kernel) -> winograd.Transformed:
    """`kernel` transformed for the Winograd form `form`, carrying the form's name."""
    return winograd.Transformed(form, FORMS[form].transform(kernel))


def takes_kernel(form: str, kernel) -> bool:
    """Whether a form takes this kernel's (3, 3, I, O) channel counts. The fused kernel needs whole
    panels of output channels; a pruned network's layers may have other counts than the VGG19 ones
    their forms were planned for, and run XLA's convolution there."""
    if not form.startswith("f4f"):
        return True
    from nst_jax.model import fused
    cin, cout = kernel.shape[2], kernel.shape[3]
    units = fused.form_units(form)
    return fused.fits_bf16(cin, cout, units) if units else fused.fits(cin, cout)


def _by_form(x, t: winograd.Transformed | None, precision):
    """x convolved in the form `t` carries, or None where there is none or it does not take x's shape."""
    if t is None or not FORMS[t.form].applies(x.shape):
        return None
    return FORMS[t.form].conv(x, t.u, precision)


# How a bfloat16 convolution is computed ('conv': XLA's convolution, 'im2col': `im2col_conv`); see
# `python -m bench.precision --layers 128` for the measurements per layer shape.
BF16_FORM = "conv"


def _bf16_conv(x, kernel):
    x, kernel = x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
    return im2col_conv(x, kernel) if BF16_FORM == "im2col" else xla_conv(x, kernel)


def backward_kernel(kernel: jnp.ndarray) -> jnp.ndarray:
    """The kernel whose convolution with an output cotangent gives the input cotangent of a 3×3
    'same' convolution: flipped in space, input and output channels swapped (HWIO → HW O I)."""
    return jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def conv3x3(x, kernel, kernel_bwd, u=None, u_bwd=None, precision=None):
    """3×3 convolution with one pixel of zero padding, NHWC × HWIO → NHWC.

    `kernel_bwd` must be `backward_kernel(kernel)`; `u`, `u_bwd` (optional) `transformed` kernels of
    `kernel` and of `kernel_bwd`: the forward pass and the input gradient are then computed in the form
    each names (where it takes the shape: F(2×2) only on even sizes), else by XLA's convolution. The input cotangent is the plain convolution of the output cotangent with
    `kernel_bwd`, so precomputing it (`prepare_params`) saves XLA from flipping and transposing every
    kernel on every gradient — on XLA-CPU that was ~10 % of a value+grad at 256². The kernel's
    cotangent is exact (and pruned by XLA when, as in style transfer, only the image's gradient is
    used); the derived kernels' cotangents are zero."""
    if x.dtype == jnp.bfloat16:  # the bfloat16 policy: float32 out, the caller stores it narrowed
        return _bf16_conv(x, kernel)
    y = _by_form(x, u, precision)
    return xla_conv(x, kernel, precision) if y is None else y


def _conv3x3_fwd(x, kernel, kernel_bwd, u, u_bwd, precision):
    return conv3x3(x, kernel, kernel_bwd, u, u_bwd, precision), (x, kernel, kernel_bwd, u, u_bwd)


def _col2im_input_grad(g, kernel, precision=None):
    """The input cotangent of a 3×3 'same' convolution as one matrix product with the kernel and
    nine shifted adds — for few input channels (the RGB image), where a convolution with 3 output
    channels is 2× slower on XLA-CPU. The adds are slices of the padded product (not scatters), so
    an image split across devices along its height needs only its neighbours' border rows."""
    _, h, w, _ = g.shape
    cols = jnp.einsum("bhwo,ijco->bhwijc", g, kernel, precision=precision)
    cols = jnp.pad(cols, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
    # gx[y, x] = Σ_ij cols[y + 1 − i, x + 1 − j, i, j], zero outside the map
    return sum(cols[:, 2 - i:2 - i + h, 2 - j:2 - j + w, i, j] for i in range(3) for j in range(3))


def _conv3x3_bwd(precision, res, g):
    x, kernel, kernel_bwd, u, u_bwd = res
    if x.dtype == jnp.bfloat16:
        gx = _bf16_conv(g, kernel_bwd).astype(x.dtype)
    elif kernel.shape[2] <= 4:
        gx = _col2im_input_grad(g, kernel, precision)
    else:
        gx = _by_form(g, u_bwd, precision)
        gx = xla_conv(g, kernel_bwd, precision) if gx is None else gx
    gk = jax.vjp(lambda k: xla_conv(x, k, precision), kernel)[1](g)[0]
    zero = lambda a: None if a is None else jax.tree.map(jnp.zeros_like, a)
    return gx, gk, jnp.zeros_like(kernel_bwd), zero(u), zero(u_bwd)


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def _windows(x):
    """(B, H, W, C) → (B, H//2, 2, W//2, 2, C): the 2×2 pooling windows (odd edges dropped)."""
    b, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def max_pool2(x):
    """2×2 max pooling, stride 2, odd edges floored (as PyTorch and Caffe).

    The gradient goes to the first maximum of each window in row-major order (PyTorch's choice on
    ties). Written as a reshape and an elementwise mask rather than XLA's reduce-window and
    select-and-scatter, which on XLA-CPU cost more than the convolution before them."""
    return _windows(x).max(axis=(2, 4))


def _max_pool2_fwd(x):
    y = max_pool2(x)
    return y, (x, y)


def _max_pool2_bwd(res, g):
    x, y = res
    win = _windows(x)
    hit = win == y[:, :, None, :, None, :]
    taken = jnp.zeros_like(hit[:, :, 0, :, 0])
    first = []
    for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)):
        h = hit[:, :, i, :, j] & ~taken
        first.append(h)
        taken = taken | h
    mask = jnp.stack([jnp.stack(first[:2], axis=3), jnp.stack(first[2:], axis=3)], axis=2)
    gw = jnp.where(mask, g[:, :, None, :, None, :], 0).astype(x.dtype)
    b, h, w, c = x.shape
    gx = gw.reshape(b, h // 2 * 2, w // 2 * 2, c)
    return (jnp.pad(gx, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


max_pool2.defvjp(_max_pool2_fwd, _max_pool2_bwd)


def avg_pool2(x):
    """2×2 average pooling, stride 2, odd edges floored."""
    return _windows(x).mean(axis=(2, 4))


def prepare_params(params: Mapping[str, Any], forms: Mapping[str, tuple[str, str]] | None = None,
                   dtype=jnp.float32) -> dict[str, Any]:
    """params (numpy or JAX arrays) as JAX arrays with each conv's derived kernels precomputed, once per
    run instead of once per gradient: `kernel_bwd`, and for the layers whose `forms[name]` (forward,
    input gradient; see `convforms`) name a Winograd form, its kernels `kernel_wino` and
    `kernel_wino_bwd` (where the form takes the layer's channels, `takes_kernel`). Without `forms`, XLA's
    convolution everywhere. dtype bfloat16: the kernels
    stored in bfloat16 (biases stay float32) and no Winograd kernels (bfloat16 has one form)."""
    dtype = jnp.dtype(dtype)
    out = {}
    for name, p in params.items():
        q = {key: jnp.asarray(v) for key, v in p.items()}
        kernel = q["kernel"]
        q["kernel_bwd"] = backward_kernel(kernel)
        forward, backward = (forms or {}).get(name, ("xla", "xla")) if dtype == jnp.float32 else ("xla", "xla")
        if forward != "xla" and takes_kernel(forward, kernel):
            q["kernel_wino"] = transformed(forward, kernel)
        if backward != "xla" and takes_kernel(backward, q["kernel_bwd"]):
            q["kernel_wino_bwd"] = transformed(backward, q["kernel_bwd"])
        if dtype != jnp.float32:
            q["kernel"], q["kernel_bwd"] = q["kernel"].astype(dtype), q["kernel_bwd"].astype(dtype)
        out[name] = q
    return out
