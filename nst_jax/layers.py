"""The functions VGG19 is built from, written for speed on XLA: a 3×3 convolution whose gradient
uses precomputed kernels (and Winograd's minimal filtering where it pays), and 2×2 pooling.

Each has a custom VJP that gives exactly the gradient autodiff would (tested against XLA's autodiff),
computed in a form that is cheaper on XLA-CPU; measurements are in the README's Benchmarks section.
`prepare_params` adds the derived kernels to a parameter tree once per run.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def _conv(x, kernel, precision=None):
    """3×3 'same' convolution; bfloat16 operands accumulate and return in float32."""
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


# How a bfloat16 convolution is computed ('conv': XLA's convolution, 'im2col': `im2col_conv`); see
# `python -m bench.precision --layers 128` for the measurements per layer shape.
BF16_FORM = "conv"


def _bf16_conv(x, kernel):
    x, kernel = x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
    return im2col_conv(x, kernel) if BF16_FORM == "im2col" else _conv(x, kernel)


def backward_kernel(kernel: jnp.ndarray) -> jnp.ndarray:
    """The kernel whose convolution with an output cotangent gives the input cotangent of a 3×3
    'same' convolution: flipped in space, input and output channels swapped (HWIO → HW O I)."""
    return jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)


# Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray 2016): each 4×4 input tile d gives the
# 2×2 outputs Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, 16 multiplies per channel pair instead of 36, so the work
# becomes 16 batched (tiles × C)·(C × O) products on pre-transformed kernels U = G g Gᵀ. Bᵀ (rows
# [1 0 −1 0], [0 1 1 0], [0 −1 1 0], [0 1 0 −1]) and Aᵀ (rows [1 1 1 0], [0 1 −1 −1]) are applied
# as the additions they amount to, in `_winograd_input` and `_winograd_output`.
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
# Where it pays on XLA-CPU (2-core AVX-512, measured per layer, forward): from 128 input channels at
# up to 64×64 positions, 1.15–1.5× faster than XLA's convolution (32×32×512→512: 13 vs 20 ms); with
# 64 channels, or on larger maps (128×128×256: 96 vs 84 ms), the 4× larger transformed input costs
# more than the multiplies saved.
# Below 32×32 positions the gain is a fraction of a millisecond while each Winograd layer adds ~0.1 s
# of compile time (tests at ≤ 64 px compile many programs).
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_MIN_POSITIONS = 32 * 32
WINOGRAD_MAX_POSITIONS = 64 * 64


def winograd_kernel(kernel) -> jnp.ndarray:
    """U = G g Gᵀ for a 3×3 kernel (3, 3, I, O): (16, I, O), the 4×4 positions flattened."""
    u = jnp.einsum("ai,ijco,bj->abco", _G, jnp.asarray(kernel, jnp.float32), _G, precision=lax.Precision.HIGHEST)
    return u.reshape(16, *u.shape[2:])


def _winograd_input(x):
    """Bᵀ d B for every 4×4 tile (stride 2) of the zero-padded x (B, H, W, C), H and W even: (16, T, C)."""
    b, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(b, h // 2 + 1, 2, w // 2 + 1, 2, c)
    d = [xp[:, :-1, 0], xp[:, :-1, 1], xp[:, 1:, 0], xp[:, 1:, 1]]       # tile rows 0..3
    r = jnp.stack([d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]])  # Bᵀ over rows
    e = [r[:, :, :, :-1, 0], r[:, :, :, :-1, 1], r[:, :, :, 1:, 0], r[:, :, :, 1:, 1]]
    v = jnp.stack([e[0] - e[2], e[1] + e[2], e[2] - e[1], e[1] - e[3]], axis=1)  # B over columns
    return v.reshape(16, -1, c)


def _winograd_output(m, b, h, w):
    """Aᵀ M A for every tile, M (16, T, O) → the (B, H, W, O) output."""
    m = m.reshape(4, 4, b, h // 2, w // 2, -1)
    s = [(m[a, 0] + m[a, 1] + m[a, 2], m[a, 1] - m[a, 2] - m[a, 3]) for a in range(4)]
    y = [[s[0][q] + s[1][q] + s[2][q] for q in range(2)], [s[1][q] - s[2][q] - s[3][q] for q in range(2)]]
    return jnp.stack([jnp.stack(row, axis=3) for row in y], axis=2).reshape(b, h, w, -1)


def winograd_conv(x, u, precision=None):
    """The 3×3 'same' convolution of x (B, H, W, C), H and W even, with U = winograd_kernel(k)."""
    b, h, w, _ = x.shape
    m = lax.dot_general(_winograd_input(x), u, (((2,), (1,)), ((0,), (0,))), precision=precision)
    return _winograd_output(m, b, h, w)


def use_winograd(x_shape, u) -> bool:
    """Whether the Winograd form is used for an input of this shape (static: decided when tracing)."""
    _, h, w, _ = x_shape
    return (u is not None and h % 2 == 0 and w % 2 == 0
            and WINOGRAD_MIN_POSITIONS <= h * w <= WINOGRAD_MAX_POSITIONS)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def conv3x3(x, kernel, kernel_bwd, u=None, u_bwd=None, precision=None):
    """3×3 convolution with one pixel of zero padding, NHWC × HWIO → NHWC.

    `kernel_bwd` must be `backward_kernel(kernel)`; `u`, `u_bwd` (optional) `winograd_kernel` of
    `kernel` and of `kernel_bwd`. The input cotangent is the plain convolution of the output cotangent
    with `kernel_bwd`, so precomputing it (`prepare_params`) saves XLA from flipping and transposing
    every kernel on every gradient — on XLA-CPU that was ~10 % of a value+grad at 256². With `u`,
    maps small enough (`use_winograd`) are convolved in Winograd's form, both ways. The kernel's
    cotangent is exact (and pruned by XLA when, as in style transfer, only the image's gradient is
    used); the derived kernels' cotangents are zero."""
    if x.dtype == jnp.bfloat16:  # the bfloat16 policy: float32 out, the caller stores it narrowed
        return _bf16_conv(x, kernel)
    if use_winograd(x.shape, u):
        return winograd_conv(x, u, precision)
    return _conv(x, kernel, precision)


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
    elif use_winograd(g.shape, u_bwd):
        gx = winograd_conv(g, u_bwd, precision)
    else:
        gx = _conv(g, kernel_bwd, precision)
    gk = jax.vjp(lambda k: _conv(x, k, precision), kernel)[1](g)[0]
    zero = lambda a: None if a is None else jnp.zeros_like(a)
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


