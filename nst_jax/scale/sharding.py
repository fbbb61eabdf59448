"""One image split across several devices along its height — the same optimisation, no tiles, no seams.

The image, its gradient, every feature map and the L-BFGS history are laid out in horizontal bands,
one per device (`jax.sharding.NamedSharding` over a one-axis mesh); the network's weights and the
targets are replicated. XLA's SPMD partitioner turns the one-device program into a per-device one:
each 3×3 convolution first exchanges one border row with its neighbours (collective permutes), the
Gram matrices, content and TV losses are partial sums added across devices (one all-reduce), and the
solver's dot products likewise — so every device computes what the single-device run computes for
its band, and the result equals it up to the order of float additions. Two formulations the one-device
program uses would make XLA gather the whole map on every device, so a split run goes without them:
Winograd's tiles (`planning.with_forms` gives a split run no forms), and scatter-adds in the first
convolution's gradient (written as padded slices in `layers` for every run).

The height must divide by the number of devices (each band the same size): `device_count` uses as
many devices as divide it, or refuses an explicit count that does not, saying which would.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nst_jax.base.errors import NSTError

AXIS = "height"


def present() -> int:
    """Devices JAX sees (in a multi-host run: every process's)."""
    return len(jax.devices())


def _dividing(height: int, up_to: int) -> int:
    return max(n for n in range(1, up_to + 1) if splits(height, n))


def splits(height: int, count: int) -> bool:
    """Whether an image of this height splits into `count` bands of one height."""
    return height % count == 0


def device_count(requested: int, height: int, sizes_that_divide=None) -> int:
    """How many devices a run of this height is split across: `requested` (0: as many of those present
    as divide the height). NSTError for more than are present or a count that does not divide it;
    `sizes_that_divide(n)` names --size values whose height would (for the message)."""
    have = present()
    if requested < 0:
        raise NSTError(f"--devices must be ≥ 0 (0: all present), got {requested}")
    if requested > have:
        raise NSTError(f"--devices {requested}: only {have} device{'s are' if have > 1 else ' is'} present "
                       f"({jax.devices()[0].platform})")
    if requested == 0:
        return _dividing(height, have)
    if not splits(height, requested):
        hint = f"; --size {' or '.join(map(str, sizes_that_divide(requested)))} would" if sizes_that_divide else ""
        raise NSTError(f"the image's height {height} px does not split evenly across {requested} devices "
                       f"(each band must be the same height){hint}, or --devices {_dividing(height, requested)}")
    return requested


@functools.lru_cache(maxsize=8)
def mesh(count: int) -> Mesh:
    """The one-axis mesh over the first `count` devices (built once per count)."""
    return Mesh(np.array(jax.devices()[:count]), (AXIS,))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a run's arrays live: on one device (`count` 1), or in `count` bands along the height of
    images of `image_shape` (H, W, C). Hashable, so a compiled step is cached per layout."""

    count: int = 1
    image_shape: tuple[int, int, int] = (0, 0, 0)

    @property
    def split(self) -> bool:
        return self.count > 1

    def place(self, tree: Any) -> Any:
        """Host arrays onto the devices (`place`); unchanged on one device."""
        return place(tree, mesh(self.count), self.image_shape) if self.split else tree

    def constrain(self, tree: Any) -> Any:
        """Inside a jitted function (`constrain`); unchanged on one device."""
        return constrain(tree, mesh(self.count), self.image_shape) if self.split else tree

    def abstract(self, tree: Any) -> Any:
        """Abstract arrays (`jax.ShapeDtypeStruct`) with this layout, for compiling without data."""
        if not self.split:
            return tree
        m = mesh(self.count)
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=NamedSharding(
            m, spec(a.shape, self.image_shape))), tree)


def spec(shape: tuple[int, ...], image_shape: tuple[int, int, int]) -> PartitionSpec:
    """How an array is laid out: split along the image's height when it holds images (…, H, W, C),
    along its last axis when that is a flattened image (the solver's vectors and history), else
    replicated."""
    h, w, c = image_shape
    if len(shape) >= 3 and tuple(shape[-3:]) == (h, w, c):
        return PartitionSpec(*([None] * (len(shape) - 3)), AXIS, None, None)
    if len(shape) >= 1 and shape[-1] == h * w * c and h * w * c > 1:
        return PartitionSpec(*([None] * (len(shape) - 1)), AXIS)
    return PartitionSpec()


def place(tree: Any, m: Mesh, image_shape: tuple[int, int, int]) -> Any:
    """Put every array of `tree` on the mesh's devices, laid out by `spec`: each process supplies its own
    devices' parts from its host copy (every process holds the same values, see `hosts`)."""
    def put(a):
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, NamedSharding(m, spec(host.shape, image_shape)),
                                            lambda index: host[index])
    return jax.tree.map(put, tree)


def constrain(tree: Any, m: Mesh, image_shape: tuple[int, int, int]) -> Any:
    """Inside a jitted function: the same layout as `place`, so a step's outputs stay split."""
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, NamedSharding(m, spec(a.shape, image_shape))),
                        tree)
