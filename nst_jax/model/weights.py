"""VGG19 weights: the HDF5 layout and loading with verification (converters: `nst_jax.model.convert`).

Layout of a weights file (format `nst_jax.vgg19`, version 1):

    /                      attributes: format, format_version, source, source_file, source_sha256,
                           license, channel_order ('RGB'|'BGR'), pixel_scale (1 or 255),
                           mean[3], std[3] (in the model's channel order and pixel scale),
                           payload_sha256 (of every dataset's name, dtype, shape and bytes)
    /conv1_1 … /conv5_4    one group per convolution, holding either
        kernel             float32|float16, HWIO (3, 3, in, out)
      or
        kernel_codes       uint8 HWIO codes into ...
        kernel_codebook    float32[256]       (the weight is codebook[codes])
        bias               float32 (out,)

Preprocessing belongs to the weights: users pass RGB in [0, 1]; `preprocessing.preprocess` turns
that into what the network was trained on (channel order, scale, mean, std) as recorded in the file.
The model (`vgg.py`) never touches disk; this module asserts the loaded tree against
`vgg.param_shapes()`. Writing files, converting other projects' weights and the command line
(`nst-jax convert info|verify|convert …`) live in `nst_jax.model.convert`.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nst_jax.base.errors import NSTError
from nst_jax.model.preprocessing import Preprocessing
from nst_jax.model.vgg import CONV_NAMES, param_shapes

FORMAT = "nst_jax.vgg19"
FORMAT_VERSION = 1
DEFAULT_NAME = "vgg19_caffe_q8.h5"
DEFAULT_SHA256 = "45cf9d9f7fd8273cbb52401a17f9be8b744708da24094ae7af722b96aa86afb2"



class Weights(NamedTuple):
    """Loaded weights: the Flax parameter tree, the preprocessing, and the file's attributes."""

    params: dict[str, dict[str, np.ndarray]]
    preprocessing: Preprocessing
    info: dict[str, Any]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_path() -> Path:
    """Where the embedded weights live: the repository's weights/ or the installed share/ folder."""
    candidates = [Path(__file__).resolve().parent.parent.parent / "weights" / DEFAULT_NAME,
                  Path(sysconfig.get_path("data")) / "share" / "nst_jax" / "weights" / DEFAULT_NAME]
    for path in candidates:
        if path.is_file():
            return path
    return candidates[0]


def payload_digest(groups: dict[str, dict[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for layer in CONV_NAMES:
        for key in sorted(groups.get(layer, {})):
            arr = np.ascontiguousarray(groups[layer][key])
            digest.update(f"{layer}/{key}:{arr.dtype.str}:{arr.shape}".encode())
            digest.update(arr.tobytes())
    return digest.hexdigest()


def _read_file(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    import h5py

    if not path.exists():
        raise NSTError(f"weights file {path}: not found")
    if not path.is_file():
        raise NSTError(f"weights file {path}: not a regular file")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            if attrs.get("format") != FORMAT:
                raise NSTError(f"weights file {path}: not an nst_jax VGG19 weights file "
                               f"(format attribute {attrs.get('format')!r}); convert it with "
                               f"`nst-jax convert convert`")
            groups = {}
            for layer in CONV_NAMES:
                if layer not in f:
                    raise NSTError(f"weights file {path}: missing layer group {layer!r}")
                if not isinstance(f[layer], h5py.Group):
                    raise NSTError(f"weights file {path}: {layer!r} is not a layer group (a dataset in its place)")
                groups[layer] = {}
                for key, ds in f[layer].items():
                    if not isinstance(ds, h5py.Dataset):
                        raise NSTError(f"weights file {path}: {layer}/{key} is not a dataset")
                    arr = np.asarray(ds[()])
                    if arr.dtype.kind not in "fiu":
                        raise NSTError(f"weights file {path}: {layer}/{key} holds {arr.dtype} values, not numbers")
                    groups[layer][key] = arr
    except NSTError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise NSTError(f"weights file {path}: not a readable HDF5 weights file "
                       f"(truncated or corrupt?): {str(err).splitlines()[0]}") from None
    return groups, attrs


def _decode(path: Path, groups: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    expected = param_shapes()
    params = {}
    for layer in CONV_NAMES:
        g = groups[layer]
        if "kernel" in g:
            kernel = g["kernel"].astype(np.float32)
        elif "kernel_codes" in g and "kernel_codebook" in g:
            codes, book = g["kernel_codes"], g["kernel_codebook"].astype(np.float32)
            if codes.dtype != np.uint8 or book.shape != (256,):
                raise NSTError(f"weights file {path}: layer {layer}: codes must be uint8 with a "
                               f"float32[256] codebook, got {codes.dtype} and {book.shape}")
            kernel = book[codes]
        else:
            raise NSTError(f"weights file {path}: layer {layer}: no 'kernel' or 'kernel_codes' dataset")
        if "bias" not in g:
            raise NSTError(f"weights file {path}: layer {layer}: no 'bias' dataset")
        bias = g["bias"].astype(np.float32)
        for key, arr in (("kernel", kernel), ("bias", bias)):
            if arr.shape != expected[layer][key]:
                raise NSTError(f"weights file {path}: layer {layer}: {key} has shape {arr.shape}, "
                               f"expected {expected[layer][key]}")
            if not np.all(np.isfinite(arr)):
                raise NSTError(f"weights file {path}: layer {layer}: {key} holds NaN or inf")
        params[layer] = {"kernel": kernel, "bias": bias}
    return params


def load(path: str | os.PathLike | None = None) -> Weights:
    """Load and verify a weights file (the embedded default when path is None).

    Checks: HDF5 readable, format, every layer present with the model's shapes, finite values, the
    payload checksum (detects edits), and for the embedded file its sha256.
    """
    path = default_path() if path is None else Path(path)
    if path == default_path() and path.is_file():
        actual = sha256_file(path)
        if actual != DEFAULT_SHA256:
            raise NSTError(f"weights file {path}: sha256 {actual} differs from the embedded weights' "
                           f"{DEFAULT_SHA256}; restore it with `git checkout weights/`")
    groups, attrs = _read_file(path)
    stored = attrs.get("payload_sha256")
    if stored != payload_digest(groups):
        raise NSTError(f"weights file {path}: payload checksum mismatch: the file was modified or "
                       f"corrupted after conversion")
    params = _decode(path, groups)
    try:
        prep = Preprocessing(str(attrs["channel_order"]), float(attrs["pixel_scale"]),
                             tuple(float(v) for v in attrs["mean"]), tuple(float(v) for v in attrs["std"]))
    except (KeyError, TypeError, ValueError):
        raise NSTError(f"weights file {path}: missing or malformed preprocessing attributes") from None
    if prep.channel_order not in ("RGB", "BGR") or len(prep.mean) != 3 or len(prep.std) != 3:
        raise NSTError(f"weights file {path}: bad preprocessing attributes {prep}")
    info = {k: v for k, v in attrs.items()}
    info["path"] = str(path)
    info["storage"] = "uint8 codes + codebook" if "kernel_codes" in groups["conv1_1"] else \
        str(groups["conv1_1"]["kernel"].dtype)
    return Weights(params, prep, info)

