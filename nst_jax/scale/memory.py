"""The memory a run needs, part by part, before anything large is allocated (pure arithmetic).

A value+grad keeps VGG19's activations for the backward pass; an L-BFGS run holds its history of 2·m
image-sized vectors and a few more (x, the gradient, the new point); the targets and the network's
weights sit beside them, and on the CPU the process itself (JAX, XLA, the runtime) shares the same
RAM. Split across n devices along the image's height, every image-sized part is divided by n; the
weights and targets are replicated. `needs` adds these up for one way of fitting:

| way          | activations kept for the gradient              | L-BFGS history | numbers           |
|--------------|------------------------------------------------|----------------|-------------------|
| `plain`      | every layer's (XLA's figure ≈ 1.6–1.9 × the conv outputs) | float32 | the reference |
| `remat`      | each block's input and the layers asked for; the rest recomputed (≈ 1.1 ×) | float32 | identical |
| `remat-bf16` | as `remat`                                     | bfloat16 (arithmetic in float32) | slightly different path |

`planning.plan_run` takes the first way that fits (`--memory auto`); `refusal` words a run that fits no
way in one line: what it needs, what the device has, and what would fit. The activation factors are XLA's own
temp-buffer figure (`Compiled.memory_analysis()`) over the conv outputs, read at 128–1024 px on CPU
(`python -m bench.memory` repeats the comparison against measured peaks).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from nst_jax.model import vgg_layers
from nst_jax.base.errors import NSTError

FLOAT = 4
MAX_SIZE = 8192                      # the largest --size a run takes (config.MAX_SIZE is this)
MAX_DEVICES = 65536                  # the most devices --plan COUNTxMEMORY plans for
MODES = ("auto", "plain", "remat", "remat-bf16")
WAYS = MODES[1:]                     # in the order `auto` tries them
ACTIVATION_FACTOR = {"plain": 1.7, "remat": 1.15, "remat-bf16": 1.15}
# XLA-CPU temp bytes / conv-output bytes (default layers, L-BFGS value+grad, chelsea):
#   128 px 1.95 / 1.41, 256 px 1.74 / 1.11, 512 px 1.70 / 1.11, 1024 px 1.57 / 1.10 (plain / remat).
MARGIN = 1.08                        # a plan fits when needed × MARGIN ≤ available: measured peaks were up
# to 7 % above the plan (256 px, remat-bf16), and a run planned with no margin at 3673 px was killed by
# the kernel's OOM killer on the 24 GB machine (bench/results/memory-largest-cpu-2026-11-29.md)
SMALL_MATRICES = 7                  # m×m float32 matrices of L-BFGS per run, on every device: S·Yᵀ and Y·Yᵀ in
# the state, about 5 in XLA's temporaries for the compact direction (read at 64 px, history 2000 and 4000:
# 4.5 and 4.9 m² floats beyond the history-100 program); negligible at history 100, 100 GB at 60000
PROCESS_BYTES = 0.8e9                # JAX, XLA, the runtime: host RAM of a 128-px run less its weights and arrays


def human_bytes(n: float) -> str:
    """1234567 → '1.2 MB' (decimal units)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def remat(way: str) -> bool:
    return way in ("remat", "remat-bf16")


def history_bytes(way: str) -> int:
    return 2 if way == "remat-bf16" else FLOAT


class Devices(NamedTuple):
    """What a run is planned for: `count` devices of `bytes_each`; `shared`: the devices of one host
    share its memory (CPU devices share the host's RAM, with the process in it); `hosts`: processes
    the devices are spread over (`hosts`), each with its own memory."""

    platform: str
    count: int
    bytes_each: float
    shared: bool
    hosts: int = 1

    def describe(self) -> str:
        if self.shared:
            return f"{self.count} {self.platform.upper()} device{'s' if self.count > 1 else ''} sharing " \
                   f"{human_bytes(self.bytes_each)} of RAM available"
        return f"{self.count} × {self.platform.upper()} with {human_bytes(self.bytes_each)} each"


