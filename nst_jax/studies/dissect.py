"""`nst-jax dissect …`: take the transfer apart (the results sections of *Dissecting Neural
Style Transfer*, Xi Du, ANU).

    content  — reconstructions from white noise matching one layer's features (Gatys et al. 2016, Fig. 1 top)
    style    — reconstructions matching the style statistics of growing layer sets (Fig. 1 bottom)
    views    — top channels of a layer's feature maps and its Gram matrix, for content, style and a result
    reduce   — network reduction (`studies.pruning`): rank each layer's channels by a criterion, remove the
               lowest-ranked fraction physically (smaller kernels), rerun the transfer, measure the result
               with the full network

Every command writes PNG figures, a markdown table where there is one, and appends its command line
(with the seed) to `commands.txt` in its output folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from nst_jax.files import untrusted
from nst_jax.model import vgg
from nst_jax.transfer.config import with_preset
from nst_jax.transfer.options import add_argument, add_common_arguments
from nst_jax.base.errors import ArgumentParser, NSTError, cli
from nst_jax.files.fileio import save_figure
from nst_jax.files.fileio import write_json, write_text
from nst_jax.files.image import psnr
from nst_jax.studies.pruning import CRITERIA, reduce_network

CONTENT_LAYERS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
STYLE_SETS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.9)


def _fractions(text: str) -> list[float]:
    try:
        values = [float(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise NSTError(f"--fractions must be comma-separated numbers in [0, 1), got {text!r}") from None
    if not values or not all(0 <= v < 1 for v in values):
        raise NSTError(f"--fractions must be comma-separated numbers in [0, 1), got {text!r}")
    return values


def _record(out: Path) -> None:
    """Append the command (which holds the seed) to out/commands.txt, once."""
    out.mkdir(parents=True, exist_ok=True)
    line = "nst-jax dissect " + " ".join(sys.argv[1:]) + "\n"
    path = out / "commands.txt"
    old = untrusted.read_bytes(path, "command record").decode(errors="replace") if path.exists() else ""
    if line not in old:
        write_text(path, old + line)


# ----------------------------------------------------------------------------------- reconstructions

def reconstruct_content(image_path: str, layers: Sequence[str], out: Path, size: int, iterations: int,
                        seed: int = 0, weights=None) -> list:
    """From white noise, match only one layer's features of the image, for each layer."""
    from nst_jax.transfer.runs import run
    results = []
    for layer in layers:
        cfg = with_preset("default", content=image_path, styles=(image_path,), size=size, iterations=iterations,
                          content_layers=(layer,), style_layers=(), style_weight=0.0, tv_weight=0.0,
                          init="noise", seed=seed, output=str(out / "runs" / f"content_{layer}.png"),
                          checkpoint_every=0, checkpoint_minutes=0, print_every=0)
        results.append((layer, run(cfg, progress=False, loaded_weights=weights)))
    return results


def reconstruct_style(image_path: str, last_layers: Sequence[str], out: Path, size: int, iterations: int,
                      statistic: str = "gram", seed: int = 0, weights=None) -> list:
    """From white noise, match only the style statistics of relu1_1 … up to each of `last_layers`."""
    from nst_jax.transfer.runs import run
    results = []
    for i, last in enumerate(last_layers):
        layers = tuple(last_layers[: i + 1])
        cfg = with_preset("default", content=image_path, styles=(image_path,), size=size, iterations=iterations,
                          content_layers=(), style_layers=layers, content_weight=0.0, style_weight=1.0,
                          tv_weight=0.0, style_statistic=statistic, init="noise", seed=seed,
                          output=str(out / "runs" / f"style_{last}.png"), checkpoint_every=0,
                          checkpoint_minutes=0, print_every=0)
        results.append((f"{layers[0]}…{last}" if len(layers) > 1 else last, run(cfg, progress=False,
                                                                                   loaded_weights=weights)))
    return results


# --------------------------------------------------------------------------------------------- views

def layer_view(params, prep, img: np.ndarray, layer: str, top: int = 16):
    """(top channels' maps (top, h, w) ordered by mean activation, their indices, Gram (C, C))."""
    from nst_jax.objective.losses import gram
    from nst_jax.model.preprocessing import preprocess
    f = np.asarray(vgg.features(params, preprocess(img[None], prep), [layer])[layer])[0]
    order = np.argsort(-f.mean(axis=(0, 1)), kind="stable")[:top]
    return f[..., order].transpose(2, 0, 1), order, np.asarray(gram(f[None]))[0]


# ---------------------------------------------------------------------------------------------- CLI

def _grid(panels, path: Path, title: str, columns: int) -> None:
    from nst_jax.studies.gallery import figure
    figure(panels, path, title, columns)


