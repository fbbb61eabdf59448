"""The README's main job: the plain 300-iteration run against faster schedules, side by side.

    python -m bench.main_job [--style nst_jax/samples/starry_night.jpg] [--schedules "256,512:200,60" …]

Each schedule runs as a user would run it (`transfer.run_multiscale`, weights loaded, programs compiled,
files written) and is timed from the start; every result's objective is the full-size run's (the
last stage's loss at --size, the same network and targets as the plain run). Writes a Markdown table
to bench/results/main-job-<date>.md and the images beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from bench import write_results

from nst_jax import image, transfer, weights
from nst_jax.config import SAMPLES, with_preset

ROOT = Path(__file__).resolve().parent.parent


def run_schedule(content: str, style: str, size: int, scales: tuple[int, ...], its: tuple[int, ...], out: Path):
    cfg = with_preset("default", content=content, styles=(style,), size=size, iterations=its[-1],
                      scales=scales if len(scales) > 1 else None,
                      scale_iterations=its if len(scales) > 1 else None, output=str(out), checkpoint_every=0)
    t = time.perf_counter()
    w = weights.load()
    results = transfer.run_multiscale(cfg, progress=False, loaded_weights=w)
    return {"schedule": " → ".join(f"{n} at {s}" for s, n in zip(scales, its)), "seconds": time.perf_counter() - t,
            "loss": results[-1].loss, "parts": results[-1].parts, "image": str(out)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.main_job", description=__doc__.split("\n\n")[0])
    p.add_argument("--content", default=str(SAMPLES / "chelsea.png"))
    p.add_argument("--style", default=str(SAMPLES / "starry_night.jpg"))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--plain", type=int, default=300, help="iterations of the plain run at --size")
    p.add_argument("--schedules", nargs="*", default=["128,256,512:200,150,60", "256,512:200,70"],
                   help="scales:iterations per stage")
    p.add_argument("--out", default=None, help="folder of the images (default: a temporary folder)")
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp())
    rows = [run_schedule(args.content, args.style, args.size, (args.size,), (args.plain,), out / "plain.png")]
    print(json.dumps(rows[-1]), flush=True)
    for k, text in enumerate(args.schedules):
        scales, its = (tuple(int(v) for v in part.split(",")) for part in text.split(":"))
        rows.append(run_schedule(args.content, args.style, args.size, scales, its, out / f"schedule{k}.png"))
        print(json.dumps(rows[-1]), flush=True)
    plain = rows[0]
    lines = [f"# The main job: plain run vs coarse-to-fine schedules — cpu, {dt.date.today().isoformat()}", "",
             f"`python -m bench.main_job` on {Path(args.content).name} + {Path(args.style).name} at {args.size} px; "
             f"run one after the other in one process; wall time from loading the weights to the written result; "
             f"loss = the {args.size}-px objective of the result (the same network and targets for every row).", "",
             "| schedule | wall s | loss at full size | vs plain | PSNR to plain dB |", "|---|---|---|---|---|"]
    ref = image.load_image(plain["image"])
    for r in rows:
        lines.append(f"| {r['schedule']} | {r['seconds']:.0f} | {r['loss']:.6g} | {r['loss'] / plain['loss'] - 1:+.1%} | "
                     f"{image.psnr(image.load_image(r['image']), ref):.1f} |")
    text = "\n".join(lines) + "\n"
    write_results("main-job-cpu", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
