"""An image sent by the page, checked before it is kept: its size is capped in bytes and, read from its
header before anything is decoded, in pixels (a small PNG can claim 9400×9400 pixels, gigabytes once
decoded); at most `DECODERS` uploads are decoded at once; its name is only shown (never used as a path,
and refused if it looks like one or holds markup), and its bytes must decode with the same loader as
the command line's (`image.load_image`). It is stored under its digest.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import threading
import warnings

from PIL import Image

from nst_jax.base.errors import NSTError
from nst_jax.files.image import load_image
from nst_jax.apps.studio.folder import SUFFIXES, StudioFolder

MAX_BYTES = 32 * 2**20
MAX_PIXELS = 40_000_000        # 40 megapixels: about 0.5 GB once decoded as float32 RGB
DECODERS = threading.BoundedSemaphore(2)
NAME = re.compile(r"[^\x00-\x1f\x7f/\\<>:\"|?*]{1,120}")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name) or name.startswith(".") or name.strip() != name:
        raise NSTError("refused: a file name with a path, markup or control characters; rename the file "
                       "(letters, digits, spaces and . - _ ( ) are fine)")
    return name


def check_pixels(data: bytes) -> None:
    """Refuse an image whose header claims more than `MAX_PIXELS` (nothing is decoded here; bytes that are not
    an image Pillow knows are left to the loader, which says so)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                size = "{}×{} pixels".format(*im.size) if im.size[0] * im.size[1] > MAX_PIXELS else None
    except Image.DecompressionBombError:   # Pillow's own cap, far above this one
        size = "its size"
    except Exception:   # noqa: BLE001 - not an image, or a damaged header: the loader gives its message
        return
    if size is not None:
        raise NSTError(f"refused: {size} is over the studio's limit of {MAX_PIXELS // 10**6} megapixels; "
                       f"resize it first")


def accept(folder: StudioFolder, name: str, data: bytes, max_bytes: int = MAX_BYTES) -> dict:
    """Keep an uploaded image; returns {"id", "name", "height", "width"}; NSTError (a sentence for the page)
    if it is refused."""
    check_name(name)
    if len(data) > max_bytes:
        raise NSTError(f"refused: {len(data) / 2**20:.1f} MB is over the studio's limit of {max_bytes / 2**20:.0f} MB")
    if not data:
        raise NSTError("refused: the file is empty")
    check_pixels(data)
    fd, tmp = tempfile.mkstemp(prefix=".upload.", suffix=".tmp", dir=folder.uploads)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            with DECODERS:
                rgb = load_image(tmp)
            with Image.open(tmp) as im:
                kind = im.format
        except NSTError as err:
            raise NSTError("refused: " + str(err).replace(f"image {tmp}: ", "")) from None
    finally:
        os.unlink(tmp)
    if kind not in SUFFIXES:
        raise NSTError(f"refused: {kind} images are not taken here; use PNG, JPEG, TIFF, BMP, WebP or GIF")
    upload_id = hashlib.sha256(data).hexdigest()[:16]
    record = {"name": name, "height": int(rgb.shape[0]), "width": int(rgb.shape[1])}
    if folder.upload_record(upload_id) is None:
        folder.add_upload(upload_id, SUFFIXES[kind], data, record)
    return {"id": upload_id, **(folder.upload_record(upload_id) or record)}