@cli
def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="nst-jax dissect", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    for name in ("content", "style", "views", "reduce"):
        s = sub.add_parser(name)
        add_common_arguments(s, size=256, iterations=200, style_nargs=None)
        s.add_argument("--image", dest="content", default=argparse.SUPPRESS,
                       help="the image to reconstruct (same as --content)")
        s.add_argument("-o", "--out", default="docs/dissect", help="output folder (default: docs/dissect)")
    sub.choices["content"].add_argument("--layers", default=",".join(CONTENT_LAYERS),
                                        help="one reconstruction per layer (default: %(default)s)")
    sub.choices["style"].add_argument("--layers", default=",".join(STYLE_SETS),
                                      help="reconstructions from relu1_1 up to each of these (default: %(default)s)")
    add_argument(sub.choices["style"], "style_statistic", "gram")
    sub.choices["views"].add_argument("--layer", default="relu3_1", help="the layer to show (default: %(default)s)")
    sub.choices["views"].add_argument("--result", default=None, help="a result image to show beside them")
    sub.choices["reduce"].add_argument("--criteria", default=",".join(CRITERIA),
                                       help="channel rankings, comma-separated (default: %(default)s)")
    sub.choices["reduce"].add_argument("--fractions", default=",".join(map(str, FRACTIONS)),
                                       help="fractions of channels removed (default: %(default)s)")
    args = p.parse_args(argv)
    criteria = [c for c in getattr(args, "criteria", "").split(",") if c]
    for c in criteria:
        if c not in CRITERIA:
            raise NSTError(f"unknown criterion {c!r}; choose from {', '.join(CRITERIA)}")
    from nst_jax.transfer.planning import check_memory  # the sizes and the memory, checked before anything is written
    check_memory(with_preset("default", content=args.content, styles=(args.styles,), size=args.size,
                             iterations=args.iterations, seed=args.seed), f"dissect {args.what} at --size {args.size}")
    out = Path(args.out)
    _record(out)
    if args.what == "content":
        layers = vgg.resolve_all(args.layers.split(","))
        res = reconstruct_content(args.content, layers, out, args.size, args.iterations, args.seed)
        from nst_jax.files.image import fit_size, load_image, resize
        img = load_image(args.content)
        img = resize(img, fit_size(img.shape[:2], args.size))
        panels = [("image", img, "")] + [(l, r.image, f"PSNR {psnr(r.image, img):.1f} dB") for l, r in res]
        _grid(panels, out / "content_reconstructions.png",
              f"Content reconstructions from white noise, {args.iterations} L-BFGS iterations, seed {args.seed}",
              len(panels))
    elif args.what == "style":
        layers = vgg.resolve_all(args.layers.split(","))
        res = reconstruct_style(args.styles, layers, out, args.size, args.iterations, args.style_statistic,
                                args.seed)
        from nst_jax.files.image import fit_size, load_image, resize
        img = load_image(args.styles)
        panels = [("style", resize(img, fit_size(img.shape[:2], args.size)), "")] + \
                 [(l, r.image, f"style loss {r.parts['style']:.3g}") for l, r in res]
        _grid(panels, out / "style_reconstructions.png",
              f"Style reconstructions ({args.style_statistic}) from white noise, {args.iterations} "
              f"iterations, seed {args.seed}", len(panels))
    elif args.what == "views":
        write_views(args, out)
    else:
        rows = reduce_network(args.content, args.styles, out, args.size, args.iterations,
                              criteria, _fractions(args.fractions), args.seed)
        write_reduction(rows, out, args)
    return 0


def write_views(args, out: Path) -> None:
    from nst_jax.studies.figures import pyplot
    plt = pyplot()

    from nst_jax.model import weights as vgg_weights
    from nst_jax.files.image import fit_size, load_image, resize

    w = vgg_weights.load()
    layer = vgg.resolve(args.layer)
    named = [("content", args.content), ("style", args.styles)] + ([("result", args.result)] if args.result else [])
    fig, axes = plt.subplots(len(named), 3, figsize=(13, 4.2 * len(named)), squeeze=False)
    for row, (label, path) in enumerate(named):
        img = load_image(path)
        img = resize(img, fit_size(img.shape[:2], args.size))
        maps, order, g = layer_view(w.params, w.preprocessing, img, layer)
        axes[row, 0].imshow(img)
        axes[row, 0].set_title(f"{label}: {Path(path).name}")
        h, wd = maps.shape[1:]
        tiles = np.zeros((4 * h + 3, 4 * wd + 3))
        for i, m in enumerate(maps[:16]):
            r, c = divmod(i, 4)
            tiles[r * (h + 1): r * (h + 1) + h, c * (wd + 1): c * (wd + 1) + wd] = m / max(m.max(), 1e-12)
        axes[row, 1].imshow(tiles, cmap="magma")
        axes[row, 1].set_title(f"{layer}: 16 most active channels {[int(i) for i in order[:4]]}…", fontsize=9)
        im = axes[row, 2].imshow(np.log1p(np.maximum(g, 0.0)), cmap="viridis")
        axes[row, 2].set_title(f"log(1 + Gram) of {layer} ({g.shape[0]}×{g.shape[0]})", fontsize=9)
        fig.colorbar(im, ax=axes[row, 2], fraction=0.046)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out / f"views_{layer}.png", dpi=100)
    plt.close(fig)


def write_reduction(rows: list[dict], out: Path, args) -> None:
    from nst_jax.files.image import load_image
    lines = ["| criterion | removed | channels kept | s / iteration | full-network style loss | "
             "full-network content loss | total |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['criterion']} | {r['fraction']:.0%} | {r['channels_kept']} | "
                     f"{r['seconds_per_iteration']:.3f} | {r['full_style']:.4g} | {r['full_content']:.4g} | "
                     f"{r['full_loss']:.4g} |")
    write_text(out / "reduction.md",
        f"Network reduction at {args.size} px, {args.iterations} L-BFGS iterations, seed {args.seed}; losses of "
        f"each result measured by the full network with the default objective.\n\n" + "\n".join(lines) + "\n")
    write_json(out / "reduction.json", rows)
    panels = [(f"{r['criterion']} −{r['fraction']:.0%}", load_image(r["image"]),
               f"style {r['full_style']:.3g} · {r['seconds_per_iteration']:.2f} s/it") for r in rows]
    fracs = sorted({r["fraction"] for r in rows})
    _grid(panels, out / "reduction.png", "Network reduction: results by criterion (rows) and fraction removed",
          len(fracs))
