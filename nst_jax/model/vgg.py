"""VGG19's convolutional part as a Flax module whose every function has a name.

The network is the sequence conv → relu (→ pool at the end of each block) of Simonyan & Zisserman's
configuration E, NHWC, 3×3 kernels with one pixel of zero padding and 2×2 pools of stride 2 (odd
sizes are floored, as in PyTorch and Caffe). Each function in the sequence can be read by two names:
the block names (`conv1_1`, `relu1_1`, … `pool5`) and the sequential names of the PyTorch tutorial
(`conv_1` … `conv_16`, `relu_1` … `relu_16`, `pool_1` … `pool_5`). Internally the block names are
used. The model computes nothing deeper than the deepest layer asked for and never touches disk:
parameters come from `nst_jax.model.weights`, preprocessing too.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from nst_jax.base.errors import NSTError
from nst_jax.model.layers import avg_pool2, backward_kernel, conv3x3, max_pool2
from nst_jax.model.vgg_layers import (BLOCK_DEPTHS, CONV_NAMES, LAYER_NAMES, LAYERS, POOLINGS, SEQUENTIAL_NAMES,  # noqa: F401
                                      WIDTHS, depth_index, feature_shape, min_input_side, param_shapes, pools_before,
                                      resolve, resolve_all)


class Conv3x3(nn.Module):
    """A 3×3 'same' convolution with bias; params `kernel` (3, 3, I, O), `bias` (O,), and optionally
    the derived kernels of `layers.prepare_params` (`kernel_bwd`, `kernel_wino`, `kernel_wino_bwd`)."""

    features: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        derived = lambda name: self.get_variable("params", name) if self.has_variable("params", name) else None
        kernel_bwd = derived("kernel_bwd")
        kernel_bwd = backward_kernel(kernel) if kernel_bwd is None else kernel_bwd
        return conv3x3(x, kernel, kernel_bwd, derived("kernel_wino"), derived("kernel_wino_bwd"),
                       self.precision) + bias


class VGG19(nn.Module):
    """VGG19 feature extractor; `__call__(x, layers)` returns {name: activation} for the names asked.

    x: (B, H, W, 3) float, already preprocessed for the weights (see `nst_jax.model.weights.preprocess`).
    widths: output channels of the 16 convolutions (smaller for a pruned network).
    """

    widths: tuple[int, ...] = WIDTHS
    pooling: str = "max"
    precision: Any = None
    dtype: Any = jnp.float32     # activations' storage (bfloat16: convolutions accumulate in float32)

    @nn.compact
    def __call__(self, x: jnp.ndarray, layers: Sequence[str], start: int = 0) -> dict[str, jnp.ndarray]:
        """`start`: index in `LAYERS` of the first function applied (x is then the activation before
        it) — how `features` runs the network one block at a time."""
        if self.pooling not in POOLINGS:
            raise NSTError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if x.ndim != 4 or (start == 0 and x.shape[-1] != 3):
            raise NSTError(f"VGG19 expects images of shape (B, H, W, 3), got {tuple(x.shape)}")
        wanted = {name: resolve(name) for name in layers}
        if not wanted:
            return {}
        deepest = max(depth_index(b) for b in wanted.values())
        found: dict[str, jnp.ndarray] = {}
        conv_i = sum(1 for row in LAYERS[:start] if row[2] == "conv")
        if x.shape[-1] != (3 if conv_i == 0 else self.widths[conv_i - 1]):
            raise NSTError(f"VGG19 from layer {start} expects {self.widths[conv_i - 1]} channels, got {x.shape[-1]}")
        for idx, (name, _, kind) in enumerate(LAYERS[: deepest + 1]):
            if idx < start:
                continue
            if kind == "conv":
                x = Conv3x3(self.widths[conv_i], self.precision, name=name)(x).astype(self.dtype)
                conv_i += 1
            elif kind == "relu":
                x = nn.relu(x)
            elif self.pooling == "max":
                x = max_pool2(x)
            else:
                x = avg_pool2(x)
            found[name] = x
        return {asked: found[block] for asked, block in wanted.items()}


def params_upto(params: Mapping[str, Any], layers: Iterable[str]) -> dict[str, Any]:
    """The part of a parameter tree that computing `layers` uses: the convolutions up to the deepest."""
    deepest = max(depth_index(n) for n in layers)
    return {name: p for name, p in params.items() if depth_index(name) <= deepest}


def features(params: Mapping[str, Any], x: jnp.ndarray, layers: Sequence[str], pooling: str = "max",
             precision: Any = None, remat: bool = False, dtype: Any = jnp.float32) -> dict[str, jnp.ndarray]:
    """Pure function form: activations of `layers` for preprocessed images x (B, H, W, 3).

    remat: rematerialise each block in the backward pass — the gradient keeps only every block's
    input and the activations asked for, and recomputes the rest of a block when its turn comes
    (one more forward pass of work for about half the activation memory; the same numbers).
    dtype bfloat16: the mixed-precision policy — x and every activation stored in bfloat16, each
    convolution accumulating in float32 (see `layers.conv3x3`)."""
    widths = tuple(int(params[name]["kernel"].shape[-1]) for name in CONV_NAMES if name in params)
    widths = widths + WIDTHS[len(widths):]
    model = VGG19(widths=widths, pooling=pooling, precision=precision, dtype=dtype)
    x = x.astype(dtype)
    if not remat:
        return model.apply({"params": params}, x, tuple(layers))
    wanted = {name: resolve(name) for name in layers}
    if not wanted:
        return {}
    deepest = max(depth_index(b) for b in wanted.values())
    found: dict[str, jnp.ndarray] = {}
    for start, end in block_spans(deepest):
        names = tuple(dict.fromkeys([b for b in wanted.values() if start <= depth_index(b) <= end] + [LAYER_NAMES[end]]))
        segment = functools.partial(_apply_from, model, names, start)
        found.update(_rematerialised(segment)(params, x))
        x = found[LAYER_NAMES[end]]
    return {asked: found[block] for asked, block in wanted.items()}


def _apply_from(model, names, start, params, x):
    return model.apply({"params": params}, x, names, start)


def _rematerialised(segment):
    """segment(params, x) whose backward pass recomputes it from its input x. The recomputation is
    made to depend on the incoming cotangent (x + 0·g[0]), so XLA can neither schedule it early —
    keeping every block's activations alive at once — nor merge it with the forward pass (XLA-CPU
    drops `jax.checkpoint`'s optimisation barriers before common-subexpression elimination, which
    undid the rematerialisation there). A NaN or inf cotangent makes the gradient non-finite either way."""
    @jax.custom_vjp
    def run(params, x):
        return segment(params, x)

    def forward(params, x):
        return segment(params, x), (params, x)

    def backward(saved, g):
        params, x = saved
        first = jax.tree.leaves(g)[0]
        x = x + (first.reshape(-1)[0] * 0).astype(x.dtype)
        return jax.vjp(segment, params, x)[1](g)

    run.defvjp(forward, backward)
    return run


def block_spans(deepest: int) -> list[tuple[int, int]]:
    """(first, last) indices in `LAYERS` of each block up to layer `deepest` (a block ends at its pool)."""
    spans, start = [], 0
    for idx, (_, _, kind) in enumerate(LAYERS[: deepest + 1]):
        if kind == "pool" or idx == deepest:
            spans.append((start, idx))
            start = idx + 1
    return spans
