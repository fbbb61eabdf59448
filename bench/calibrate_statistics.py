"""Measure each style statistic's multiplier (`Statistic.scale` in `nst_jax/statistics/`).

    python -m bench.calibrate_statistics [--size 256]

For each statistic: its unscaled style loss at the default initial image (the content image) on the
sample images, default layers, embedded weights; the multiplier makes it equal to the Gram loss there,
so the same k gives a comparable pull towards the style at the start of a run.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax.numpy as jnp

from nst_jax.objective import losses, statistics
from nst_jax.transfer import steps, runs as transfer
from nst_jax.model import weights
from nst_jax.transfer.inputs import load_inputs
from nst_jax.transfer.config import with_preset

from bench.run import CONTENT, STYLE


def measure(size: int = 256) -> dict[str, float]:
    """Each statistic's multiplier: the Gram style loss / its own unscaled style loss at the content image."""
    w = weights.load()
    base = with_preset("default", content=str(CONTENT), styles=(str(STYLE),), size=size, content_layers=(),
                       content_weight=0.0, tv_weight=0.0, style_weight=1.0)
    inputs = load_inputs(base)
    raw = {}
    for name in statistics.NAMES:
        cfg = dataclasses.replace(base, style_statistic=name)
        problem = transfer.build_problem(cfg, w, inputs)
        _, parts = losses.make_objective(problem.spec)(jnp.asarray(problem.content[None]),
                                                       problem.aux(steps.step_key(cfg, 0)))
        raw[name] = float(parts["style"]) / statistics.get(name).scale  # the unscaled loss
    return {name: raw["gram"] / v for name, v in raw.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args()
    for name, scale in measure(args.size).items():
        print(f"{name}: {scale:.4g}")


if __name__ == "__main__":
    main()
