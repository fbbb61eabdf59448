"""The fused kernel's block size per layer on this machine: `python -m bench.fused_blocks [--size 256,512]`.

For each of VGG19's convolutions (forward and input gradient) at each size, one call of the fused F(4×4)
kernel (float32 products, and the split bfloat16 ones where the CPU has AMX) with each number of 4×4
output tiles per block, timed in turns (median of `--rounds`): the fixed rule ('rule'), the size the
kernel measured for itself on its first calls ('tuned', what runs use), and fixed sizes. The block size
changes no value (checked: every output is bit-identical to the fixed rule's). Writes
bench/results/fused-blocks-cpu-<date>.md.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench import write_results

CANDIDATES = (-1, 0, 32, 64, 128, 192, 384)   # -1: the fixed rule; 0: tuned by the kernel
NAMES = {-1: "rule", 0: "tuned"}


def measure(shape, form: str, rounds: int) -> dict[int, float]:
    """Seconds per call for each candidate block size (one compile each, calls in turns)."""
    import jax
    import jax.numpy as jnp

    from nst_jax.model import fused, layers

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, shape.height, shape.width, shape.cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, shape.cin, shape.cout)) / np.sqrt(9 * shape.cin), jnp.float32)
    u = layers.FORMS[form].transform(k)
    method = fused.FORM_METHODS.get(form)
    fns = {t: jax.jit(lambda x, u, t=t: fused.conv(x, u, tiles=t) if method is None
                      else fused.conv_bf16(x, u, method, tiles=t)) for t in CANDIDATES}
    first = {t: np.asarray(jax.block_until_ready(fns[t](x, u))) for t in CANDIDATES}
    for _ in range(12):   # the tuned kernel's trials: 5 sizes, 2 calls each
        jax.block_until_ready(fns[0](x, u))
    for t in CANDIDATES:
        if not np.array_equal(first[t], first[-1]):
            raise SystemExit(f"{shape.key}, {form}: {t} tiles per block changed the output")
    times = {t: [] for t in CANDIDATES}
    for _ in range(rounds):
        for t in CANDIDATES:
            start = time.perf_counter()
            jax.block_until_ready(fns[t](x, u))
            times[t].append(time.perf_counter() - start)
    return {t: float(np.median(v)) for t, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    from nst_jax.files import image
    from nst_jax.machine.hardware import describe_cpu
    from nst_jax.model import convforms, fused, layers as layer_forms
    from nst_jax.transfer.config import PRESETS, SAMPLE_CONTENT

    p = argparse.ArgumentParser(prog="python -m bench.fused_blocks", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="256,512")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--results-dir", default=None)
    args = p.parse_args(argv)
    if fused.why_unavailable():
        raise SystemExit(f"the fused kernel is not available here: {fused.why_unavailable()}")
    forms = ["f4f"] + (["f4fa3"] if "amx" in fused.bf16_units() else [])
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    layers = PRESETS["default"]["content_layers"] + PRESETS["default"]["style_layers"]
    rows, totals = [], {}
    for size in [int(s) for s in args.size.split(",") if s]:
        h, w = image.fit_size(image.image_size(SAMPLE_CONTENT), size)
        seen = {}
        for name, pair in convforms.run_shapes(layers, h, w).items():
            for direction, shape in zip(("forward", "gradient"), pair):
                if shape is None or not fused.fits(shape.cin, shape.cout):
                    continue
                for form in forms:
                    if not layer_forms.FORMS[form].applies((1, shape.height, shape.width, shape.cin)):
                        continue
                    key = (shape.key, form)
                    if key not in seen:
                        seen[key] = measure(shape, form, args.rounds)
                    s = seen[key]
                    best = min(s, key=s.get)
                    total = totals.setdefault((size, form), {"rule": 0.0, "tuned": 0.0, "best": 0.0})
                    total["rule"] += s[-1]
                    total["tuned"] += s[0]
                    total["best"] += s[best]
                    rows.append(f"| {size} | {name} | {direction} | {shape.width}×{shape.height}×{shape.cin}→"
                                f"{shape.cout} | {form} | " + " | ".join(f"{1000 * s[t]:.2f}" for t in CANDIDATES)
                                + f" | {NAMES.get(best, best)} | {s[-1] / s[0]:.3f} |")
    text = "\n".join([
        f"# The fused kernel's tiles per block — {describe_cpu()}", "",
        f"`python -m bench.fused_blocks --size {args.size} --rounds {args.rounds}`; load average before: {load}, "
        f"after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}. Milliseconds per call (median); every block "
        "size gave bit-identical outputs.", "",
        "| size | layer | direction | shape | form | " + " | ".join(str(NAMES.get(t, t)) for t in CANDIDATES)
        + " | fastest | rule ÷ tuned |", "|" + "---|" * (7 + len(CANDIDATES)), *rows, "",
        "| size | form | convolutions, fixed rule (ms) | tuned (ms) | each layer's fastest (ms) | rule ÷ tuned |",
        "|---|---|---|---|---|---|",
        *[f"| {size} | {form} | {1000 * t['rule']:.1f} | {1000 * t['tuned']:.1f} | {1000 * t['best']:.1f} | "
          f"{t['rule'] / t['tuned']:.3f}× |" for (size, form), t in totals.items()]])
    write_results("fused-blocks-cpu", text, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
