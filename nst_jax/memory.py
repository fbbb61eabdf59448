"""How much memory a run needs, estimated before anything large is allocated (pure arithmetic).

A run holds the solver state — for L-BFGS its 2·history past steps and gradient changes, each the size
of the image — and, during a value+grad, the activations the backward pass keeps for every layer up to
the deepest one used; on top comes the process itself (JAX, XLA, the weights). The estimate adds these
up in float32 bytes; `check` refuses a run whose estimate exceeds the memory the device has, with one
line that says what it needs, what there is, and a size or history that would fit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from nst_jax import vgg
from nst_jax.errors import NSTError

FLOAT = 4
ACTIVATION_COPIES = 3        # a conv's output, its ReLU (kept for the backward pass), and a gradient in flight
PROCESS_BYTES = 1.1e9        # JAX, XLA's compiled programs and the weights: peak RSS of a 64-px run on CPU
# Checked against the peak RSS of `python -m nst_jax.run` on CPU (default layers, L-BFGS, history 100):
# 256 px 1.36 GB estimated / 1.41 GB measured, 512 px 2.14 / 1.97 GB.


class Estimate(NamedTuple):
    solver_state: float      # bytes
    activations: float
    process: float

    @property
    def total(self) -> float:
        return self.solver_state + self.activations + self.process


def state_floats(optimizer: str, history: int, pixels: int) -> float:
    """Floats of a solver's state for an image of `pixels` values (H·W·channels)."""
    if optimizer == "adam":
        return 6 * pixels                          # x, grad, two moments, and the step's copies
    return (2 * history + 6) * pixels              # S and Y histories, x, grad, new x, new grad, s, y


def activation_floats(layers, height: int, width: int) -> float:
    """Floats of the activations kept for the backward pass up to the deepest of `layers`."""
    deepest = max(vgg.depth_index(n) for n in layers)
    total = 0.0
    for name, _, kind in vgg.LAYERS[: deepest + 1]:
        if kind == "conv":
            h, w, c = vgg.feature_shape(name, height, width)
            total += h * w * c
    return ACTIVATION_COPIES * total


def estimate(optimizer: str, history: int, layers, height: int, width: int, channels: int = 3,
             runs: int = 1) -> Estimate:
    """The estimate for `runs` runs optimised together (a vmapped batch)."""
    pixels = height * width * channels
    return Estimate(runs * FLOAT * state_floats(optimizer, history, pixels),
                    runs * FLOAT * activation_floats(layers, height, width), PROCESS_BYTES)


def available_bytes() -> float:
    """Memory the run can use: the accelerator's limit, or on CPU the memory the system has available."""
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
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


def check(optimizer: str, history: int, layers, height: int, width: int, channels: int = 3,
          available: float | None = None, what: str = "this run", runs: int = 1) -> Estimate:
    """The estimate, or NSTError if it exceeds the memory available (with sizes that would fit)."""
    from nst_jax.progress import human_bytes
    est = estimate(optimizer, history, layers, height, width, channels, runs)
    available = available_bytes() if available is None else available
    if est.total <= available:
        return est
    # every part but the process grows with the pixels: the largest longer side that fits
    room = max(available - est.process, 0.0)
    scale = math.sqrt(room / max(est.solver_state + est.activations, 1.0))
    fits = int(max(height, width) * scale * 0.95)
    per_pair = 2 * FLOAT * height * width * channels * runs
    history_fits = int((available - est.process - est.activations - 6 * per_pair / 2) // per_pair)
    hint = f"--size {fits} would fit" if fits >= 16 else "no size would fit"
    if optimizer != "adam" and 1 <= history_fits < history:
        hint += f", or --history {history_fits} at this size"
    raise NSTError(f"{what} needs about {human_bytes(est.total)} (solver state {human_bytes(est.solver_state)}, "
                   f"activations {human_bytes(est.activations)}, process {human_bytes(est.process)}) at "
                   f"{width}×{height} px, but {human_bytes(available)} is available; {hint}")
