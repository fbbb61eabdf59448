"""`python -m nst_jax.run CONTENT STYLE [STYLE …]`: neural style transfer from the command line.

The parser is generated from `Config`'s field metadata (`options.add_run_arguments`); the parsed
values become one frozen Config handed to `transfer.run`. User errors print one line (`error: …`)
and exit with status 2.
"""

from __future__ import annotations

import argparse

from nst_jax.transfer.options import add_run_arguments, config_from_args
from nst_jax.base.errors import ArgumentParser, cli, exit_with
from nst_jax.transfer.progress import loss_text


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="nst-jax run",
        description="Neural style transfer (Gatys et al. 2016) in JAX: optimise an image so that its "
                    "VGG19 features match the content image and its Gram matrices match the style image(s).")
    groups = add_run_arguments(p)
    out, devices = groups["output and resume"], groups["memory and devices"]
    out.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    out.add_argument("--overwrite", action="store_true", help="replace files at the output's names that nst_jax "
                     "did not write (without it such a run is refused before it starts); the run starts over")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    out.add_argument("--web", nargs="?", const=0, type=int, metavar="PORT",
                     help="serve a live page of the run on 127.0.0.1 (the image at each --print-every, the losses, "
                          "the header, rate and ETA; PORT default: any free one); needs nst_jax[studio]")
    devices.add_argument("--plan", nargs="?", const="here", metavar="DEVICES",
                         help="print the memory plan (bytes by part for each --memory way, XLA's own figure, the "
                              "largest size each way fits) and exit; DEVICES plans for accelerators that are not "
                              "here, e.g. 8x80GB")
    devices.add_argument("--coordinator", metavar="HOST:PORT", help="one run across several processes or GPU "
                         "nodes (jax.distributed; see the docs' print-size page): the address of process 0, the "
                         "same for every process")
    devices.add_argument("--processes", type=int, default=1, help="how many processes take part (default 1)")
    devices.add_argument("--process-id", type=int, default=0, help="this process's number, 0 … processes − 1; "
                         "process 0 writes the files")
    return p


def join_processes(args, cfg):
    """Join a run of several processes (`hosts`); a process other than 0 writes its files into a
    private temporary folder, removed when it exits."""
    import atexit
    import dataclasses
    import shutil
    import tempfile
    from pathlib import Path

    from nst_jax.scale import hosts
    from nst_jax.base.errors import NSTError
    if not args.coordinator:
        raise NSTError("--processes needs --coordinator HOST:PORT (the address of process 0)")
    hosts.initialize(args.coordinator, args.processes, args.process_id)
    if hosts.is_writer():
        return cfg
    private = tempfile.mkdtemp(prefix=f"nst_jax-process{args.process_id}-")
    atexit.register(shutil.rmtree, private, True)
    args.quiet = True
    return dataclasses.replace(cfg, output=str(Path(private) / Path(cfg.output).name))


def keep_freed_memory_for(cfg) -> bool:
    """Freed memory kept in this process where the run's plan has room for the larger peak
    (`allocator.keep_freed_memory`)."""
    from nst_jax.machine import allocator
    from nst_jax.transfer import planning
    figure = planning.plan_run(cfg).figure
    return figure is not None and allocator.keep_freed_memory(figure.needed, figure.available)


@cli(interrupted="the image so far is written to the output (its sidecar says 'interrupted') and the last "
                 "checkpoint is kept; run the same command to continue",
     interrupted_early="stopped before the first step ended, so no image was written (a checkpoint from before "
                       "is kept); run the same command to start or continue")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from nst_jax.machine import command
    command.prepare()   # before anything allocates or compiles
    if args.coordinator or args.processes > 1:
        cfg = join_processes(args, config_from_args(args))
    else:
        cfg = config_from_args(args)
    if args.plan:
        from nst_jax.transfer.plan_table import main_report
        print(main_report(cfg, args.plan))
        return 0
    if not args.coordinator and args.processes <= 1:
        keep_freed_memory_for(cfg)
    from nst_jax.transfer.runs import run, run_multiscale  # imports the solvers' programs: after the checks
    from nst_jax.web import watching
    with watching(args.web, cfg.output) as watch:
        if cfg.scales:
            result = run_multiscale(cfg, progress=not args.quiet, restart=args.restart, watch=watch,
                                    overwrite=args.overwrite)[-1]
        else:
            result = run(cfg, progress=not args.quiet, restart=args.restart, watch=watch, overwrite=args.overwrite)
    if args.coordinator and args.process_id != 0:
        return 0  # process 0 reports
    if result.note:
        more = "a smaller --tol continues" if result.converged else "a larger --iterations continues"
        print(f"{result.paths['image']}: {result.note} (loss {result.loss:.6g}); nothing to do — {more}, "
              f"--restart starts over")
        return 0
    stopped = f" (stopped early: {cfg.stop_rule.describe()})" if result.converged else ""
    if result.image_iteration is not None:
        stopped += f"; kept the lowest-loss image, from iteration {result.image_iteration}"
    print(f"wrote {result.paths['image']} after {result.iteration} iterations in {result.seconds:.1f} s{stopped}: "
          f"{loss_text(result.loss, result.parts, cfg.loss_weights)}")
    return 0


if __name__ == "__main__":
    exit_with(main)
