"""`python -m nst_jax.sweep ITERATIONS`: a resumable grid of runs — the hyper-parameter experiments of
*Dissecting Neural Style Transfer* (Xi Du, ANU): initial images × style weights × iterations.

A grid (TOML or JSON: each key a Config field, each value a list; see `nst_jax.grid`) expands to
runs, each in its own folder `out/<name>/` holding `result.png` and its files (`nst_jax.runfiles`),
with intermediate images at 1, 2, 5, 10, 20, 50, … iterations. ITERATIONS is the target: a rerun with
a larger target continues every run from its checkpoint, the same target does nothing for finished
runs, an interrupted sweep resumes where it stopped, and deleting a run's files restarts that run
only. `--batch N` optimises up to N runs that share image size and layers at once (one vmapped
program, `transfer.run_many`); their files are the same as those of one-by-one runs. At the end the
HTML report is written (`python -m nst_jax.report out/`).

The default grid is the paper's: the seven initial images × k ∈ {10, 100, 1000} on the sample images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nst_jax.config import Config, add_argument, add_common_arguments
from nst_jax.errors import ArgumentParser, NSTError, cli, exit_with
from nst_jax.grid import expand, load_grid
from nst_jax.fileio import Lock, write_error
from nst_jax.runfiles import SWEEP_LOCK as LOCK, SWEEP_MANIFEST as MANIFEST, RunFiles, write_json


def sweep(iterations: int, grid: dict[str, list], out: Path, base: dict[str, Any], batch: int = 1,
          show_progress: bool = True) -> list[tuple[str, Config]]:
    """Run (or continue) every grid point to `iterations`; returns the runs. A run that fails is
    recorded in its folder (`result.error.txt`) and does not stop the others; NSTError at the end
    lists the failed runs. One process per sweep folder at a time (`sweep.lock`)."""
    runs = expand(grid, {"keep_checkpoint": True, **base, "iterations": iterations}, out)  # continuable
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(out, err) from None
    with Lock(out / LOCK, f"sweep folder {out}"):
        return _sweep_locked(iterations, runs, grid, out, base, batch, show_progress)


def _sweep_locked(iterations, runs, grid, out, base, batch, show_progress):
    from nst_jax import transfer
    from nst_jax import weights as vgg_weights
    from nst_jax.loop import log_schedule

    write_json(out / MANIFEST, {"grid": grid, "base": base, "iterations": iterations,
                                "runs": {name: str(Path(cfg.output).relative_to(out)) for name, cfg in runs}})
    todo = [(n, c) for n, c in runs if not RunFiles(c.output).finished(c.iterations)]
    total = sum(iterations - RunFiles(c.output).iteration_reached() for _, c in todo)
    bar = None
    if show_progress and total > 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc=f"sweep ({len(runs) - len(todo)}/{len(runs)} runs done)", unit="it",
                   file=sys.stderr)
    on_step = None if bar is None else (lambda it, alive, value, parts: bar.update(alive))
    w = vgg_weights.load(base.get("weights"))
    failures: list[str] = []
    done = len(runs) - len(todo)
    groups: dict[tuple, list] = {}
    for n, c in todo:
        groups.setdefault(transfer.batch_key(c), []).append((n, c))
    try:
        for members in groups.values():
            for start in range(0, len(members), max(1, batch)):
                chunk = members[start:start + max(1, batch)]
                if bar is not None:
                    bar.set_postfix_str(", ".join(n for n, _ in chunk)[:60])
                try:
                    results = transfer.run_many([c for _, c in chunk], loaded_weights=w, save_at=log_schedule,
                                                on_step=on_step)
                    errors = [r.error for r in results]
                except NSTError as err:  # a failure of the whole chunk (e.g. an image that cannot be read)
                    errors = [str(err)] * len(chunk)
                for (n, c), error in zip(chunk, errors):
                    files = RunFiles(c.output)
                    if error is None:
                        files.clear_error()
                        done += 1
                    else:
                        failures.append(n)
                        files.write_error(error)
                        print(f"warning: {n}: {error}", file=sys.stderr)
                if bar is not None:
                    bar.set_description(f"sweep ({done}/{len(runs)} runs done)")
    finally:
        if bar is not None:
            bar.close()
    if failures:
        raise NSTError(f"{len(failures)} run(s) failed (see result.error.txt in their folders): {', '.join(failures)}")
    return runs


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m nst_jax.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("iterations", type=int, help="the number of iterations every run should reach")
    p.add_argument("--grid", default=None, help="TOML or JSON file of lists (default: 7 inits × k ∈ {10, 100, 1000})")
    p.add_argument("--out", default="out", help="folder of the runs and the report (default: out)")
    add_common_arguments(p, size=256, iterations=None)
    add_argument(p, "checkpoint_every", 25)
    p.add_argument("--batch", type=int, default=1, help="optimise up to N compatible runs at once (vmap) "
                   "(default: 1)")
    p.add_argument("--drop-checkpoints", action="store_true",
                   help="remove each run's checkpoint when it finishes (an L-BFGS checkpoint is about 105 MB at "
                        "256 px); a larger ITERATIONS then continues from the runs' images with fresh solver states "
                        "instead of exactly (default: keep them)")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


@cli(interrupted="rerun the same command to continue")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.iterations < 0:
        raise NSTError("ITERATIONS must be ≥ 0")
    if args.batch < 1:
        raise NSTError("--batch must be ≥ 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NSTError(f"--out {out}: exists and is not a folder")
    grid = load_grid(args.grid)
    base = {"content": args.content, "styles": tuple(args.styles), "size": args.size, "seed": args.seed,
            "checkpoint_every": args.checkpoint_every, "keep_checkpoint": not args.drop_checkpoints,
            "print_every": 0}
    failed = None
    try:
        sweep(args.iterations, grid, out, base, args.batch, not args.quiet)
    except NSTError as err:  # the report still shows what ran
        failed = err
    if not args.no_report and (out / MANIFEST).exists():
        from nst_jax.report import write_report
        print(f"wrote {write_report(out)}")
    if failed is not None:
        raise failed
    return 0


if __name__ == "__main__":
    exit_with(main)
