"""Sample clips with a known motion: a camera that pans and zooms over a photograph, with a moving part
(a disc cut from a second image) crossing it. The true flow between frames is known exactly, so tests
check the computed flow and the warping against it. `python -m nst_jax.apps.video.sample OUT.mp4` writes
one; the package ships two (`samples/pan_zoom.mp4`, `samples/drift.mp4`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nst_jax.files import image
from nst_jax.transfer.config import SAMPLES
from nst_jax.apps.video.flow import sample


class Motion(NamedTuple):
    """The camera: frame pixel p (from the frame's centre) shows photo pixel centre + v·t + zoom^t·scale·p;
    and a disc of `radius` starting at `disc_at` (frame pixels) moving by `disc_v` per frame."""

    photo: str
    sprite: str
    size: tuple[int, int] = (128, 192)     # (H, W) of the frames
    centre: tuple[float, float] = (225.0, 150.0)
    v: tuple[float, float] = (2.0, 0.5)    # photo pixels per frame (x, y)
    scale: float = 1.2                     # photo pixels per frame pixel at frame 0
    zoom: float = 0.985                    # per frame (< 1: the camera zooms in)
    radius: float = 18.0
    disc_at: tuple[float, float] = (40.0, 70.0)
    disc_v: tuple[float, float] = (4.0, -1.0)


PAN_ZOOM = Motion(str(SAMPLES / "chelsea.png"), str(SAMPLES / "starry_night.jpg"))
DRIFT = Motion(str(SAMPLES / "hubble_deep_field.jpg"), str(SAMPLES / "shipwreck.jpg"), centre=(256.0, 223.0),
               v=(-1.5, 1.0), scale=1.5, zoom=1.01, radius=22.0, disc_at=(150.0, 30.0), disc_v=(-3.0, 3.0))


def _camera(m: Motion, t: int) -> tuple[np.ndarray, float]:
    return np.asarray(m.centre) + t * np.asarray(m.v), m.scale * m.zoom ** t


def _grid(m: Motion) -> np.ndarray:
    h, w = m.size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([xs - (w - 1) / 2, ys - (h - 1) / 2], axis=-1)


def _disc(m: Motion, t: int) -> np.ndarray:
    """The disc's mask (H, W) in frame t (anti-aliased edge)."""
    h, w = m.size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = np.asarray(m.disc_at) + t * np.asarray(m.disc_v)
    return np.clip(m.radius + 0.5 - np.hypot(xs - cx, ys - cy), 0, 1).astype(np.float32)


def frame(m: Motion, t: int, photo: np.ndarray, sprite: np.ndarray) -> np.ndarray:
    """Frame t (H, W, 3) in [0, 1]."""
    c, s = _camera(m, t)
    q = c + s * _grid(m)
    h, w = m.size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    background = sample(photo, (q - np.stack([xs, ys], -1)).astype(np.float32))
    shift = np.asarray(m.disc_at) + t * np.asarray(m.disc_v) - np.asarray(m.disc_at)
    moving = sample(sprite, np.broadcast_to(-shift.astype(np.float32), (h, w, 2)).copy())
    a = _disc(m, t)[..., None]
    return np.clip(a * moving + (1 - a) * background, 0, 1).astype(np.float32)


def true_flow(m: Motion, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact flow from frame t to frame t + 1 (H, W, 2), and the mask of the disc's pixels in frame t."""
    c0, s0 = _camera(m, t)
    c1, s1 = _camera(m, t + 1)
    p = _grid(m)
    flow = (c0 - c1 + s0 * p) / s1 - p
    disc = _disc(m, t) > 0.5
    flow[disc] = m.disc_v
    return flow.astype(np.float32), disc


def load_images(m: Motion) -> tuple[np.ndarray, np.ndarray]:
    h, w = m.size
    sprite = image.load_image(m.sprite)
    return image.load_image(m.photo), image.resize(sprite, (h, w))


def frames(m: Motion, n: int) -> list[np.ndarray]:
    photo, sprite = load_images(m)
    return [frame(m, t, photo, sprite) for t in range(n)]


def main(argv: list[str] | None = None) -> int:
    from nst_jax.base.errors import ArgumentParser
    from nst_jax.apps.video.frames import write_mp4
    p = ArgumentParser(prog="python -m nst_jax.apps.video.sample",
                       description="Write a sample clip with a known camera motion (a pan and zoom over a "
                                   "photograph, with a moving disc).")
    p.add_argument("output", help="the .mp4 to write")
    p.add_argument("--motion", choices=("pan_zoom", "drift"), default="pan_zoom")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--fps", type=int, default=12)
    args = p.parse_args(argv)
    m = PAN_ZOOM if args.motion == "pan_zoom" else DRIFT
    write_mp4(Path(args.output), frames(m, args.frames), Fraction(args.fps))
    print(f"wrote {args.output}: {args.frames} frames of {m.size[1]}×{m.size[0]} px at {args.fps} fps")
    return 0


if __name__ == "__main__":
    from nst_jax.base.errors import exit_with
    exit_with(main)
