"""`python -m bench.memory`: the memory plan against what runs really use, and what rematerialising costs.

For each size and way of fitting (`--memory plain|remat|remat-bf16`) it runs `python -m nst_jax.run`
for 5 iterations in a child process and reads the child's peak resident memory (`wait4`'s ru_maxrss:
RSS high-water on CPU; on a GPU the device's peak bytes in use, from the run's sidecar) and its seconds per iteration (iterations 2–5 from the run's loss log, the first
step's compilation left out), beside the plan's total and XLA's own figure for the step's temporaries
(compiled for abstract arrays). With `--largest` it also runs 5 iterations at the largest size the plan
says each way fits here. Writes a Markdown table (and JSON) under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nst_jax.transfer.config import Config

ROOT = Path(__file__).resolve().parent.parent
CONTENT = str(ROOT / "nst_jax/samples/chelsea.png")
STYLE = str(ROOT / "nst_jax/samples/starry_night.jpg")


def measure(size: int, way: str, folder: Path, iterations: int = 5) -> dict:
    """Run 5 iterations in a child; its peak RSS (bytes) and seconds per iteration after the first."""
    out = folder / f"m{size}-{way}.png"
    cmd = [sys.executable, "-m", "nst_jax.run", CONTENT, STYLE, "--size", str(size), "--iterations", str(iterations),
           "--memory", way, "--checkpoint-every", "0", "--quiet", "--restart", "-o", str(out)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = child.stdout.read(), child.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        return {"size": size, "way": way, "error": (stderr.strip().splitlines() or ["killed"])[-1], "wall": wall}
    log = [json.loads(line) for line in out.with_suffix(".losses.jsonl").read_text().splitlines()]
    secs = {r["iteration"]: r["seconds"] for r in log}
    per_it = (secs[iterations] - secs[1]) / (iterations - 1)
    record = json.loads(out.with_suffix(".json").read_text())  # on a GPU: the device's peak bytes in use
    peak = record.get("peak_device_bytes", usage.ru_maxrss * 1024)
    return {"size": size, "way": way, "peak_rss": peak, "s_per_it": per_it, "wall": wall,
            "load_before": load, "load_after": os.getloadavg()[0], "stdout": stdout.strip()}


def planned(size: int, way: str) -> dict:
    from nst_jax.transfer import planning, steps
    cfg = Config(content=CONTENT, styles=(STYLE,), size=size, memory=way)
    run_plan = planning.plan_run(cfg)
    plan = run_plan.figure
    fig = steps.xla_memory(cfg, run_plan)
    return {"plan": plan.needed, "plan_activations": plan.parts[0][1], "xla_temporaries": fig["temporaries"],
            "height": plan.height, "width": plan.width}


def largest(way: str) -> int:
    import functools
    from nst_jax.files import image
    from nst_jax.scale import memory
    from nst_jax.transfer import planning
    cfg = Config(content=CONTENT, styles=(STYLE,), memory=way)
    p = planning.plan_run(cfg).figure
    return memory.largest_size(functools.partial(planning.needs_at, cfg, p.devices, way),
                               functools.partial(image.fit_size, image.image_size(CONTENT)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,512,1024,2048")
    ap.add_argument("--ways", default="plain,remat,remat-bf16")
    ap.add_argument("--largest", action="store_true", help="also run at the largest size each way fits here")
    ap.add_argument("--out", default=str(ROOT / "bench/results" / f"memory-cpu-{time.strftime('%Y-%m-%d')}"))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(int(s), w) for s in args.sizes.split(",") if s for w in args.ways.split(",")]
        if args.largest:  # planned in a fresh process, as the run that follows sees the machine
            cases += [(int(subprocess.run([sys.executable, "-c", f"from bench.memory import largest; print(largest({w!r}))"],
                                          cwd=ROOT, capture_output=True, text=True, check=True).stdout), w)
                      for w in args.ways.split(",")]
        for size, way in cases:
            measured = measure(size, way, Path(tmp))  # first: the XLA figure below grows this process
            row = {**planned(size, way), **measured}
            if "peak_rss" in row:
                row["ratio"] = row["plan"] / row["peak_rss"]
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "stdout"}), flush=True)
            Path(args.out + ".json").write_text(json.dumps(rows, indent=1))
    gb = lambda b: f"{b / 1e9:.2f}"
    lines = ["# Memory plan vs measured peak (CPU)", "",
             f"`python -m bench.memory {' '.join(argv or sys.argv[1:])}` on {os.cpu_count()} cores, "
             f"{time.strftime('%Y-%m-%d')}; chelsea + The Starry Night, default layers, L-BFGS history 100, "
             "5 iterations per child process. Peak = the child's RSS high-water (`wait4` ru_maxrss). "
             "s/it = iterations 2–5. Load = 1-minute load average before/after each child: the measured run "
             "keeps the 2 cores busy itself, so about 2 means nothing else ran.", "",
             "| size (px) | --memory | plan (GB) | peak RSS (GB) | plan / peak | plan's activations (GB) | "
             "XLA temporaries (GB) | s/it | load |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['width']}×{r['height']} | {r['way']} | {gb(r['plan'])} | failed: {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['width']}×{r['height']} | {r['way']} | {gb(r['plan'])} | {gb(r['peak_rss'])} | "
                     f"{r['ratio']:.2f} | {gb(r['plan_activations'])} | {gb(r['xla_temporaries'])} | "
                     f"{r['s_per_it']:.2f} | {r['load_before']:.1f}/{r['load_after']:.1f} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
