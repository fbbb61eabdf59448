"""`nst-jax sweep ITERATIONS`: a resumable grid of runs — the hyper-parameter experiments of
*Dissecting Neural Style Transfer* (Xi Du, ANU): initial images × style weights × iterations.

A grid (TOML or JSON: each key a Config field, each value a list; see `nst_jax.studies.grid`) expands to
runs, each in its own folder `out/<name>/` holding `result.png` and its files (`nst_jax.files.runfiles`),
with intermediate images at 1, 2, 5, 10, 20, 50, … iterations. ITERATIONS is the target: a rerun with
a larger target continues every run from its checkpoint, the same target does nothing for finished
runs, an interrupted sweep resumes where it stopped, and deleting a run's files restarts that run
only. `--batch N` optimises up to N runs that share image size and layers at once (one vmapped
program, `transfer.run_many`); their files are the same as those of one-by-one runs. At the end the
HTML report is written (`nst-jax report out/`).

The default grid is the paper's: the seven initial images × k ∈ {10, 100, 1000} on the sample images.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from nst_jax.transfer.config import SAMPLE_PAINTING, Config
from nst_jax.transfer.options import add_argument, add_common_arguments
from nst_jax.base.errors import ArgumentParser, NSTError, cli
from nst_jax.studies.grid import expand, load_grid
from nst_jax.files.fileio import Lock, write_error
from nst_jax.transfer.progress import human_seconds
from nst_jax.files.fileio import write_json
from nst_jax.files.runfiles import SWEEP_LOCK as LOCK, SWEEP_MANIFEST as MANIFEST, RunFiles

ENGINES = ("local", "ray")


class RunsFailed(NSTError):
    """Some runs of a sweep failed; the others finished and the report shows both."""


class Tracker:
    """The sweep's progress: runs done / running / failed, iterations reached, ETA — in the terminal
    bar (plain lines when stderr is not a terminal, at most every `line_every` seconds and whenever a run
    ends) and in the live report (rewritten at most every `report_every` seconds while the sweep runs).
    As with a single run, the first step (which compiles) is reported on its own and the rate behind
    the ETA counts only the steps after it."""

    def __init__(self, out: Path, runs, iterations: int, show_progress: bool, report: bool,
                 report_every: float = 20.0, line_every: float = 30.0, stream=None, watch=None):
        self.out, self.iterations, self.report, self.report_every = out, iterations, report, report_every
        self.stream = stream if stream is not None else sys.stderr
        self.names = [n for n, _ in runs]
        self.outputs = {n: c.output for n, c in runs}
        self.progressed: set[str] = set()
        self.reached = {n: RunFiles(c.output).iteration_reached() for n, c in runs}
        self.done = {n for n, c in runs if RunFiles(c.output).finished(c.iterations, c.stop_rule)}
        self.failed: dict[str, str] = {}
        self.running: set[str] = set()
        self.t0 = time.perf_counter()
        self.first: tuple[float, int] | None = None   # (time, iterations) at the first step
        self.last_report = self.last_line = 0.0
        self.line_every = line_every
        self.bar = None
        reached, total = self.progress()
        self.show = show_progress and reached < total
        self.watch = None
        if watch is not None:  # the live page (--web)
            from nst_jax.web.sweepview import SweepWatch
            self.watch = SweepWatch(watch, runs, iterations, out)
            self.watch.update(self, force=True)

    def progress(self) -> tuple[int, int]:
        """(iterations reached, iterations in all); a finished run counts as its target (the stopping rule
        may have ended it earlier)."""
        now = sum(self.iterations if n in self.done else min(v, self.iterations) for n, v in self.reached.items())
        return now, len(self.names) * self.iterations

    def rate(self) -> float | None:
        """Iterations per second since the first step (None before it)."""
        if self.first is None:
            return None
        t_first, at_first = self.first
        return (self.progress()[0] - at_first) / max(time.perf_counter() - t_first, 1e-9)

    def eta(self) -> float | None:
        now, total = self.progress()
        rate = self.rate()
        return (total - now) / rate if rate else None

    def _desc(self) -> str:
        return f"sweep: {len(self.done)}/{len(self.names)} runs done" + \
            (f", {len(self.failed)} failed" if self.failed else "")

    def status(self, finished: bool = False) -> dict:
        return {"done": len(self.done), "running": sorted(self.running), "failed": dict(self.failed),
                "total": len(self.names), "iterations": dict(self.reached), "target": self.iterations,
                "eta_s": self.eta(), "finished": finished}

    def say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def started(self, names) -> None:
        self.running |= set(names)
        if self.bar is not None:
            self.bar.set_postfix_str(", ".join(sorted(self.running))[:60])

    def advanced(self, name: str, iteration: int) -> None:
        """Run `name` reached `iteration`; once it makes progress, a failure recorded by an earlier attempt
        no longer stands (a run queued, or stopped before its first step, keeps it)."""
        if name not in self.progressed:
            RunFiles(self.outputs[name]).clear_error()
            self.progressed.add(name)
        self.reached[name] = max(self.reached.get(name, 0), iteration)  # a resubmitted chunk restarts lower
        if self.first is None:
            self._first_step(name)
        self._show()
        self.write_report()
        if self.watch is not None:
            self.watch.update(self)

    def _first_step(self, name: str) -> None:
        self.first = (time.perf_counter(), self.progress()[0])
        if not self.show:
            return
        self.say(f"sweep: first step of {name} (compiling) took {human_seconds(self.first[0] - self.t0)}")
        if self.stream.isatty():
            from tqdm.auto import tqdm
            now, total = self.progress()
            self.bar = tqdm(total=total, initial=now, unit="it", desc=self._desc(), file=self.stream,
                            dynamic_ncols=True)
        self.last_line = self.first[0]

    def _show(self, force: bool = False) -> None:
        if not self.show:
            return
        now, total = self.progress()
        if self.bar is not None:
            self.bar.update(now - self.bar.n)
            self.bar.set_description(self._desc())
            return
        t = time.perf_counter()
        if self.first is None or not (force or t - self.last_line >= self.line_every):
            return
        self.last_line = t
        eta, rate = self.eta(), self.rate()
        running = f", running {', '.join(sorted(self.running))}" if self.running else ""
        self.say(f"{self._desc()}{running}; {now} / {total} iterations ({rate:.3g} it/s"
                 f"{f', ETA {human_seconds(eta)}' if eta is not None else ''})")

    def finished_run(self, name: str, cfg: Config, error: str | None) -> None:
        self.running.discard(name)
        files = RunFiles(cfg.output)
        if error is None:
            files.clear_error()
            self.done.add(name)
        else:
            self.failed[name] = error
            files.write_error(error)
            print(f"warning: {name}: {error}", file=sys.stderr)
        self._show(force=True)
        self.write_report()
        if self.watch is not None:
            self.watch.update(self, force=True)

    def write_report(self, force: bool = False, finished: bool = False) -> None:
        if not self.report or (not force and time.perf_counter() - self.last_report < self.report_every):
            return
        from nst_jax.studies.report import write_report
        write_report(self.out, self.status(finished))
        self.last_report = time.perf_counter()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_inputs(runs) -> None:
    """Every image a run reads must exist before anything is written (a grid may name images)."""
    for name, cfg in runs:
        for path in [cfg.content, *cfg.styles]:
            if not Path(path).is_file():
                raise NSTError(f"grid point {name}: image {path}: not found")


def sweep(iterations: int, grid: dict[str, list], out: Path, base: dict[str, Any], batch: int = 1,
          show_progress: bool = True, engine: str = "local", address: str | None = None,
          cpus_per_task: float = 1.0, gpus_per_task: float | None = None, report: bool = False,
          on_bundle=None, watch=None) -> list[tuple[str, Config]]:
    """Run (or continue) every grid point to `iterations` with the local or the Ray engine; returns
    the runs. A run that fails is recorded in its folder (`result.error.txt`) and in the report, and
    does not stop the others; NSTError at the end lists the failed runs. One process per sweep folder
    at a time (`sweep.lock`). `report`: keep out/index.html up to date while the sweep runs; `watch`: a
    live page's `web.live.LiveState` to show each run's state and thumbnail on."""
    if engine not in ENGINES:
        raise NSTError(f"unknown --engine {engine!r}; choose one of {', '.join(ENGINES)}")
    runs = expand(grid, {"keep_checkpoint": True, **base, "iterations": iterations}, out)  # continuable
    check_inputs(runs)
    if engine == "ray":  # joined (or started) before anything is written
        from nst_jax.studies import ray_engine
        ray_engine.connect(address)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(out, err) from None
    with Lock(out / LOCK, f"sweep folder {out}"):
        write_json(out / MANIFEST, {"grid": grid, "base": base, "iterations": iterations,
                                    "runs": {name: str(Path(cfg.output).relative_to(out)) for name, cfg in runs}})
        from nst_jax.transfer import runs as transfer
        tracker = Tracker(out, runs, iterations, show_progress, report, watch=watch)
        todo = [(n, c) for n, c in runs if n not in tracker.done]
        groups: dict[tuple, list] = {}
        for n, c in todo:
            groups.setdefault(transfer.batch_key(c), []).append((n, c))
        chunks = [members[i:i + max(1, batch)] for members in groups.values()
                  for i in range(0, len(members), max(1, batch))]
        tracker.write_report(force=True)
        try:
            if engine == "local":
                _run_local(chunks, base, tracker)
            else:
                _run_ray(chunks, tracker, address, cpus_per_task, gpus_per_task, on_bundle)
        finally:
            tracker.close()
            tracker.write_report(force=True, finished=True)
    if tracker.failed:
        raise RunsFailed(f"{len(tracker.failed)} run(s) failed (see result.error.txt in their folders): "
                       f"{', '.join(sorted(tracker.failed))}")
    return runs


def _run_local(chunks, base, tracker: Tracker) -> None:
    from nst_jax.transfer import runs as transfer
    from nst_jax.model import weights as vgg_weights
    from nst_jax.transfer.loop import log_schedule

    w = vgg_weights.load(base.get("weights"))
    for chunk in chunks:
        names = [n for n, _ in chunk]
        tracker.started(names)

        def on_step(it, alive, value, parts, names=names):
            for n in names:
                tracker.advanced(n, it)
        try:
            results = transfer.run_many([c for _, c in chunk], loaded_weights=w, save_at=log_schedule,
                                        on_step=on_step)
            errors = [r.error for r in results]
        except NSTError as err:  # a failure of the whole chunk (e.g. an image that cannot be read)
            errors = [str(err)] * len(chunk)
        for (n, c), error in zip(chunk, errors):
            tracker.finished_run(n, c, error)


def _run_ray(chunks, tracker: Tracker, address, cpus_per_task, gpus_per_task, on_bundle) -> None:
    from nst_jax.studies import ray_engine

    for chunk in chunks:
        tracker.started([n for n, _ in chunk])

    def bundle_done(chunk, bundle):
        for name, cfg in chunk:
            if name in tracker.failed or name in tracker.done:
                continue
            error = bundle["errors"].get(name)
            if error is None:
                tracker.advanced(name, bundle["iteration"])
            if error is not None or bundle["done"]:
                tracker.finished_run(name, cfg, error)
        if on_bundle is not None:
            on_bundle(chunk, bundle)

    def chunk_failed(chunk, message):
        for name, cfg in chunk:
            if name not in tracker.failed and name not in tracker.done:
                tracker.finished_run(name, cfg, message)

    ray_engine.run_chunks(chunks, address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task,
                          on_bundle=bundle_done, on_failure=chunk_failed)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="nst-jax sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("iterations", type=int, help="the number of iterations every run should reach")
    p.add_argument("--grid", default=None, help="TOML or JSON file of lists (default: 7 inits × k ∈ {10, 100, 1000})")
    p.add_argument("--out", default="out", help="folder of the runs and the report (default: out)")
    add_common_arguments(p, size=256, iterations=None, styles=[SAMPLE_PAINTING])
    add_argument(p, "checkpoint_every", 25)
    add_argument(p, "tol", 0.0)
    add_argument(p, "tol_window", 20)
    p.add_argument("--batch", type=int, default=1, help="optimise up to N compatible runs at once (vmap) "
                   "(default: 1)")
    p.add_argument("--engine", default="local", help="local: every run in this process; ray: each run (or "
                   "batch) a Ray task, on a local Ray cluster or the one at --address (default: local)")
    p.add_argument("--address", default=None, help="with --engine ray: the cluster to join ('auto', host:port "
                   "or ray://host:port; default: start a local one)")
    p.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs Ray reserves per task (default: 1)")
    p.add_argument("--gpus-per-task", type=float, default=None,
                   help="GPUs Ray reserves per task (default: 1 on a cluster with GPUs, else 0)")
    p.add_argument("--drop-checkpoints", action="store_true",
                   help="remove each run's checkpoint when it finishes (an L-BFGS checkpoint is about 105 MB at "
                        "256 px); a larger ITERATIONS then continues from the runs' images with fresh solver states "
                        "instead of exactly (default: keep them)")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--web", nargs="?", const=0, type=int, metavar="PORT",
                   help="serve a live page of the sweep on 127.0.0.1: each run's state and thumbnail, the "
                        "iterations, rate and ETA (PORT default: any free one); needs nst_jax[studio]")
    return p


@cli(interrupted="rerun the same command to continue")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from nst_jax.machine import command
    command.prepare()   # before anything allocates or compiles
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
            "print_every": 0, "tol": args.tol, "tol_window": args.tol_window}
    failed = None
    from nst_jax.web import watching
    try:
        with watching(args.web, str(out)) as watch:
            sweep(args.iterations, grid, out, base, args.batch, not args.quiet, engine=args.engine,
                  address=args.address, cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task,
                  report=not args.no_report, watch=watch)
    except RunsFailed as err:  # the report still shows what ran
        failed = err
    if not args.no_report and (out / MANIFEST).exists():
        print(f"wrote {out / 'index.html'}")
    if failed is not None:
        raise failed
    return 0
