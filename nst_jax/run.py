"""`python -m nst_jax.run CONTENT STYLE [STYLE …]`: neural style transfer from the command line.

The parser is generated from `Config`'s field metadata (`config.add_run_arguments`); the parsed
values become one frozen Config handed to `transfer.run`. User errors print one line (`error: …`)
and exit with status 2.
"""

from __future__ import annotations

import argparse

from nst_jax.config import add_run_arguments, config_from_args
from nst_jax.errors import ArgumentParser, cli, exit_with


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m nst_jax.run",
        description="Neural style transfer (Gatys et al. 2016) in JAX: optimise an image so that its "
                    "VGG19 features match the content image and its Gram matrices match the style image(s).")
    add_run_arguments(p)
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


@cli(interrupted="the image so far is written to the output (its sidecar says 'interrupted') and the last "
                 "checkpoint is kept; run the same command to continue")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    from nst_jax.transfer import run, run_multiscale  # imports the solvers' programs: after the checks
    if cfg.scales:
        result = run_multiscale(cfg, progress=not args.quiet, restart=args.restart)[-1]
    else:
        result = run(cfg, progress=not args.quiet, restart=args.restart)
    p = result.parts
    if result.note:
        print(f"{result.paths['image']}: {result.note} (loss {result.loss:.6g}); nothing to do — a larger "
              f"--iterations continues, --restart starts over")
        return 0
    print(f"wrote {result.paths['image']} after {result.iteration} iterations in {result.seconds:.1f} s: "
          f"loss {result.loss:.6g} (content {p['content']:.4g}, style {p['style']:.4g}, tv {p['tv']:.4g})")
    return 0


if __name__ == "__main__":
    exit_with(main)
