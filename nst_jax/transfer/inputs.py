"""What a run reads from disk: the content and style images resized for the run, masks and an --init
image file, checked against the layers they must reach; and the initial image the optimisation
starts from (`initial_image`, `as_variable`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.files import image, untrusted
from nst_jax.model import vgg_layers as vgg
from nst_jax.transfer.config import INITS, Config
from nst_jax.base.errors import NSTError
from nst_jax.model.preprocessing import mean_rgb


class Inputs(NamedTuple):
    """What a run reads from disk, resized: content (H, W, 3), styles, masks, an initial image file."""

    content: np.ndarray
    styles: list[np.ndarray]
    content_masks: list[np.ndarray] | None = None   # (H, W) in [0, 1], one per style
    style_masks: list[np.ndarray] | None = None     # (h, w) at each style's size
    init_image: np.ndarray | None = None            # --init FILE, at the content's size
    content_shape: tuple[int, int] = (0, 0)          # the content image's size before resizing
    temporal: np.ndarray | None = None               # --temporal FILE: (J, H, W, 4), see `load_temporal`



def _resize_any(img: np.ndarray, size) -> np.ndarray:
    """Resize (H, W, C) for C = 1 or 3 (luminance images have one channel)."""
    if img.shape[-1] == 3:
        return image.resize(img, size)
    return image.resize(np.repeat(img, 3, axis=-1), size)[..., :1]


def _load_mask(path: str, image_path: str, size: tuple[int, int]) -> np.ndarray:
    """A mask file as grey values in [0, 1], checked against its image's size, resized to `size`."""
    mask = image.load_image(path)
    want = image.load_image(image_path).shape[:2]
    if mask.shape[:2] != want:
        raise NSTError(f"mask {path}: {mask.shape[1]}×{mask.shape[0]} px, but its image {image_path} is "
                       f"{want[1]}×{want[0]} px; masks must have their image's size")
    return image.resize(mask, size).mean(axis=-1)


def load_inputs(cfg: Config) -> Inputs:
    """Content resized to `size` on its longer side; styles to `style_scale` × that size; masks and
    an --init image file at their images' sizes."""
    content = image.load_image(cfg.content)
    original = content.shape[:2]
    h, w = image.fit_size(original, cfg.size)
    content = image.resize(content, (h, w))
    styles = []
    for path in cfg.styles:
        style = image.load_image(path)
        longest = max(1, round(max(h, w) * cfg.style_scale))
        styles.append(image.resize(style, image.fit_size(style.shape[:2], longest)))
    check_sizes(cfg, content, styles)
    cm = sm = None
    if cfg.content_masks is not None:
        cm = [_load_mask(p, cfg.content, (h, w)) for p in cfg.content_masks]
        if cfg.style_masks is not None:
            sm = [_load_mask(p, sp, s.shape[:2]) for p, sp, s in zip(cfg.style_masks, cfg.styles, styles)]
    init = None if cfg.init in INITS else image.resize(image.load_image(cfg.init), (h, w))
    temporal = None if cfg.temporal is None else load_temporal(cfg.temporal, (h, w))
    return Inputs(content, styles, cm, sm, init, original, temporal)


MAX_TEMPORAL_FRAMES = 16


def load_temporal(path: str, size: tuple[int, int]) -> np.ndarray:
    """A --temporal file, checked as untrusted input: a float .npy (J, H, W, 4) at the run's size, each
    of its J earlier frames an RGB image in [0, 1] warped to this frame and its consistency weights in
    [0, 1] (the last channel)."""
    want = f"(J, {size[0]}, {size[1]}, 4) for this run's {size[1]}×{size[0]} px"

    def accept(dtype, shape):
        if dtype.kind != "f" or len(shape) != 4:
            return f"expected a float array {want}, got {dtype} {shape}"
        if shape[1:] != (*size, 4) or not 1 <= shape[0] <= MAX_TEMPORAL_FRAMES:
            return f"shape {shape}, expected {want}, 1 ≤ J ≤ {MAX_TEMPORAL_FRAMES}"
        return None
    data = untrusted.load_npy(path, "--temporal", accept).astype(np.float32)
    if not np.all(np.isfinite(data)) or data.min() < 0 or data.max() > 1:
        raise NSTError(f"--temporal {path}: values must be finite and in [0, 1]")
    return data


def check_sizes(cfg: Config, content: np.ndarray, styles: list[np.ndarray]) -> None:
    """Every image must reach the deepest layer it is used at with at least 1×1 features."""
    checks = [("content image " + cfg.content, content, cfg.content_layers + cfg.style_layers)]
    checks += [("style image " + p, s, cfg.style_layers) for p, s in zip(cfg.styles, styles)]
    for what, img, names in checks:
        need = vgg.min_input_side(names)
        if min(img.shape[:2]) < need:
            deepest = max(names, key=vgg.depth_index)
            raise NSTError(f"{what}: {img.shape[1]}×{img.shape[0]} px after resizing is too small for "
                           f"layer {deepest} (needs at least {need} px per side); raise --size "
                           f"or --style-scale, or use shallower layers")


def initial_image(cfg: Config, content: np.ndarray, styles: list[np.ndarray], prep,
                  init_image: np.ndarray | None = None) -> np.ndarray:
    """The starting image (H, W, C) for cfg.init, C as the content's (3, or 1 for luminance)."""
    shape = content.shape
    if cfg.init == "noise":
        return np.asarray(jax.random.uniform(jax.random.PRNGKey(cfg.seed), shape, jnp.float32))
    if cfg.init == "white":
        return np.ones(shape, np.float32)
    if cfg.init == "black":
        return np.zeros(shape, np.float32)
    if cfg.init == "mean":
        mean = mean_rgb(prep)
        mean = mean if shape[-1] == 3 else image.rgb_to_yiq(mean)[..., :1]
        return np.broadcast_to(mean, shape).astype(np.float32)
    if cfg.init == "content":
        return content.copy()
    if cfg.init in ("style", "average"):
        style0 = _resize_any(styles[0], shape[:2])
        return style0 if cfg.init == "style" else 0.5 * (content + style0)
    return as_variable(init_image, shape[-1])


def as_variable(img: np.ndarray, channels: int) -> np.ndarray:
    """An RGB image (H, W, 3) as the optimised variable: itself, or its luminance (H, W, 1)."""
    return img if channels == 3 else image.rgb_to_yiq(img)[..., :1]
