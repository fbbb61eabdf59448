"""`python -m nst_jax.run CONTENT STYLE [STYLE …]`: neural style transfer from the command line.

Parses arguments into one frozen Config and hands it to `transfer.run`. User errors print one line
(`error: …`) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from nst_jax.config import INITS, PRESETS, Config, with_preset
from nst_jax.errors import cli
from nst_jax.solvers import SOLVERS
from nst_jax.statistics import NAMES as STATISTIC_NAMES
from nst_jax.vgg import POOLINGS

_D = Config(content="", styles=())


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nst_jax.run",
        description="Neural style transfer (Gatys et al. 2016) in JAX: optimise an image so that its "
                    "VGG19 features match the content image and its Gram matrices match the style image(s).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("content", help="content image (any format Pillow reads)")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s); several are blended")
    p.add_argument("-o", "--output", default=_D.output, help="result image; its .json, .losses.jsonl "
                   "and .ckpt.npz are written beside it")
    p.add_argument("--size", type=int, default=_D.size, help="longest side of the result in pixels")
    p.add_argument("--iterations", type=int, default=_D.iterations, help="iterations to reach "
                   "(a rerun continues from the checkpoint)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="layers and weights: 'default' (relu4_2 / relu1_1…relu5_1) or 'tutorial' "
                        "(PyTorch tutorial: conv_4 / conv_1…conv_5)")
    p.add_argument("--style-weight", type=float, default=None,
                   help=f"k, the weight of the style loss (default: the preset's, {PRESETS['default']['style_weight']:g})")
    p.add_argument("--content-weight", type=float, default=_D.content_weight, help="weight of the content loss")
    p.add_argument("--tv-weight", type=float, default=None,
                   help=f"weight of total variation (default: the preset's, {PRESETS['default']['tv_weight']:g})")
    p.add_argument("--content-layers", type=_names, default=None,
                   help="comma-separated layer names, either scheme (default: the preset's)")
    p.add_argument("--style-layers", type=_names, default=None,
                   help="comma-separated layer names, either scheme (default: the preset's)")
    p.add_argument("--style-layer-weights", type=_floats, default=None,
                   help="one weight per style layer (default: 1/number of layers each)")
    p.add_argument("--style-blend-weights", type=_floats, default=None,
                   help="one weight per style image, normalised to sum 1 (default: equal)")
    p.add_argument("--style-scale", type=float, default=_D.style_scale,
                   help="style images are resized to this × the content's size")
    p.add_argument("--style-statistic", default=_D.style_statistic, choices=STATISTIC_NAMES,
                   help="how style is described without positions (see nst_jax/statistics.py); "
                        "random ones use a fixed key per L-BFGS run and a new key per Adam step")
    p.add_argument("--original-colors", default=_D.original_colors, choices=("none", "luminance", "histogram"),
                   help="keep the content's colours: 'luminance' optimises luminance only and takes the "
                        "content's chrominance (YIQ); 'histogram' matches the style's colour mean and "
                        "covariance to the content's before the run")
    p.add_argument("--content-mask", nargs="+", default=None, metavar="MASK",
                   help="one mask per style image (white = where that style goes; same size as the "
                        "content image): spatial control as in Gatys et al. 2017")
    p.add_argument("--style-mask", nargs="+", default=None, metavar="MASK",
                   help="one mask per style image: the style's statistics are taken over it")
    p.add_argument("--scales", type=_ints, default=None,
                   help="coarse to fine, e.g. 256,512: optimise at each size, the upsampled result "
                        "initialising the next (default: only --size)")
    p.add_argument("--scale-iterations", type=_ints, default=None,
                   help="iterations at each scale (default: --iterations at each)")
    p.add_argument("--init", default=_D.init, help=f"initial image: {', '.join(INITS)} or a file")
    p.add_argument("--optimizer", default=_D.optimizer, choices=SOLVERS, help="solver")
    p.add_argument("--lr", type=float, default=None, help="step size (default: 1 for L-BFGS, 0.02 for Adam)")
    p.add_argument("--history", type=int, default=_D.history, help="L-BFGS history size")
    p.add_argument("--pooling", default=_D.pooling, choices=POOLINGS, help="VGG pooling")
    p.add_argument("--seed", type=int, default=_D.seed, help="seed of the noise initial image")
    p.add_argument("--weights", default=None, help="weights file (default: the embedded Caffe VGG19)")
    p.add_argument("--save-every", type=int, default=_D.save_every, help="save an intermediate image "
                   "every N iterations (0: never)")
    p.add_argument("--print-every", type=int, default=_D.print_every, help="update the losses shown "
                   "every N iterations")
    p.add_argument("--checkpoint-every", type=int, default=_D.checkpoint_every,
                   help="write the solver state every N iterations (0: only at the end)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    return with_preset(
        args.preset, content=args.content, styles=tuple(args.styles), output=args.output,
        size=args.size, iterations=args.iterations, style_weight=args.style_weight,
        content_weight=args.content_weight, tv_weight=args.tv_weight,
        content_layers=args.content_layers, style_layers=args.style_layers,
        style_layer_weights=args.style_layer_weights, style_blend_weights=args.style_blend_weights,
        style_scale=args.style_scale, style_statistic=args.style_statistic,
        original_colors=args.original_colors,
        content_masks=tuple(args.content_mask) if args.content_mask else None,
        style_masks=tuple(args.style_mask) if args.style_mask else None, scales=args.scales, scale_iterations=args.scale_iterations,
        init=args.init, optimizer=args.optimizer, lr=args.lr,
        history=args.history, pooling=args.pooling, seed=args.seed, weights=args.weights,
        save_every=args.save_every, print_every=args.print_every,
        checkpoint_every=args.checkpoint_every)


@cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        from nst_jax.transfer import run, run_multiscale  # imports JAX: after the cheap argument checks
        if cfg.scales:
            result = run_multiscale(cfg, progress=not args.quiet, restart=args.restart)[-1]
        else:
            result = run(cfg, progress=not args.quiet, restart=args.restart)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; run the same command to continue", file=sys.stderr)
        return 130
    p = result.parts
    print(f"wrote {result.paths['image']} after {result.iteration} iterations in {result.seconds:.1f} s: "
          f"loss {result.loss:.6g} (content {p['content']:.4g}, style {p['style']:.4g}, tv {p['tv']:.4g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
