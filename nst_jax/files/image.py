"""Images in and out: read any format Pillow knows, normalise to float32 RGB in [0, 1], resize, save.

Inside nst_jax an image is a float32 array (H, W, 3), RGB, values in [0, 1]; a batch adds a leading
axis. Reading applies the EXIF orientation and converts every mode to RGB: grayscale and palette
directly, RGBA/LA/transparent palettes composited on white, CMYK through Pillow's conversion and
16/32-bit integer or float images by their own range (not by clipping to 8 bits). Saving writes
atomically (temporary file, then rename) and can embed text (the run's parameters) in a PNG chunk.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import atomic_write_bytes

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


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise NSTError(f"image {path}: not found")
    if not path.is_file():
        raise NSTError(f"image {path}: not a regular file")
    return path


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 RGB (H, W, 3) in [0, 1]; `NSTError` for anything unreadable."""
    path = _existing_file(path)
    return _decode(path, path)


def decode_png(data: bytes, name: str | os.PathLike, longest: int | None = None) -> np.ndarray:
    """A PNG file's bytes (one nst_jax wrote, read back as untrusted input) decoded as `load_image` decodes
    a file; with `longest`, refused from its header, before it is decoded, unless its longest side is that.
    `name` names it in the message."""
    def check(im):
        if longest is not None and max(im.size) != longest:
            raise NSTError(f"image {name}: {im.size[0]}×{im.size[1]}, not {longest} px on its longest side")
    return _decode(io.BytesIO(data), name, ["PNG"], check)


def _decode(source, path, formats=None, check=lambda im: None) -> np.ndarray:
    try:
        with warnings.catch_warnings():  # a decompression-bomb warning becomes this one error line
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=formats) as im:
                check(im)
                im.load()
                im = ImageOps.exif_transpose(im)
                arr = _to_float_rgb(im)
    except Image.DecompressionBombWarning as err:
        raise NSTError(f"image {path}: too large to read safely ({str(err).split('.')[0]}); "
                       f"resize it first") from None
    except UnidentifiedImageError:
        raise NSTError(f"image {path}: not an image file Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, Image.DecompressionBombError) as err:
        raise NSTError(f"image {path}: unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise NSTError(f"image {path}: empty image")
    return np.ascontiguousarray(arr)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file as `load_image` would return it, read from its header only."""
    path = _existing_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                orientation = im.getexif().get(0x0112, 1)
    except UnidentifiedImageError:
        raise NSTError(f"image {path}: not an image file Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise NSTError(f"image {path}: unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two images in [0, 1] (clipped); inf when equal."""
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


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


def png_bytes(img: np.ndarray, compress_level: int | None = None) -> bytes:
    """Float RGB in [0, 1] (clipped) as PNG bytes, no text chunks: the same image gives the same bytes
    (`compress_level` None: Pillow's default; 1 is fast, for a live view)."""
    import io
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="PNG",
                                        **({} if compress_level is None else {"compress_level": compress_level}))
    return buf.getvalue()


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


# ------------------------------------------------------------------------------------------- colour
# Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural Artistic Style Transfer".

RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]], np.float64)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


def rgb_to_yiq(img: np.ndarray) -> np.ndarray:
    """RGB (…, 3) → YIQ (NTSC): Y = 0.299R + 0.587G + 0.114B is the luminance."""
    return (np.asarray(img, np.float64) @ RGB_TO_YIQ.T).astype(np.float32)


def yiq_to_rgb(img: np.ndarray) -> np.ndarray:
    """YIQ (…, 3) → RGB, the exact inverse of `rgb_to_yiq` (not clipped)."""
    return (np.asarray(img, np.float64) @ YIQ_TO_RGB.T).astype(np.float32)


def match_luminance(style_y: np.ndarray, content_y: np.ndarray) -> np.ndarray:
    """Style luminance shifted and scaled to the content luminance's mean and standard deviation."""
    s, c = np.asarray(style_y, np.float64), np.asarray(content_y, np.float64)
    return ((s - s.mean()) * (c.std() / max(s.std(), 1e-8)) + c.mean()).astype(np.float32)


def _sym_power(cov: np.ndarray, power: float) -> np.ndarray:
    w, v = np.linalg.eigh(cov)
    return (v * np.clip(w, 1e-10, None) ** power) @ v.T


def match_color_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Style colours x' = A x + b with the content's colour mean and covariance: A Σ_S Aᵀ = Σ_C via the
    symmetric square roots A = Σ_C^½ Σ_S^-½, b = μ_C − A μ_S (not clipped, so the moments match exactly)."""
    s = np.asarray(style, np.float64).reshape(-1, 3)
    c = np.asarray(content, np.float64).reshape(-1, 3)
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = np.cov(s, rowvar=False, bias=True) + 1e-8 * np.eye(3)
    cov_c = np.cov(c, rowvar=False, bias=True) + 1e-8 * np.eye(3)
    a = _sym_power(cov_c, 0.5) @ _sym_power(cov_s, -0.5)
    return ((s - mu_s) @ a.T + mu_c).reshape(np.shape(style)).astype(np.float32)
