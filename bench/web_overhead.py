"""What `--web` costs a run: `python -m bench.web_overhead [--size 256] [--iterations 60] [--rounds 3]`.

The same run with and without the live page, in turns in this process (the page's state, its image
encoder and its server all live; a client polls the page's events meanwhile), each timed per iteration
from its loss log after the first step (which compiles). Writes bench/results/web-overhead-cpu-<date>.md
with the machine line and the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
from pathlib import Path

from bench import write_results

ROOT = Path(__file__).resolve().parent.parent


def per_iteration(log: Path) -> float:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return (rows[-1]["seconds"] - rows[1]["seconds"]) / (rows[-1]["iteration"] - rows[1]["iteration"])


def _client(url: str):
    """A reader of the page's events in a process of its own, as a browser is (`curl -N`)."""
    import subprocess
    return subprocess.Popen(["curl", "-sN", url + "events"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one(cfg, w, web: bool) -> float:
    from nst_jax.transfer import runs as transfer
    from nst_jax.files.runfiles import RunFiles
    from nst_jax.web.live import LiveState
    from nst_jax.web.server import LiveServer
    if not web:
        transfer.run(cfg, progress=False, restart=True, loaded_weights=w)
        return per_iteration(RunFiles(cfg.output).log)
    state = LiveState("bench")
    with LiveServer(state) as server:
        client = _client(server.url)
        transfer.run(cfg, progress=False, restart=True, loaded_weights=w, watch=state)
        state.finish("finished")
        client.wait(timeout=30)
    return per_iteration(RunFiles(cfg.output).log)


def main(argv: list[str] | None = None) -> int:
    from nst_jax.model import weights
    from nst_jax.transfer.config import SAMPLES, with_preset
    from nst_jax.machine.hardware import describe_cpu
    p = argparse.ArgumentParser(prog="python -m bench.web_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--print-every", type=int, default=5)
    p.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    w = weights.load()
    out = Path(tempfile.mkdtemp(prefix="nst_jax_bench_web_"))
    cfg = with_preset("default", content=str(SAMPLES / "chelsea.png"), styles=(str(SAMPLES / "starry_night.jpg"),),
                      size=args.size, iterations=args.iterations, print_every=args.print_every, checkpoint_every=0,
                      output=str(out / "r.png"))
    one(cfg, w, False)   # compiles
    times = {False: [], True: []}
    for _ in range(args.rounds):
        for web in (False, True):
            times[web].append(one(cfg, w, web))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    text = "\n".join([
        f"# --web overhead ({dt.date.today().isoformat()})", "",
        f"Machine: {describe_cpu()}; load average before: {load}. `python -m bench.web_overhead --size {args.size} "
        f"--iterations {args.iterations} --rounds {args.rounds}`: the main job's pair at {args.size} px, the image "
        f"sent to the page every {args.print_every} iterations, a client reading the page's events throughout; "
        f"the two kinds of run in turns, seconds per iteration after the first step.", "",
        "| | s / iteration (median) | each round |", "|---|---:|---|",
        f"| without --web | {off:.4f} | {', '.join(f'{t:.4f}' for t in times[False])} |",
        f"| with --web | {on:.4f} | {', '.join(f'{t:.4f}' for t in times[True])} |", "",
        f"With the page: {100 * (on / off - 1):+.1f} % per iteration.", ""])
    write_results("web-overhead-cpu", text, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
