"""Images in and out: read any format Pillow knows, normalise to float32 RGB in [0, 1], resize, save.

Inside nst_jax an image is a float32 array (H, W, 3), RGB, values in [0, 1]; a batch adds a leading
axis. Reading applies the EXIF orientation and converts every mode to RGB: grayscale and palette
directly, RGBA/LA/transparent palettes composited on white, CMYK through Pillow's conversion and
16/32-bit integer or float images by their own range (not by clipping to 8 bits). Saving writes
atomically (temporary file, then rename) and can embed text (the run's parameters) in a PNG chunk.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from nst_jax.errors import NSTError

SAMPLES = Path(__file__).resolve().parent / "samples"


def _to_float_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(im, dtype=np.float32) / 65535.0
        return np.repeat(arr[..., None], 3, axis=-1)
    if mode == "I":
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.repeat((np.clip(arr, 0, top) / top).astype(np.float32)[..., None], 3, axis=-1)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        top = 1.0 if arr.max(initial=0) <= 1.0 else (255.0 if arr.max() <= 255 else 65535.0)
        return np.repeat(np.clip(arr / top, 0, 1)[..., None], 3, axis=-1)
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    rgb = im.convert("RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 RGB (H, W, 3) in [0, 1]; `NSTError` for anything unreadable."""
    path = Path(path)
    if not path.exists():
        raise NSTError(f"image {path}: not found")
    if not path.is_file():
        raise NSTError(f"image {path}: not a regular file")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = _to_float_rgb(im)
    except UnidentifiedImageError:
        raise NSTError(f"image {path}: not an image file Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise NSTError(f"image {path}: unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise NSTError(f"image {path}: empty image")
    return np.ascontiguousarray(arr)


def fit_size(shape: tuple[int, int], longest: int) -> tuple[int, int]:
    """(H, W) scaled so that the longer side is `longest`, aspect kept, each side at least 1."""
    h, w = shape
    scale = longest / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float RGB (H, W, 3) to (h, w) with Lanczos filtering per channel in float precision."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img.astype(np.float32, copy=True)
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], np.float32), mode="F")
                        .resize((w, h), Image.LANCZOS)) for c in range(img.shape[-1])]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (clipped) to uint8, rounding to nearest."""
    return (np.clip(np.asarray(img, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def atomic_write_bytes(path: str | os.PathLike, write) -> None:
    """Call write(file_object) on a temp file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_image(path: str | os.PathLike, img: np.ndarray, text: Mapping[str, str] | None = None) -> None:
    """Save float RGB in [0, 1] (clipped) atomically; PNG files get `text` as tEXt chunks."""
    path = Path(path)
    arr = to_uint8(img)
    if arr.ndim == 4:
        arr = arr[0]
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise NSTError(f"output {path}: unknown image extension {path.suffix!r}; use .png or .jpg")
    pil = Image.fromarray(arr, "RGB")

    def write(f):
        if fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            for key, value in (text or {}).items():
                info.add_itxt(key, value)
            pil.save(f, format="PNG", pnginfo=info)
        else:
            pil.save(f, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))

    atomic_write_bytes(path, write)
