"""`python -m bench.bf16_guard`: the quality guard of the bfloat16 convolution forms on this CPU.

Per pair and size, one run with the float32 forms (`--conv-forms auto` with no bfloat16 form allowed,
whatever `hardware.BF16_FORMS_GUARD` says) and one per bfloat16 form asked (`--forms`: that form wherever it applies, as `--conv-forms f4fa3`
runs it), each for N L-BFGS iterations from the same start. All results are scored by one float32
objective (XLA's convolutions), and the images are put side by side (float32 left) under docs/bf16/. A
form's guard holds on a CPU kind when every pair and size ends within `hardware.BF16_FORMS_TOLERANCE` of the
float32 run; `hardware.BF16_FORMS_GUARD` records the verdicts per CPU kind, and only those forms may
`--conv-forms auto` take.

Writes bench/results/bf16-guard-<cpu>-<date>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "nst_jax" / "samples"
PAIRS = {"chelsea+starry": ("chelsea.png", "starry_night.jpg"),
         "hubble+scream": ("hubble_deep_field.jpg", "the_scream.jpg"),
         "ihc+shipwreck": ("ihc.png", "shipwreck.jpg")}


def _cfg(pair: str, size: int, forms: str, **kw):
    from nst_jax.transfer.config import Config
    content, style = PAIRS[pair]
    return Config(content=str(SAMPLES / content), styles=(str(SAMPLES / style),), size=size, conv_forms=forms, **kw)


def guard_row(pair: str, size: int, forms: list[str], iterations: int, runs: Path, images: Path) -> dict:
    """The float32 run and one run per form of one pair and size, scored by the float32 objective."""
    import jax
    from nst_jax.files import image
    from nst_jax.machine import hardware
    from nst_jax.model import convforms
    from nst_jax.objective import losses
    from nst_jax.transfer import runs as transfer
    from nst_jax.transfer.problem import prepare
    results, seconds, used = {}, {}, {}
    for form in ["auto", *forms]:
        cfg = _cfg(pair, size, form, iterations=iterations, output=str(runs / f"{pair}-{size}-{form}.png"),
                   checkpoint_minutes=0, print_every=0)
        guarded = hardware.BF16_FORMS_GUARD
        if form == "auto":
            hardware.BF16_FORMS_GUARD = {}
        try:
            t = time.perf_counter()
            results[form] = transfer.run(cfg, progress=False, restart=True).image
            seconds[form] = time.perf_counter() - t
        finally:
            hardware.BF16_FORMS_GUARD = guarded
        sidecar = json.loads(Path(cfg.output).with_suffix(".json").read_text())
        used[form] = sorted({f for row in sidecar.get("conv_forms", {}).get("forms", []) for f in row[1:]})
    assert not set(used["auto"]) & set(convforms.BF16_FORMS), used["auto"]   # the baseline is float32
    problem = prepare(_cfg(pair, size, "xla"))
    fun = jax.jit(losses.make_objective(problem.spec))
    aux = problem.aux(jax.random.PRNGKey(0))
    scored = {f: float(fun(jax.numpy.asarray(x[None]), aux)[0]) for f, x in results.items()}
    a = results["auto"]
    gap = np.ones((a.shape[0], 8, 3), np.float32)
    images.mkdir(parents=True, exist_ok=True)
    image.save_image(images / f"{pair}-{size}.jpg", np.concatenate([a] + [y for f in forms for y in (gap, results[f])], 1))
    psnr = {f: 10 * np.log10(1.0 / max(float(np.mean((a - results[f]) ** 2)), 1e-12)) for f in forms}
    return {"pair": pair, "size": size, "iterations": iterations, "loss": scored,
            "difference": {f: scored[f] / scored["auto"] - 1 for f in forms}, "psnr": psnr, "seconds": seconds,
            "forms": used}


def verdicts(rows: list[dict]) -> dict[str, float]:
    """Per form, its largest |difference| over the rows."""
    out: dict[str, float] = {}
    for r in rows:
        for f, d in r["difference"].items():
            out[f] = max(out.get(f, 0.0), abs(d))
    return out


def markdown(result: dict) -> str:
    from nst_jax.machine import hardware
    rows, tol = result["rows"], hardware.BF16_FORMS_TOLERANCE
    lines = [f"# The bfloat16 forms' quality guard ({result['cpu']}, {result['date']})", "",
             f"`{result['command']}` on {result['machine']}. Each pair and size: {rows[0]['iterations'] if rows else 0} "
             "L-BFGS iterations with the float32 forms (`--conv-forms auto` without bfloat16 products) and with each "
             "bfloat16 form wherever it applies, from the same start; every result scored by one float32 objective "
             "(XLA's convolutions). Images side by side, float32 left, then the forms in this order, in `docs/bf16/`.", "",
             "| pair | size | float32 forms | " + " | ".join(f"`{f}`: loss, difference, PSNR to float32 (dB)"
                                                        for f in result["forms"]) + " | seconds |",
             "|---|---|---|" + "---|" * len(result["forms"]) + "---|"]
    for r in rows:
        cells = [f"{r['loss'][f]:.6g}, {100 * r['difference'][f]:+.2f} %, {r['psnr'][f]:.1f}" if f in r["loss"] else "—"
                 for f in result["forms"]]
        secs = " / ".join(f"{r['seconds'][f]:.0f}" for f in r["seconds"])
        lines.append(f"| {r['pair']} | {r['size']} | {r['loss']['auto']:.6g} | " + " | ".join(cells) + f" | {secs} |")
    lines.append("")
    for f, worst in verdicts(rows).items():
        sizes = sorted({r["size"] for r in rows if f in r["difference"]})
        lines.append(f"- `{f}` ({', '.join(map(str, sizes))} px): largest difference {100 * worst:.2f} % against "
                     f"{100 * tol:.1f} %: the guard **{'holds' if worst <= tol else 'fails'}**.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bf16_guard", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--forms", default="f4fa3,f4fa:256",
                    help="the bfloat16 forms to guard, each with ':256+512' to limit its sizes")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--pairs", default=",".join(PAIRS))
    ap.add_argument("--tag", default="", help="a name for the CPU in the results' file name (e.g. xeon-amx)")
    args = ap.parse_args(argv)
    from nst_jax.machine import hardware
    sizes = [int(s) for s in args.sizes.split(",")]
    forms = {}
    for item in args.forms.split(","):
        name, _, only = item.partition(":")
        forms[name] = [int(s) for s in only.split("+")] if only else sizes
    result = {"date": time.strftime("%Y-%m-%d"), "machine": hardware.describe_cpu(), "forms": list(forms),
              "cpu": hardware.bfloat16_unit(hardware.bfloat16_flags()) or "no bfloat16 units",
              "command": "python -m bench.bf16_guard " + " ".join(argv if argv is not None else sys.argv[1:]),
              "rows": []}
    runs = Path(tempfile.mkdtemp(prefix="bf16-guard-"))   # only the side-by-side images go to docs/
    for pair in args.pairs.split(","):
        for size in sizes:
            these = [f for f, at in forms.items() if size in at]
            result["rows"].append(guard_row(pair, size, these, args.iterations, runs, ROOT / "docs" / "bf16"))
            print(json.dumps(result["rows"][-1]), flush=True)
    from bench import write_results
    written = write_results(f"bf16-guard-{args.tag or result['cpu']}", markdown(result))
    written.with_suffix(".json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
