"""VGG19's convolutional part as a Flax module whose every function has a name.

The network is the sequence conv → relu (→ pool at the end of each block) of Simonyan & Zisserman's
configuration E, NHWC, 3×3 kernels with one pixel of zero padding and 2×2 pools of stride 2 (odd
sizes are floored, as in PyTorch and Caffe). Each function in the sequence can be read by two names:
the block names (`conv1_1`, `relu1_1`, … `pool5`) and the sequential names of the PyTorch tutorial
(`conv_1` … `conv_16`, `relu_1` … `relu_16`, `pool_1` … `pool_5`). Internally the block names are
used. The model computes nothing deeper than the deepest layer asked for and never touches disk:
parameters come from `nst_jax.weights`, preprocessing too.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from nst_jax.errors import NSTError

BLOCK_DEPTHS = (2, 2, 4, 4, 4)
WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
POOLINGS = ("max", "avg")


def _layer_table() -> tuple[tuple[str, str, str], ...]:
    """(block name, sequential name, kind) for every function, in order."""
    rows, conv_i, pool_i = [], 0, 0
    for block, depth in enumerate(BLOCK_DEPTHS, start=1):
        for j in range(1, depth + 1):
            conv_i += 1
            rows.append((f"conv{block}_{j}", f"conv_{conv_i}", "conv"))
            rows.append((f"relu{block}_{j}", f"relu_{conv_i}", "relu"))
        pool_i += 1
        rows.append((f"pool{block}", f"pool_{pool_i}", "pool"))
    return tuple(rows)


LAYERS = _layer_table()
LAYER_NAMES = tuple(row[0] for row in LAYERS)
CONV_NAMES = tuple(row[0] for row in LAYERS if row[2] == "conv")
SEQUENTIAL_NAMES = tuple(row[1] for row in LAYERS)
_TO_BLOCK = {**{row[0]: row[0] for row in LAYERS}, **{row[1]: row[0] for row in LAYERS}}
_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}


def resolve(name: str) -> str:
    """The block name of a layer given in either naming scheme; `NSTError` listing valid names if unknown."""
    try:
        return _TO_BLOCK[name.strip()]
    except (KeyError, AttributeError):
        raise NSTError(
            f"unknown layer name {name!r}; valid names are {', '.join(LAYER_NAMES)} "
            f"or {', '.join(SEQUENTIAL_NAMES)}"
        ) from None


def resolve_all(names: Iterable[str]) -> tuple[str, ...]:
    """Block names for a sequence of names in either scheme, order kept, duplicates removed."""
    out: list[str] = []
    for name in names:
        block = resolve(name)
        if block not in out:
            out.append(block)
    return tuple(out)


def depth_index(name: str) -> int:
    """Position of a layer in the sequence (0 for conv1_1)."""
    return _INDEX[resolve(name)]


def pools_before(name: str) -> int:
    """How many 2×2 poolings an image passes through to reach this layer's output."""
    idx = depth_index(name)
    return sum(1 for row in LAYERS[: idx + 1] if row[2] == "pool")


def min_input_side(layers: Iterable[str]) -> int:
    """The smallest image side (pixels) whose features at all these layers are at least 1×1."""
    return 2 ** max((pools_before(n) for n in layers), default=0)


def feature_shape(name: str, height: int, width: int, widths: Sequence[int] = WIDTHS) -> tuple[int, int, int]:
    """(H, W, C) of a layer's output for an input of height × width."""
    h, w = height, width
    for _ in range(pools_before(name)):
        h, w = h // 2, w // 2
    idx = depth_index(name)
    convs_seen = sum(1 for row in LAYERS[: idx + 1] if row[2] == "conv")
    return h, w, widths[convs_seen - 1]


def _conv(x, kernel, precision=None):
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)


def backward_kernel(kernel: jnp.ndarray) -> jnp.ndarray:
    """The kernel whose convolution with an output cotangent gives the input cotangent of a 3×3
    'same' convolution: flipped in space, input and output channels swapped (HWIO → HW O I)."""
    return jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def conv3x3(x, kernel, kernel_bwd, precision=None):
    """3×3 convolution with one pixel of zero padding, NHWC × HWIO → NHWC.

    `kernel_bwd` must be `backward_kernel(kernel)`. The input cotangent is the plain convolution of
    the output cotangent with it, so a precomputed `kernel_bwd` (see `with_backward_kernels`) saves
    XLA from flipping and transposing every kernel on every gradient evaluation — on XLA-CPU that
    was ~10 % of a value+grad at 256². The kernel's cotangent is exact (and pruned by XLA when, as in
    style transfer, only the image's gradient is used); `kernel_bwd`'s cotangent is zero."""
    return _conv(x, kernel, precision)


