"""What the run loop costs beside the bare compiled step, and where that time goes.

    python -m bench.loop_overhead [--size 256] [--iterations 20] [--rounds 3]

Both sides use the same compiled step (`steps.compiled_solver`, shared cache). In turns, per
round: the bare step driven as the bench does (one host read of the loss per step), then
`transfer.run` — the whole loop with its log, progress bar and checkpoint bookkeeping — continuing
the same run's files. Then the loop's own per-step work is timed piece by piece on a real state.
Times are medians of per-iteration times; compare the ratio, which is what is measured side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from nst_jax.transfer import steps, runs as transfer
from nst_jax.transfer.problem import prepare
from nst_jax.model import weights
from nst_jax.transfer.config import with_preset
from nst_jax.transfer.loop import host_values, log_record
from nst_jax.files.runfiles import RunFiles

from bench.run import CONTENT, STYLE


def _median_seconds(fn, repeats: int = 50) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(size: int = 256, iterations: int = 20, rounds: int = 3, out_dir: str | None = None) -> dict:
    """The table's numbers; the timed run's files go to out_dir (default: a new temporary folder)."""
    w = weights.load()
    out = Path(out_dir or tempfile.mkdtemp()) / "loop.png"
    cfg = with_preset("default", content=str(CONTENT), styles=(str(STYLE),), size=size, iterations=0,
                      output=str(out), checkpoint_every=50, print_every=10)
    problem = prepare(cfg, w)
    compiled = steps.compiled_solver(problem.spec, cfg.optimizer, cfg.lr, cfg.history)
    aux = problem.aux(steps.step_key(cfg, 0))
    state = compiled.init(jax.numpy.asarray(problem.x0[None]), aux)
    state = compiled.step(state, aux)  # compiles; both sides then run the same cached program
    bare, looped = [], []
    done = 0
    for _ in range(rounds):
        for _ in range(iterations):  # the bare step, as bench/run.py drives it
            t = time.perf_counter()
            state = compiled.step(state, aux)
            float(state.value)
            bare.append(time.perf_counter() - t)
        done += iterations
        first = done == iterations
        transfer.run(dataclasses.replace(cfg, iterations=done), progress=True, loaded_weights=w)
        log = [r["seconds"] for r in RunFiles(out).read_log()]
        gaps = np.diff(log[-iterations - 1:]) if not first else np.diff(log[1:])  # its first step: start-up
        looped.extend(gaps.tolist())
    parts = {
        "host read of value and parts": _median_seconds(lambda: host_values(state, 1)),
        "host copy of x (last good image)": _median_seconds(lambda: np.array(state.x)),
        "log line (json + write)": _median_seconds(
            lambda: io.StringIO().write(json.dumps(log_record(1, 1.0, {"content": 1.0, "style": 1.0, "tv": 1.0},
                                                              1.0)) + "\n")),
    }
    row = {"size": size, "iterations_per_round": iterations, "rounds": rounds,
           "bare_step_s": statistics.median(bare), "run_loop_step_s": statistics.median(looped), "parts_s": parts}
    row["overhead"] = row["run_loop_step_s"] / row["bare_step_s"] - 1.0
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loop_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=20, help="iterations per round and side")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    row = measure(args.size, args.iterations, args.rounds)
    print(f"\n| size | bare step s | run loop step s | overhead |\n|---|---|---|---|\n"
          f"| {row['size']}² | {row['bare_step_s']:.4f} | {row['run_loop_step_s']:.4f} | {row['overhead']:+.1%} |\n")
    print("| loop work per step | s |\n|---|---|")
    for name, s in row["parts_s"].items():
        print(f"| {name} | {s:.6f} |")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
