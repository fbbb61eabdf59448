"""The README's main job: the plain 300-iteration run against faster schedules, side by side.

    python -m bench.main_job [--style nst_jax/samples/starry_night.jpg] [--schedules "256,512:200,60" …]
                             [--conv-forms auto xla]

Each schedule runs as a user would run it (`transfer.run_multiscale`, weights loaded, programs compiled,
files written) and is timed from the start; every result's objective is the full-size run's (the
last stage's loss at --size, the same network and targets as the plain run). `--conv-forms` runs the
plain schedule once per convolution form setting, in that order (`auto`: the planner's, as the main job
runs; `xla`: XLA's convolution everywhere, as runs did before the planner); the schedules take the
first. Writes a Markdown table to bench/results/main-job-cpu-<date>.md, with the CPU and the load
average, and the images beside it.
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
from bench.time_to_quality import first_reached

from nst_jax.model import convforms
from nst_jax.files import image
from nst_jax.transfer import runs as transfer
from nst_jax.model import weights
from nst_jax.transfer.config import CONV_FORMS, SAMPLES, with_preset
from nst_jax.machine.hardware import describe_cpu

ROOT = Path(__file__).resolve().parent.parent


FORMS_NAMES = {"auto": "the planner's forms", "xla": "XLA's convolutions only"}


def run_schedule(content: str, style: str, size: int, scales: tuple[int, ...], its: tuple[int, ...], out: Path,
                 conv_forms: str = "auto"):
    cfg = with_preset("default", content=content, styles=(style,), size=size, iterations=its[-1],
                      scales=scales if len(scales) > 1 else None, conv_forms=conv_forms,
                      scale_iterations=its if len(scales) > 1 else None, output=str(out), checkpoint_every=0,
                      checkpoint_minutes=0)
    t = time.perf_counter()
    w = weights.load()
    results = transfer.run_multiscale(cfg, progress=False, loaded_weights=w)
    schedule = " → ".join(f"{n} at {s}" for s, n in zip(scales, its))
    record = json.loads(out.with_suffix(".json").read_text()).get("conv_forms") or {}
    forms = convforms.Forms(tuple(tuple(r) for r in record.get("forms", ())), record.get("source", "none"),
                            native_gram=record.get("native_gram", False))
    return {"schedule": f"{schedule}, {FORMS_NAMES.get(conv_forms, '--conv-forms ' + conv_forms)}",
            "seconds": time.perf_counter() - t, "loss": results[-1].loss, "parts": results[-1].parts,
            "image": str(out), "forms": convforms.describe(forms) if forms.by_layer else "—",
            "log": str(results[-1].paths["log"]), "before": sum(r.seconds for r in results[:-1])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.main_job", description=__doc__.split("\n\n")[0])
    p.add_argument("--content", default=str(SAMPLES / "chelsea.png"))
    p.add_argument("--style", default=str(SAMPLES / "starry_night.jpg"))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--plain", type=int, default=300, help="iterations of the plain run at --size")
    p.add_argument("--schedules", nargs="*", default=["128,256,512:200,150,60", "256,512:200,70"],
                   help="scales:iterations per stage")
    p.add_argument("--conv-forms", nargs="+", default=["auto"], choices=CONV_FORMS,
                   help="the plain run once per convolution form setting (auto: the planner's)")
    p.add_argument("--out", default=None, help="folder of the images (default: a temporary folder)")
    p.add_argument("--results-dir", default=None, help="folder of the table (default: bench/results)")
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp())
    load_before = os.getloadavg()
    rows = []
    for forms in args.conv_forms:
        rows.append(run_schedule(args.content, args.style, args.size, (args.size,), (args.plain,),
                                 out / f"plain-{forms}.png", forms))
        print(json.dumps(rows[-1]), flush=True)
    for k, text in enumerate(args.schedules):
        scales, its = (tuple(int(v) for v in part.split(",")) for part in text.split(":"))
        rows.append(run_schedule(args.content, args.style, args.size, scales, its, out / f"schedule{k}.png",
                                 args.conv_forms[0]))
        print(json.dumps(rows[-1]), flush=True)
    write_results("main-job-cpu", table(args, rows, load_before, os.getloadavg()), args.results_dir)
    return 0


def table(args, rows: list[dict], load_before, load_after) -> str:
    """The Markdown table: every row against the first (the plain run with the first forms asked)."""
    plain = rows[0]
    load = lambda v: " ".join(f"{x:.2f}" for x in v)
    command = " ".join(["python -m bench.main_job", "--size", str(args.size), "--plain", str(args.plain),
                        "--conv-forms", *args.conv_forms, "--schedules", *(f'"{s}"' for s in args.schedules)])
    lines = [f"# The main job: plain run vs coarse-to-fine schedules — cpu, {dt.date.today().isoformat()}", "",
             f"`{command}` on {Path(args.content).name} + {Path(args.style).name} at {args.size} px; "
             f"run one after the other in one process; wall time from loading the weights to the written result; "
             f"loss = the {args.size}-px objective of the result (the same network and targets for every row); "
             f"s to the first's loss: when the run's loss log first reached the first row's final loss, on the run's "
             f"own clock (from its first step, the coarse stages included; '—': not within its iterations).", "",
             f"Machine: {describe_cpu()}; load average before {load(load_before)}, after {load(load_after)}.", "",
             "| schedule | wall s | loss at full size | vs the first | s to the first's loss | PSNR to the first dB | "
             "convolution forms |", "|---|---|---|---|---|---|---|"]
    ref = image.load_image(plain["image"])
    for r in rows:
        reached = first_reached(Path(r["log"]), plain["loss"], r["before"])
        lines.append(f"| {r['schedule']} | {r['seconds']:.0f} | {r['loss']:.6g} | {r['loss'] / plain['loss'] - 1:+.2%} | "
                     f"{'—' if reached is None else f'{reached:.0f}'} | {image.psnr(image.load_image(r['image']), ref):.1f} | "
                     f"{r['forms']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
