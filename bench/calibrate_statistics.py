"""Measure the per-statistic multipliers in `nst_jax.statistics.SCALE`.

    python -m bench.calibrate_statistics [--size 256]

For each statistic: its unscaled style loss at the default initial image (the content image) on the
sample images, default layers, embedded weights; the multiplier makes it equal to the Gram loss there,
so the same k gives a comparable pull towards the style at the start of a run.
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp

from nst_jax import image, losses, statistics, weights
from nst_jax.config import PRESETS

from bench.run import CONTENT, STYLE


def measure(size: int = 256) -> dict[str, float]:
    w = weights.load()
    c = image.load_image(CONTENT)
    c = jnp.asarray(image.resize(c, image.fit_size(c.shape[:2], size))[None])
    s = image.load_image(STYLE)
    s = jnp.asarray(image.resize(s, image.fit_size(s.shape[:2], size))[None])
    layers = PRESETS["default"]["style_layers"]
    raw = {}
    for name in statistics.NAMES:
        spec = losses.ObjectiveSpec((), layers, (1 / len(layers),) * len(layers), "max", w.preprocessing, name)
        t = losses.compute_targets(w.params, spec, c, [s])
        feats = losses._features(w.params, c, spec, layers)
        value = losses.statistic_style_loss(feats, t.style, dict(zip(layers, spec.style_layer_weights)), name)
        raw[name] = float(value) / statistics.SCALE[name]  # the unscaled loss
    return {name: raw["gram"] / v for name, v in raw.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args()
    for name, scale in measure(args.size).items():
        print(f'    "{name}": {scale:.4g},')


if __name__ == "__main__":
    main()
