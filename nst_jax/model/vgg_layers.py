"""VGG19's layers by name and their geometry: pure Python, no JAX, so that the command line, the
memory plan and the checks read them without loading the numerical libraries.

Each function in the sequence conv → relu (→ pool at the end of each block) of Simonyan & Zisserman's
configuration E can be read by two names: the block names (`conv1_1`, `relu1_1`, … `pool5`) and the
sequential names of the PyTorch tutorial (`conv_1` … `conv_16`, `relu_1` … `relu_16`, `pool_1` …
`pool_5`). `nst_jax.model.vgg` (the Flax model) re-exports every name here.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from nst_jax.base.errors import NSTError

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


def param_shapes(widths: Sequence[int] = WIDTHS) -> dict[str, dict[str, tuple[int, ...]]]:
    """The parameter tree the model expects: {conv name: {'kernel': HWIO, 'bias': (O,)}}."""
    shapes, cin = {}, 3
    for name, cout in zip(CONV_NAMES, widths):
        shapes[name] = {"kernel": (3, 3, cin, cout), "bias": (cout,)}
        cin = cout
    return shapes
