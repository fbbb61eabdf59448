"""What checkpoints cost the main job: `python -m bench.checkpoint_cost [--schedules "…" …]`.

Runs the README's main job once per checkpoint schedule (extra options of the run), one after the other
in fresh processes, and reads each process's own I/O counters (/proc/self/io, Linux) at its exit: bytes
written, and the wall time. It also times writing one checkpoint of the job's solver state, and says
what a kill (SIGKILL, which no handler sees) loses under each schedule: the work since the last
checkpoint. Writes a Markdown table to bench/results/checkpoint-cost-<date>.md with the CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import write_results
from bench.demo import ROOT, readme_main_job

# the run, then its I/O counters, from inside the process that did the writing
PROBE = """
import atexit, runpy, sys, time
t0 = time.perf_counter()
def report():
    io = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines() if line)
    print(f"IO {io['write_bytes']} {time.perf_counter() - t0:.1f}", file=sys.stderr, flush=True)
atexit.register(report)
sys.argv = ["nst_jax.run", *sys.argv[1:]]
runpy.run_module("nst_jax.run", run_name="__main__", alter_sys=True)
"""


def run_job(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "nst_jax").symlink_to(ROOT / "nst_jax")
        done = subprocess.run([sys.executable, "-c", PROBE, *readme_main_job(), "--quiet", *extra], cwd=folder,
                              capture_output=True, text=True)
    found = re.search(r"^IO (\d+) ([0-9.]+)$", done.stderr, re.M)
    if done.returncode != 0 or not found:
        raise SystemExit(f"error: the main job failed:\n{done.stderr[-2000:]}")
    per_it = re.search(r"in ([0-9.]+) s", done.stdout)
    return {"bytes": int(found.group(1)), "wall": float(found.group(2)),
            "run_seconds": float(per_it.group(1)) if per_it else float("nan")}


def time_one_save(folder: Path) -> tuple[float, int]:
    """Seconds to write one checkpoint of the main job's L-BFGS state (512×341, history 100), and its bytes."""
    import jax
    import numpy as np
    from nst_jax.files import checkpoints
    from nst_jax.solvers.lbfgs import LBFGSState
    d, m = 341 * 512 * 3, 100
    zeros = lambda *shape: np.zeros(shape, np.float32)
    state = LBFGSState(zeros(1, 341, 512, 3), zeros(), {"content": zeros(), "style": zeros(), "tv": zeros()},
                       zeros(1, 341, 512, 3), np.int32(0), np.int32(0), zeros(m, d), zeros(m, d), zeros(m, m),
                       zeros(m, m), zeros(m), zeros(m), np.int32(0), zeros(), zeros())
    path = folder / "probe.ckpt.npz"
    t = time.perf_counter()
    checkpoints.save(path, jax.tree.map(np.asarray, state), config_hash="0" * 16, solver="lbfgs", iteration=0,
                     offset=0, target=300, seconds=0.0)
    return time.perf_counter() - t, path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.checkpoint_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--schedules", nargs="+", default=["--checkpoint-every 50 --checkpoint-minutes 0", ""],
                   help="extra options of the main job, one string per schedule ('': the defaults)")
    p.add_argument("--results-dir", default=None, help="folder of the table (default: bench/results)")
    args = p.parse_args(argv)
    from nst_jax.machine.hardware import describe_cpu
    with tempfile.TemporaryDirectory() as folder:
        save_seconds, size = time_one_save(Path(folder))
    rows = []
    for text in args.schedules:
        rows.append((text or "the defaults", run_job(shlex.split(text))))
        print(rows[-1], flush=True)
    lines = [f"# What checkpoints cost the main job — {describe_cpu()}", "",
             "`python -m bench.checkpoint_cost` (the README's main job, 512 px, 300 iterations, once per schedule, "
             f"one after the other; load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}). "
             f"One checkpoint of its L-BFGS state: {size / 1e6:.0f} MB, written in {save_seconds:.2f} s.", "",
             "| schedule | bytes written by the process | wall s | the run's own s |", "|---|---|---|---|"]
    lines += [f"| {name} | {r['bytes'] / 1e9:.3f} GB | {r['wall']:.0f} | {r['run_seconds']:.0f} |" for name, r in rows]
    write_results("checkpoint-cost", "\n".join(lines) + "\n", args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