def prepare_params(params: Mapping[str, Any], winograd: bool | None = None, dtype=jnp.float32) -> dict[str, Any]:
    """params (numpy or JAX arrays) as JAX arrays with each conv's derived kernels precomputed, once per run instead of once per gradient:
    `kernel_bwd`, and where Winograd's form can pay (≥ WINOGRAD_MIN_CHANNELS input channels;
    `winograd` default: on the CPU backend only — GPUs' convolution libraries choose their own
    algorithms) `kernel_wino` and `kernel_wino_bwd`. dtype bfloat16: the kernels stored in bfloat16
    (biases stay float32) and no Winograd kernels (the bfloat16 path does not use them)."""
    dtype = jnp.dtype(dtype)
    if winograd is None:
        winograd = jax.default_backend() == "cpu"
    winograd = winograd and dtype == jnp.float32
    out = {}
    for name, p in params.items():
        q = {key: jnp.asarray(v) for key, v in p.items()}
        kernel = q["kernel"]
        q["kernel_bwd"] = backward_kernel(kernel)
        if dtype != jnp.float32:
            q["kernel"], q["kernel_bwd"] = q["kernel"].astype(dtype), q["kernel_bwd"].astype(dtype)
        if winograd and kernel.shape[2] >= WINOGRAD_MIN_CHANNELS:
            q["kernel_wino"] = winograd_kernel(kernel)
            q["kernel_wino_bwd"] = winograd_kernel(q["kernel_bwd"])
        out[name] = q
    return out