def _conv3x3_fwd(x, kernel, kernel_bwd, precision):
    return _conv(x, kernel, precision), (x, kernel, kernel_bwd)


def _col2im_input_grad(g, kernel, precision=None):
    """The input cotangent of a 3×3 'same' convolution as one matrix product with the kernel and
    nine shifted adds — for few input channels (the RGB image), where a convolution with 3 output
    channels is 2× slower on XLA-CPU."""
    b, h, w, _ = g.shape
    c = kernel.shape[2]
    cols = jnp.einsum("bhwo,ijco->bhwijc", g, kernel, precision=precision)
    gp = jnp.zeros((b, h + 2, w + 2, c), g.dtype)
    for i in range(3):
        for j in range(3):
            gp = gp.at[:, i:i + h, j:j + w].add(cols[:, :, :, i, j])
    return gp[:, 1:-1, 1:-1]


def _conv3x3_bwd(precision, res, g):
    x, kernel, kernel_bwd = res
    if kernel.shape[2] <= 4:
        gx = _col2im_input_grad(g, kernel, precision)
    else:
        gx = _conv(g, kernel_bwd, precision)
    gk = jax.vjp(lambda k: _conv(x, k, precision), kernel)[1](g)[0]
    return gx, gk, jnp.zeros_like(kernel_bwd)


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


class Conv3x3(nn.Module):
    """A 3×3 'same' convolution with bias; params `kernel` (3, 3, I, O), `bias` (O,), and optionally
    the precomputed `kernel_bwd` (see `with_backward_kernels`)."""

    features: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.has_variable("params", "kernel_bwd"):
            kernel_bwd = self.get_variable("params", "kernel_bwd")
        else:
            kernel_bwd = backward_kernel(kernel)
        return conv3x3(x, kernel, kernel_bwd, self.precision) + bias


class VGG19(nn.Module):
    """VGG19 feature extractor; `__call__(x, layers)` returns {name: activation} for the names asked.

    x: (B, H, W, 3) float, already preprocessed for the weights (see `nst_jax.weights.preprocess`).
    widths: output channels of the 16 convolutions (smaller for a pruned network).
    """

    widths: tuple[int, ...] = WIDTHS
    pooling: str = "max"
    precision: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, layers: Sequence[str]) -> dict[str, jnp.ndarray]:
        if self.pooling not in POOLINGS:
            raise NSTError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if x.ndim != 4 or x.shape[-1] != 3:
            raise NSTError(f"VGG19 expects images of shape (B, H, W, 3), got {tuple(x.shape)}")
        wanted = {name: resolve(name) for name in layers}
        if not wanted:
            return {}
        deepest = max(_INDEX[b] for b in wanted.values())
        found: dict[str, jnp.ndarray] = {}
        conv_i = 0
        for idx, (name, _, kind) in enumerate(LAYERS[: deepest + 1]):
            if kind == "conv":
                x = Conv3x3(self.widths[conv_i], self.precision, name=name)(x)
                conv_i += 1
            elif kind == "relu":
                x = nn.relu(x)
            elif self.pooling == "max":
                x = max_pool2(x)
            else:
                x = avg_pool2(x)
            found[name] = x
        return {asked: found[block] for asked, block in wanted.items()}


def with_backward_kernels(params: Mapping[str, Any]) -> dict[str, Any]:
    """params with each conv's `kernel_bwd` precomputed (once per run instead of once per gradient)."""
    return {name: {**p, "kernel_bwd": backward_kernel(jnp.asarray(p["kernel"]))} for name, p in params.items()}


def features(params: Mapping[str, Any], x: jnp.ndarray, layers: Sequence[str], pooling: str = "max",
             precision: Any = None) -> dict[str, jnp.ndarray]:
    """Pure function form: activations of `layers` for preprocessed images x (B, H, W, 3)."""
    widths = tuple(int(params[name]["kernel"].shape[-1]) for name in CONV_NAMES if name in params)
    widths = widths + WIDTHS[len(widths):]
    model = VGG19(widths=widths, pooling=pooling, precision=precision)
    return model.apply({"params": params}, x, tuple(layers))


def param_shapes(widths: Sequence[int] = WIDTHS) -> dict[str, dict[str, tuple[int, ...]]]:
    """The parameter tree the model expects: {conv name: {'kernel': HWIO, 'bias': (O,)}}."""
    shapes, cin = {}, 3
    for name, cout in zip(CONV_NAMES, widths):
        shapes[name] = {"kernel": (3, 3, cin, cout), "bias": (cout,)}
        cin = cout
    return shapes