def parse_devices(text: str) -> Devices:
    """'80GB', '8x80GB' or '8×80GiB': planning for accelerators that are not here."""
    m = re.fullmatch(r"\s*(?:(\d+)\s*[x×*]\s*)?(\d+(?:\.\d+)?)\s*(GB|GiB|TB|MB)\s*", text or "", re.I)
    if not m:
        raise NSTError(f"--plan {text!r}: expected the devices to plan for as COUNTxMEMORY, e.g. 8x80GB or 24GB")
    unit = {"mb": 1e6, "gb": 1e9, "gib": 2 ** 30, "tb": 1e12}[m.group(3).lower()]
    count = int(m.group(1) or 1)
    if not 1 <= count <= MAX_DEVICES:
        raise NSTError(f"--plan {text!r}: the device count must be from 1 to {MAX_DEVICES}")
    if not float(m.group(2)) * unit >= 1e6:
        raise NSTError(f"--plan {text!r}: each device needs at least 1 MB")
    return Devices("gpu", count, float(m.group(2)) * unit, False)


class Needs(NamedTuple):
    """Bytes per device by part (for one device when the run is not split), and the verdict."""

    height: int
    width: int
    way: str
    devices: Devices
    parts: tuple[tuple[str, float], ...]   # (what, bytes on each device)
    process: float                          # host bytes beside them (CPU: in the same RAM)
    checkpoint: float                       # bytes of one checkpoint file

    @property
    def per_device(self) -> float:
        return sum(b for _, b in self.parts)

    @property
    def needed(self) -> float:
        """What is compared with the memory there is: on shared RAM, every device's part and the process."""
        if self.devices.shared:
            return max(1, self.devices.count // self.devices.hosts) * self.per_device + self.process
        return self.per_device

    @property
    def available(self) -> float:
        return self.devices.bytes_each

    @property
    def fits(self) -> bool:
        return self.needed * MARGIN <= self.available


def conv_output_floats(layers, height: int, width: int) -> float:
    """Floats of every convolution's output up to the deepest of `layers`."""
    deepest = max(vgg_layers.depth_index(n) for n in layers)
    return float(sum(math.prod(vgg_layers.feature_shape(name, height, width))
                     for name, _, kind in vgg_layers.LAYERS[: deepest + 1] if kind == "conv"))


def weight_floats(layers, winograd: bool, height: int = 0, width: int = 0) -> float:
    """Floats of the network's parameters up to the deepest layer, with the derived kernels
    (`layers.prepare_params`): the backward kernel, and with `winograd` an F(4×4) kernel (36/9 of the
    kernel) for each direction of each layer the planner may give one (`convforms.Shape.tuned` at
    height × width) — the most the forms can take, since they are measured after this plan."""
    from nst_jax.model import convforms
    deepest = max(vgg_layers.depth_index(n) for n in layers)
    shapes = convforms.run_shapes(layers, height, width) if winograd else {}
    total = 0.0
    for name, shape in vgg_layers.param_shapes().items():
        if vgg_layers.depth_index(name) > deepest:
            continue
        k = math.prod(shape["kernel"])
        tuned = sum(1 for s in shapes.get(name, ()) if s is not None and s.tuned)
        total += 2 * k + tuned * 36 / 9 * k + shape["bias"][0]
    return total


def target_floats(content_layers, style_layers, height: int, width: int, styles: int = 1) -> float:
    """Content features at the content layers and a C×C target per style layer and style."""
    content = sum(math.prod(vgg_layers.feature_shape(n, height, width)) for n in content_layers)
    style = sum(vgg_layers.feature_shape(n, 1, 1)[2] ** 2 for n in style_layers) * styles
    return float(content + style)


def needs(optimizer: str, history: int, content_layers, style_layers, height: int, width: int, devices: Devices,
         way: str = "plain", channels: int = 3, runs: int = 1, styles: int = 1, light_checkpoint: bool = False) -> Needs:
    """The plan for `runs` runs optimised together (a vmapped batch), split across `devices`;
    `light_checkpoint`: checkpoints hold the image alone."""
    n = devices.count
    layers = tuple(content_layers) + tuple(style_layers)
    image = runs * height * width * channels                          # floats of one image-sized vector
    acts = ACTIVATION_FACTOR[way] * runs * conv_output_floats(layers, height, width) * FLOAT / n
    parts = [("activations kept for the gradient" + (" (blocks recomputed)" if remat(way) else ""), acts)]
    if optimizer == "adam":
        parts.append(("Adam's moments, image, gradient", 6 * image * FLOAT / n))
        ckpt = 3 * image * FLOAT
    else:
        hb = history_bytes(way)
        parts.append((f"L-BFGS history (2·{history} vectors, {'bfloat16' if hb == 2 else 'float32'})",
                      2 * history * image * hb / n))
        parts.append(("image, gradient, solver vectors", 6 * image * FLOAT / n))
        parts.append((f"L-BFGS {history}×{history} matrices (S·Yᵀ, Y·Yᵀ, the direction's workspace)",
                      SMALL_MATRICES * runs * history ** 2 * FLOAT))
        ckpt = 2 * history * image * hb + 2 * image * FLOAT + 2 * runs * history ** 2 * FLOAT
    parts.append(("targets", target_floats(content_layers, style_layers, height, width, styles) * FLOAT))
    parts.append(("network weights", weight_floats(layers, devices.platform == "cpu" and n == 1, height, width) * FLOAT))
    if light_checkpoint:
        ckpt = image * FLOAT
    process = PROCESS_BYTES if devices.shared else 0.0
    return Needs(height, width, way, devices, tuple(parts), process, float(ckpt))


def largest_size(needs_at, shape_at, low: int = 16, high: int = MAX_SIZE) -> int:
    """The largest longest side (pixels, at most `high`: the largest --size a run takes) whose plan fits;
    `needs_at(height, width)` makes one plan and `shape_at(side)` gives the (height, width) of a side
    (`image.fit_size`). 0 when not even `low` fits."""
    def fits(side):
        return needs_at(*shape_at(side)).fits
    if not fits(low):
        return 0
    if fits(high):
        return high
    high += 1
    while low < high - 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def refusal(p: Needs, what: str, hints: list[str]) -> NSTError:
    """The one line that refuses a plan that does not fit."""
    split = f" on each of {p.devices.count} devices" if p.devices.count > 1 else ""
    parts = ", ".join(f"{name.split(' (')[0]} {human_bytes(b)}" for name, b in p.parts if b >= 1e6)
    process = f" + process {human_bytes(p.process)}" if p.process else ""
    hint = "; ".join(hints) if hints else "no size fits this device"
    return NSTError(f"{what} needs about {human_bytes(p.needed)} at {p.width}×{p.height} px ({parts}{split}"
                    f"{process}; --memory {p.way}) and a margin of {round(100 * (MARGIN - 1))} %, but "
                    f"{p.devices.describe()}; {hint}")


def available_bytes(platform: str | None = None) -> float:
    """Memory a run can use on one device: the accelerator's limit less what is in use, or on CPU the
    RAM the system has available plus what this process already holds (the plan counts the process
    itself, `PROCESS_BYTES`)."""
    import jax
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return float(stats["bytes_limit"]) - float(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024 + _resident_bytes()
    except OSError:
        pass
    return math.inf


def _resident_bytes() -> float:
    try:
        import os
        with open("/proc/self/statm") as f:
            return float(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


def present(count: int) -> Devices:
    """The devices here, `count` of them (see `sharding.device_count`)."""
    import jax
    platform = jax.devices()[0].platform
    return Devices(platform, count, available_bytes(), platform == "cpu", jax.process_count())
