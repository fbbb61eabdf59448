"""Time to quality on the main job's pair: `python -m bench.time_to_quality [--size 512] [--iterations 300]`.

The torch reference (`bench/torch_reference.py`: torch.optim.LBFGS, history 100, no line search) runs the
main job's objective from the content image for N iterations; then nst_jax's schedules run as a user
runs them (`transfer.run_multiscale`, files written, the convolution forms from this machine's cache),
one after the other in this process: the plain run, and coarse to fine. For each: the wall time to reach
the reference's N-iteration loss (from the loss logs' timestamps; for coarse to fine, counted from the
start of the coarse stage) and the loss after its own iterations. Writes
bench/results/time-to-quality-cpu-<date>.md with the machine line and the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

from bench import write_results

ROOT = Path(__file__).resolve().parent.parent


def first_reached(log_path: Path, target: float, before: float = 0.0) -> float | None:
    """Seconds (plus `before`) at which a run's loss log first reached `target`; None if it never did."""
    for line in log_path.read_text().splitlines():
        r = json.loads(line)
        if r["loss"] <= target:
            return before + r["seconds"]
    return None


def main(argv: list[str] | None = None) -> int:
    from bench.torch_reference import Objective, run_lbfgs
    from nst_jax.transfer import runs as transfer
    from nst_jax.model import weights
    from nst_jax.transfer.config import SAMPLES, with_preset
    from nst_jax.machine.hardware import describe_cpu
    from nst_jax.transfer.inputs import load_inputs
    p = argparse.ArgumentParser(prog="python -m bench.time_to_quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--schedules", default="256,512:200,100;256,512:100,150",
                   help="coarse-to-fine schedules, 'SIZES:ITERATIONS' separated by ';'")
    p.add_argument("--target", type=float, default=None,
                   help="the reference's loss, measured before (skips the torch run)")
    p.add_argument("--no-plain", action="store_true", help="only the coarse-to-fine schedules")
    args = p.parse_args(argv)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    base = dict(content=str(SAMPLES / "chelsea.png"), styles=(str(SAMPLES / "starry_night.jpg"),), size=args.size,
                checkpoint_every=0, print_every=0)
    w = weights.load()
    cfg = with_preset("default", iterations=args.iterations, **base)
    inputs = load_inputs(cfg)
    rows = []
    if args.target is None:
        obj = Objective(w, inputs.content, inputs.styles[0], cfg.content_layers, cfg.style_layers,
                        cfg.layer_weights, cfg.content_weight, cfg.style_weight, cfg.tv_weight)
        t0 = time.perf_counter()
        _, curve = run_lbfgs(obj, inputs.content, args.iterations)
        torch_s, target = time.perf_counter() - t0, curve[-1]
        rows.append(("torch reference (plain)", torch_s, torch_s, target))
    else:
        target = args.target
    out = Path(tempfile.mkdtemp())
    schedules = ([] if args.no_plain else [((args.size,), (args.iterations,))]) + [
        (tuple(int(v) for v in s.split(":")[0].split(",")), tuple(int(v) for v in s.split(":")[1].split(",")))
        for s in args.schedules.split(";") if s]
    for sizes, its in schedules:
        c = with_preset("default", iterations=its[-1], output=str(out / f"{'-'.join(map(str, sizes))}_{'-'.join(map(str, its))}.png"),
                        scales=sizes if len(sizes) > 1 else None, scale_iterations=its if len(sizes) > 1 else None,
                        **base)
        t = time.perf_counter()
        results = transfer.run_multiscale(c, progress=False, loaded_weights=w)
        wall = time.perf_counter() - t
        before = sum(r.seconds for r in results[:-1])
        reached = first_reached(Path(results[-1].paths["log"]), target, before)
        label = "nst_jax plain" if len(sizes) == 1 else "nst_jax " + " → ".join(f"{n} at {s}" for s, n in zip(sizes, its))
        rows.append((label, wall, reached, results[-1].loss))
    lines = [f"# Time to quality — cpu, {dt.date.today().isoformat()}", "",
             f"`python -m bench.time_to_quality --size {args.size} --iterations {args.iterations}` on {describe_cpu()}; "
             f"load average before {load}, after {' '.join(f'{v:.2f}' for v in os.getloadavg())}. The main job's pair "
             f"(chelsea.png, starry_night.jpg) at {args.size} px from the content image; target: the torch "
             f"reference's loss after {args.iterations} iterations, {target:.6g}. nst_jax's times are its runs' own "
             "(loss logs), with the convolution forms of this machine's cache; wall s includes loading, compiling "
             "and writing files.", "",
             "| schedule | wall s | s to the reference's loss | final loss | vs the reference's |",
             "|---|---|---|---|---|"]
    for label, wall, reached, loss in rows:
        lines.append(f"| {label} | {wall:.1f} | {'—' if reached is None else f'{reached:.1f}'} | {loss:.6g} | "
                     f"{100 * (loss / target - 1):+.2f} % |")
    text = "\n".join(lines) + "\n"
    write_results("time-to-quality-cpu", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
