"""`python -m bench.precision`: float32 against bfloat16, side by side in one process.

1. value+grad of the Gatys objective at each size: nst_jax in float32, in bfloat16 with XLA's
   convolution and with the im2col product form (`layers.BF16_FORM`), with `--conv-forms` in float32
   with the planner's forms (the fused kernel's bfloat16 products among them), and the PyTorch reference in
   float32 and under `torch.autocast("cpu", dtype=torch.bfloat16)` — timed in turns, repeated,
   with the 1-minute load average before and after, so a busy machine shows in the table.
2. with `--layers`: each VGG19 convolution's forward + input gradient in each form at one size.
3. with `--quality N`: N L-BFGS iterations in both precisions per image pair and size; both results
   measured by the float32 objective, the PSNR between them, and the two images side by side.
Writes bench/results/precision-<device>-<date>.md (and .json; images under docs/precision/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "nst_jax" / "samples"
PAIRS = {"chelsea+starry": (SAMPLES / "chelsea.png", SAMPLES / "starry_night.jpg"),
         "hubble+scream": (SAMPLES / "hubble_deep_field.jpg", SAMPLES / "the_scream.jpg")}


def _cfg(size, precision, pair="chelsea+starry", **kw):
    from nst_jax.transfer.config import Config
    content, style = PAIRS[pair]
    return Config(content=str(content), styles=(str(style),), size=size, precision=precision, **kw)


def value_and_grad(size: int, precision: str, form: str = "conv", conv_forms: str | None = None):
    """A timed callable for nst_jax's value+grad at the content's size, and its problem; `conv_forms`:
    float32 with the planner's convolution forms as `--conv-forms` asks (None: XLA's convolution)."""
    import jax
    from nst_jax.machine import compiler
    from nst_jax.model import layers
    from nst_jax.objective import losses
    from nst_jax.transfer.problem import prepare
    layers.BF16_FORM = form
    if conv_forms is None:
        problem = prepare(_cfg(size, precision, memory="plain"))
    else:
        from nst_jax.transfer.planning import plan_run, with_forms
        cfg = _cfg(size, precision, memory="plain", conv_forms=conv_forms)
        plan = with_forms(cfg, plan_run(cfg))
        problem = prepare(cfg, plan=plan)
        from nst_jax.model.convforms import describe
        print(f"--conv-forms {conv_forms} at {size}: {describe(plan.forms)}", file=sys.stderr)
    fun = losses.make_objective(problem.spec)
    f = compiler.jit(lambda x, aux: jax.value_and_grad(lambda x: fun(x, aux)[0])(x),
                     xla_defaults=precision == "bfloat16")
    x, aux = jax.numpy.asarray(problem.x0[None]), problem.aux(jax.random.PRNGKey(0))
    jax.block_until_ready(f(x, aux))  # compiled now, with this form
    return (lambda: jax.block_until_ready(f(x, aux))), problem


def torch_value_and_grad(problem, autocast: bool):
    import torch
    from bench.torch_reference import Objective
    from nst_jax.model import weights
    spec = problem.spec
    obj = Objective(weights.load(), problem.content, problem.styles[0], spec.content_layers, spec.style_layers,
                    spec.style_layer_weights, 1.0, float(problem.loss_weights.style), float(problem.loss_weights.tv))
    x = obj.to_tensor(problem.x0).requires_grad_(True)

    def once():
        x.grad = None
        if autocast:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss, _ = obj(x)
        else:
            loss, _ = obj(x)
        loss.float().backward()
    once()
    return once


def timing(sizes, repeats: int, with_torch: bool, forms_rows: tuple[str, ...] = ()) -> list[dict]:
    from bench.run import interleaved_medians
    rows = []
    for size in sizes:
        fns, problem = {}, None
        fns["nst_jax float32"], problem = value_and_grad(size, "float32")
        fns["nst_jax bfloat16 (XLA conv)"], _ = value_and_grad(size, "bfloat16", "conv")
        fns["nst_jax bfloat16 (im2col)"], _ = value_and_grad(size, "bfloat16", "im2col")
        for forms in forms_rows:   # the planner's convolution forms: float32, and bfloat16 products in the kernel
            fns[f"nst_jax --conv-forms {forms}"], _ = value_and_grad(size, "float32", conv_forms=forms)
        if with_torch:
            fns["torch float32"] = torch_value_and_grad(problem, False)
            fns["torch autocast bfloat16"] = torch_value_and_grad(problem, True)
        before = os.getloadavg()[0]
        medians = interleaved_medians(fns, repeats)
        rows.append({"size": size, "shape": list(problem.content.shape[:2]), "seconds": medians,
                     "load": [before, os.getloadavg()[0]]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def layer_timing(size: int, repeats: int) -> list[dict]:
    """Forward + input gradient of each convolution at its shape for a size² image, per form."""
    import jax
    import jax.numpy as jnp
    from bench.run import interleaved_medians
    from nst_jax.machine import compiler
    from nst_jax.model import layers, vgg
    rows = []
    rng = np.random.default_rng(0)
    for name in vgg.CONV_NAMES[:13]:
        h, w, cout = vgg.feature_shape(name, size, size)
        cin = 3 if name == "conv1_1" else vgg.WIDTHS[vgg.CONV_NAMES.index(name) - 1]
        x = jnp.asarray(rng.standard_normal((1, h, w, cin)), jnp.float32)
        k = jnp.asarray(rng.standard_normal((3, 3, cin, cout)) * 0.05, jnp.float32)
        fns = {}
        for label, dtype, form in (("float32", jnp.float32, "conv"), ("bfloat16 conv", jnp.bfloat16, "conv"),
                                   ("bfloat16 im2col", jnp.bfloat16, "im2col")):
            layers.BF16_FORM = form
            p = layers.prepare_params({name: {"kernel": k, "bias": jnp.zeros(cout)}}, dtype=dtype)[name]
            def fwd_bwd(x, g, p=p):
                y, back = jax.vjp(lambda x: layers.conv3x3(x, p["kernel"], p["kernel_bwd"], p.get("kernel_wino"),
                                                           p.get("kernel_wino_bwd")), x)
                return y, back(g)[0]
            f = compiler.jit(fwd_bwd, xla_defaults=dtype == jnp.bfloat16)
            xx, g = x.astype(dtype), jnp.asarray(rng.standard_normal((1, h, w, cout)), jnp.float32)
            jax.block_until_ready(f(xx, g))
            fns[label] = (lambda f=f, xx=xx, g=g: jax.block_until_ready(f(xx, g)))
        medians = interleaved_medians(fns, repeats)
        flops = 2 * 2 * h * w * 9 * cin * cout  # forward and input gradient
        rows.append({"layer": name, "shape": [h, w, cin, cout], "seconds": medians,
                     "gflops": {k: flops / v / 1e9 for k, v in medians.items()}})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def quality(sizes, iterations: int, pairs, out: Path, form: str = "conv") -> list[dict]:
    import jax
    from nst_jax.files import image
    from nst_jax.model import layers
    from nst_jax.objective import losses
    from nst_jax.transfer import runs as transfer
    from nst_jax.transfer.problem import prepare
    layers.BF16_FORM = form
    rows = []
    out.mkdir(parents=True, exist_ok=True)
    import tempfile
    runs = Path(tempfile.mkdtemp(prefix="precision-runs-"))  # only the side-by-side images go to `out`
    for pair in pairs:
        for size in sizes:
            results = {}
            for precision in ("float32", "bfloat16"):
                cfg = _cfg(size, precision, pair, iterations=iterations, output=str(runs / f"{pair}-{size}-{precision}.png"),
                           checkpoint_every=0, print_every=0)
                t = time.perf_counter()
                r = transfer.run(cfg, progress=False, restart=True)
                results[precision] = (r, time.perf_counter() - t)
            problem = prepare(_cfg(size, "float32", pair))  # the float32 objective measures both
            fun = jax.jit(losses.make_objective(problem.spec))
            aux = problem.aux(jax.random.PRNGKey(0))
            measured = {p: float(fun(jax.numpy.asarray(r.image[None]), aux)[0]) for p, (r, _) in results.items()}
            a, b = results["float32"][0].image, results["bfloat16"][0].image
            psnr = 10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12))
            image.save_image(out / f"{pair}-{size}-float32-vs-bfloat16.jpg",
                             np.concatenate([a, np.ones((a.shape[0], 8, 3), np.float32), b], axis=1))
            rows.append({"pair": pair, "size": size, "iterations": iterations, "float32_loss": measured["float32"],
                         "bfloat16_loss": measured["bfloat16"],
                         "difference": measured["bfloat16"] / measured["float32"] - 1, "psnr": psnr,
                         "seconds": {p: s for p, (_, s) in results.items()}})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(result: dict) -> str:
    lines = [f"# float32 and bfloat16 ({result['device']}, {result['date']})", "",
             f"`{result['command']}`. CPU flags: {result['cpu']}.", ""]
    if result.get("timing"):
        names = list(result["timing"][0]["seconds"])
        lines += ["## value+grad (median seconds, timed in turns; ratio: float32 torch / this)", "",
                  "| size | " + " | ".join(names) + " | load before/after |", "|---" * (len(names) + 2) + "|"]
        for r in result["timing"]:
            ref = r["seconds"].get("torch float32")
            cells = [f"{v:.3f}" + (f" ({ref / v:.2f}×)" if ref else "") for v in r["seconds"].values()]
            lines.append(f"| {r['shape'][1]}×{r['shape'][0]} | " + " | ".join(cells) +
                         f" | {r['load'][0]:.1f}/{r['load'][1]:.1f} |")
        lines.append("")
    if result.get("layers"):
        names = list(result["layers"][0]["gflops"])
        lines += ["## each convolution, forward + input gradient (GFLOP/s)", "",
                  "| layer | H×W×Cin→Cout | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        for r in result["layers"]:
            h, w, ci, co = r["shape"]
            lines.append(f"| {r['layer']} | {h}×{w}×{ci}→{co} | " + " | ".join(f"{v:.0f}" for v in r["gflops"].values()) + " |")
        lines.append("")
    if result.get("quality"):
        lines += ["## quality: both results measured by the float32 objective", "",
                  "| pair | size | iterations | float32 | bfloat16 | difference | PSNR (dB) | seconds f32 / bf16 |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in result["quality"]:
            lines.append(f"| {r['pair']} | {r['size']} | {r['iterations']} | {r['float32_loss']:.6g} | "
                         f"{r['bfloat16_loss']:.6g} | {100 * r['difference']:+.2f} % | {r['psnr']:.1f} | "
                         f"{r['seconds']['float32']:.0f} / {r['seconds']['bfloat16']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.precision", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--conv-forms", default="", help="also time float32 with the planner's forms as --conv-forms "
                    "asks, comma-separated (e.g. auto,f4fa3,f4fa: the fused kernel's bfloat16 products)")
    ap.add_argument("--layers", type=int, default=0, metavar="SIZE", help="also time each convolution at SIZE²")
    ap.add_argument("--quality", type=int, default=0, metavar="N", help="also run N iterations in both precisions")
    ap.add_argument("--quality-sizes", default="256")
    ap.add_argument("--form", default="conv", choices=("conv", "im2col"),
                    help="the bfloat16 convolution form of the quality runs (default: conv)")
    ap.add_argument("--pairs", default=",".join(PAIRS))
    ap.add_argument("--images", default=str(ROOT / "docs" / "precision"))
    args = ap.parse_args(argv)
    import jax
    from nst_jax.machine import hardware
    sizes = [int(s) for s in args.sizes.split(",") if s]
    result = {"device": jax.default_backend(), "date": time.strftime("%Y-%m-%d"),
              "command": "python -m bench.precision " + " ".join(argv if argv is not None else sys.argv[1:]),
              "cpu": ", ".join(sorted(hardware.bfloat16_flags())) or "no bfloat16 units"}
    result["timing"] = timing(sizes, args.repeats, not args.no_torch,
                              tuple(f for f in args.conv_forms.split(",") if f)) if sizes else []
    result["layers"] = result["quality"] = []
    if args.layers:
        result["layers"] = layer_timing(args.layers, args.repeats)
    if args.quality:
        result["quality"] = quality([int(s) for s in args.quality_sizes.split(",")], args.quality,
                                    args.pairs.split(","), Path(args.images), args.form)
    stem = ROOT / "bench" / "results" / f"precision-{result['device']}-{result['date']}"
    if stem.with_suffix(".json").exists():  # the same day's other parts are kept, each with its command
        old = json.loads(stem.with_suffix(".json").read_text())
        result = {**old, **{k: v for k, v in result.items() if v}, "command": old["command"] + "`; `" + result["command"]}
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
