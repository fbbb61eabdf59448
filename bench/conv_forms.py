"""The convolution forms per layer on this machine: `python -m bench.conv_forms [--size 256,512]`.

For each size (the sample content's shape) and each of VGG19's convolutions up to relu5_1, forward and
input gradient: the least time of one call of each candidate form (`nst_jax.convforms.measure`, each
form timed in a row after its warm calls), its relative error against XLA's convolution, and the form the planner keeps.
Measured afresh (the user's cache is neither read nor written). Writes
bench/results/conv-forms-cpu-<date>.md with the machine line and the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

from bench import write_results

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    from nst_jax.model import convforms
    from nst_jax.model.layers import FORMS as FORM_TABLE
    from nst_jax.files import image
    from nst_jax.transfer.config import PRESETS, SAMPLE_CONTENT
    from nst_jax.machine.hardware import describe_cpu
    p = argparse.ArgumentParser(prog="python -m bench.conv_forms", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="256,512")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--bf16", action="store_true", help="the forms with bfloat16 products too (`--conv-forms auto-bf16`)")
    p.add_argument("--results-dir", default=None, help="where the table goes (default bench/results)")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds: at least 1")
    from nst_jax.machine import allocator
    allocator.keep_freed_memory()   # as `nst-jax run` does where its memory plan has room
    fused = convforms.fused_ready(print)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    layers = PRESETS["default"]["content_layers"] + PRESETS["default"]["style_layers"]
    rows, totals = [], {}
    shown = ("xla", "f2", "f4", "f4f") + (("f2b", "f4fb", "f4fa", "f4fa3") if args.bf16 else ())
    for size in [int(s) for s in args.size.split(",") if s]:
        h, w = image.fit_size(image.image_size(SAMPLE_CONTENT), size)
        seen: dict[str, convforms.Choice] = {}
        total = {"xla": 0.0, "chosen": 0.0}
        for name, pair in convforms.run_shapes(layers, h, w).items():
            for direction, shape in zip(("forward", "gradient"), pair):
                if shape is None:
                    continue
                if shape.key not in seen:
                    forms = convforms.candidates(shape, bf16=args.bf16, fused=fused)
                    seen[shape.key] = convforms.measure(shape, forms, args.rounds)
                c = seen[shape.key]
                total["xla"] += c.seconds["xla"]
                total["chosen"] += c.seconds[c.form]
                ms = " | ".join(f"{1000 * c.seconds[f]:.1f}" if f in c.seconds else "—" for f in shown)
                err = " / ".join(f"{c.error[f]:.1e}" if f in c.error else "—" for f in shown[1:])
                rows.append(f"| {w}×{h} | {name} | {direction} | {shape.width}×{shape.height}×{shape.cin}→{shape.cout} "
                            f"| {ms} | {err} | {FORM_TABLE[c.form].short} |")
        totals[size] = total
    text = "\n".join([
        f"# Convolution forms per layer — cpu, {dt.date.today().isoformat()}", "",
        f"`python -m bench.conv_forms --size {args.size} --rounds {args.rounds}{' --bf16' if args.bf16 else ''}` on "
        f"{describe_cpu()}; load average "
        f"before {load}, after {' '.join(f'{v:.2f}' for v in os.getloadavg())}. Least ms of --rounds calls in a row "
        "(batch 1), after the warm calls (`convforms.warm_calls`); error: relative to XLA's convolution (the planner's budget is "
        f"{convforms.ERROR_BUDGET:g}); maps under {convforms.MIN_POSITIONS} positions and the RGB layer are left to "
        "XLA's convolution untimed.", "",
        "| image | layer | direction | input W×H×C→O | " + " | ".join(f"{FORM_TABLE[f].short} ms" for f in shown)
        + " | error " + " / ".join(FORM_TABLE[f].short for f in shown[1:]) + " | kept |",
        "|---|---|---|---|" + "---|" * len(shown) + "---|---|", *rows, "",
        "All convolutions of one value+grad (forward and input gradient, timed layers only): " + "; ".join(
            f"{s} px: XLA's {1000 * t['xla']:.0f} ms, the kept forms {1000 * t['chosen']:.0f} ms "
            f"({t['xla'] / t['chosen']:.2f}×)" for s, t in totals.items()) + "."]) + "\n"
    write_results("conv-forms-cpu", text, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
