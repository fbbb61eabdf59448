"""How RGB images in [0, 1] become the network's input: pure functions beside the model.

The preprocessing belongs to the weights (each weights file records its channel order, pixel scale,
mean and std; `weights.load` reads them into a `Preprocessing`), but applying it is pure array work,
so the losses and the model never import the file-format code.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Preprocessing(NamedTuple):
    """How RGB images in [0, 1] become the network's input: reorder, scale, subtract mean, divide std."""

    channel_order: str  # 'RGB' or 'BGR'
    pixel_scale: float
    mean: tuple[float, float, float]  # in the model's channel order and pixel scale
    std: tuple[float, float, float]


def preprocess(x, prep: Preprocessing):
    """RGB images in [0, 1], (..., 3) → the network's input for these weights (pure, jittable)."""
    if prep.channel_order == "BGR":
        x = x[..., ::-1]
    mean = np.asarray(prep.mean, np.float32)
    std = np.asarray(prep.std, np.float32)
    return (x * np.float32(prep.pixel_scale) - mean) / std


def mean_rgb(prep: Preprocessing) -> np.ndarray:
    """The model's mean colour as RGB in [0, 1] (the 'mean' initial image)."""
    mean = np.asarray(prep.mean, np.float32) / np.float32(prep.pixel_scale)
    return mean[::-1].copy() if prep.channel_order == "BGR" else mean
