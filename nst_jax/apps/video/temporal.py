"""What a frame's run is held to: earlier stylised frames warped into it, each with its weights, as the
array a run's --temporal file holds (J, H, W, 4): RGB in [0, 1] and the weight in the last channel.

Short-term: the previous frame, weighted by its consistency c. Long-term (Ruder et al.): several
earlier frames j ∈ J, most recent first, each weighted only where no more recent one sees the pixel:
c_long_j = max(c_j − Σ_{k more recent} c_k, 0). Slots a frame has no earlier frame for (the first
frames) are zero, so every frame of a video has the same shapes and its runs compile once.
"""

from __future__ import annotations

import numpy as np

from nst_jax.apps.video.flow import Pair, warp


def long_term_weights(weights: list[np.ndarray]) -> list[np.ndarray]:
    """c_long for each earlier frame (most recent first) from their consistency weights."""
    out, seen = [], np.zeros_like(weights[0]) if weights else None
    for c in weights:
        out.append(np.maximum(c - seen, 0.0).astype(np.float32))
        seen = seen + c
    return out


def targets(earlier: list[tuple[np.ndarray, Pair]], slots: int, shape: tuple[int, int]) -> np.ndarray:
    """The (slots, H, W, 4) array for a frame from its earlier stylised frames (most recent first), each
    with the Pair that brings it into this frame."""
    h, w = shape
    out = np.zeros((slots, h, w, 4), np.float32)
    warped = [np.clip(warp(x, p.flow), 0.0, 1.0) for x, p in earlier[:slots]]
    for j, (img, c) in enumerate(zip(warped, long_term_weights([p.weights for _, p in earlier[:slots]]))):
        out[j, ..., :3], out[j, ..., 3] = img, c
    return out


def blend(own: np.ndarray, neighbour: np.ndarray, p: Pair, delta: float) -> np.ndarray:
    """The multi-pass initial image: δ·c·ω(neighbour) + (1 − δ + δ·(1 − c))·own, i.e. the frame's own
    result of the last pass, moved towards its neighbour's (warped) result of this pass by δ where the
    flow is trusted."""
    c = p.weights[..., None]
    return np.clip(delta * c * warp(neighbour, p.flow) + (1.0 - delta * c) * own, 0.0, 1.0).astype(np.float32)
