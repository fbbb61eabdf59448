"""The sweep's engines side by side: the same sweep locally and on a local Ray cluster.

    python -m bench.engines [--runs 8] [--size 64] [--iterations 30]

Measures the Ray cluster's start, each task's overhead (the bytes sent and returned, the worker's first
compilation) and the whole sweep's wall time and per-run throughput for each engine, one after the
other in one process. Writes bench/results/engines-<date>.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from bench import write_results

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    from nst_jax.studies import ray_engine
    from nst_jax.transfer.config import SAMPLE_CONTENT, SAMPLE_STYLE
    from nst_jax.studies.sweep import sweep

    p = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--iterations", type=int, default=30)
    args = p.parse_args(argv)
    grid = {"style_weight": [float(10 ** (1 + i / 2)) for i in range(args.runs)]}
    base = {"content": SAMPLE_CONTENT, "styles": (SAMPLE_STYLE,), "size": args.size, "checkpoint_every": 10,
            "print_every": 0}
    out = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    sweep(args.iterations, grid, out / "local", base, show_progress=False)
    local = time.perf_counter() - t
    t = time.perf_counter()
    ray_engine.connect(None)
    start = time.perf_counter() - t
    bundles = []
    t = time.perf_counter()
    sweep(args.iterations, grid, out / "ray", base, engine="ray", show_progress=False,
          on_bundle=lambda chunk, b: bundles.append((time.perf_counter() - t, b)))
    ray_s = time.perf_counter() - t
    returned = sum(len(d) for _, b in bundles for files in b["files"].values() for d in files.values())
    workers = sorted({b["worker"] for _, b in bundles})
    first = min(s for s, _ in bundles)
    from nst_jax.machine.hardware import describe_cpu
    rows = [f"# Sweep engines — cpu, {dt.date.today().isoformat()}", "",
            f"`python -m bench.engines --runs {args.runs} --size {args.size} --iterations {args.iterations}`: "
            f"{args.runs} runs, checkpoint every 10 iterations (each checkpoint's files streamed back from the one "
            f"call of the run a task makes), one engine after the other in one process on this machine "
            f"({describe_cpu()}; Ray starts one worker per core).", "",
            "| engine | wall s | per run s | runs/min |", "|---|---|---|---|",
            f"| local (one process) | {local:.1f} | {local / args.runs:.2f} | {60 * args.runs / local:.1f} |",
            f"| ray (local cluster, {len(workers)} workers) | {ray_s:.1f} | {ray_s / args.runs:.2f} | "
            f"{60 * args.runs / ray_s:.1f} |", "",
            f"Ray's start: {start:.1f} s. First segment back after {first:.1f} s (a worker's start, the weights, "
            f"the first compilation). Files returned to the driver: {returned / 1e6:.1f} MB in {len(bundles)} "
            f"bundles ({returned / max(len(bundles), 1) / 1e3:.0f} kB each, checkpoints included); each task "
            f"is sent its input images and the run's files so far."]
    text = "\n".join(rows) + "\n"
    write_results("engines-cpu", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
