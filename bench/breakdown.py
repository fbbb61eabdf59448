"""`python -m bench.breakdown`: where one iteration's time goes, on this CPU.

At each size (the bench's square images) and for each `--conv-forms` setting, in one process:
- every convolution of the run in the form the planner chose, forward and input gradient, timed alone;
  for the fused kernel also split into input transform, products and output transform (the kernel run
  with phases left out, differenced);
- the network alone (the same forms; value+grad of a fixed linear function of the features): its
  time less the convolutions' is pooling, ReLU and the rest of the network;
- the objective's value+grad: less the network, the Gram matrices and losses;
- one L-BFGS iteration: less the value+grad, the solver and the loop;
- a checkpoint of the run's state written once, spread over the default schedule (`Config.checkpoints`).
Each convolution is also given as direct-convolution GFLOP/s (2·H·W·9·Cin·Cout per call), against the
bound of F(4×4) on this CPU: 4× the matrix product rate torch reaches here (F(4×4) multiplies 4× less
than a direct convolution), float32, and bfloat16 where torch's bfloat16 product is not emulated.

Writes bench/results/breakdown-<tag>-<date>.md (`bench.write_results`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np



def _median_s(fn, repeats: int) -> float:
    import jax
    jax.block_until_ready(fn())
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def matmul_rates(n: int = 4096, rate=None) -> dict[str, float]:
    """GFLOP/s of torch's n² matrix product here: float32, and bfloat16 unless a 512² bfloat16 product runs
    at under half float32's rate (emulated: no AMX or AVX512-BF16 in reach, or capped; minutes at 4096², and
    no bound to give). Empty without torch. `rate(dtype name, n, calls)`: the measurement (torch's)."""
    if rate is None:
        try:
            import torch
        except ImportError:
            return {}
        rate = lambda name, size, calls: _rate(torch, getattr(torch, name), size, calls)   # noqa: E731
    rates = {"float32": rate("float32", n, 3)}
    if rate("bfloat16", 512, 3) >= 0.5 * rate("float32", 512, 3):
        rates["bfloat16"] = rate("bfloat16", n, 3)
    return rates


def _rate(torch, dtype, n: int, calls: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(calls):
        torch.mm(a, b)
    return calls * 2 * n ** 3 / (time.perf_counter() - t) / 1e9


def conv_parts(shape, form: str, repeats: int) -> dict[str, float]:
    """Seconds of one convolution of `shape` in `form`: 'total', and for the fused forms 'input',
    'products' and 'output' (phases left out and differenced)."""
    import jax
    import jax.numpy as jnp
    from nst_jax.model import fused, layers
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, shape.height, shape.width, shape.cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, shape.cin, shape.cout)) / np.sqrt(9 * shape.cin), jnp.float32)
    f = layers.FORMS[form]
    u = k if f.transform is None else f.transform(k)
    if not form.startswith("f4f"):
        fn = jax.jit(lambda x, u: f.conv(x, u, None))
        return {"total": _median_s(lambda: fn(x, u), repeats)}
    method = fused.FORM_METHODS.get(form)
    call = (lambda p: jax.jit(lambda x, u: fused.conv(x, u, p))) if method is None else \
        (lambda p: jax.jit(lambda x, u: fused.conv_bf16(x, u, method, p)))
    t = {p: _median_s(lambda fn=call(p): fn(x, u), repeats) for p in (1, 3, 7)}
    return {"total": t[7], "input": t[1], "products": max(t[3] - t[1], 0.0), "output": max(t[7] - t[3], 0.0)}


def direct_gflop(shape) -> float:
    return 2 * shape.height * shape.width * 9 * shape.cin * shape.cout / 1e9


def breakdown(size: int, conv_forms: str, repeats: int) -> dict:
    """One size and forms setting: per convolution and per part of the iteration, in seconds."""
    import jax
    import jax.numpy as jnp
    from bench import run as bench_run
    from nst_jax.machine import compiler
    from nst_jax.model import convforms, weights
    from nst_jax.objective import losses
    from nst_jax.transfer.config import CHECKPOINT_MINUTES
    w = weights.load()
    content, style = bench_run._images(size)
    problem = bench_run.jax_problem(w, content, style, conv_forms=conv_forms)
    convs = []
    for name, fwd_form, bwd_form in problem.by_layer:
        fwd, bwd = convforms.run_shapes((name,), size, size)[name]
        for direction, shape, form in (("forward", fwd, fwd_form), ("gradient", bwd, bwd_form)):
            if shape is not None:
                convs.append({"layer": name, "direction": direction, "shape": tuple(shape), "form": form,
                              "gflop": direct_gflop(shape), **conv_parts(shape, form, repeats)})
    x = jnp.asarray(np.asarray(problem.x0))[None] if np.ndim(problem.x0) == 3 else jnp.asarray(problem.x0)
    aux, spec = problem.aux, problem.spec
    names = tuple(dict.fromkeys(spec.content_layers + spec.style_layers))
    feats_of = lambda x: losses.features(aux.params, x, spec, names)
    probes = jax.tree_util.tree_map(lambda f: jnp.full(f.shape, 1e-3, f.dtype), feats_of(x))
    # compiled as the value+grad is, so that the difference is the Gram matrices and losses; the probes
    # enter as an elementwise sum (XLA-CPU's dot of two long vectors is slower than the network's ReLU)
    net = compiler.jit(jax.value_and_grad(lambda x: sum(jnp.sum(f * p) for f, p in
                                                        zip(jax.tree_util.tree_leaves(feats_of(x)),
                                                            jax.tree_util.tree_leaves(probes)))))
    seconds = {"network": _median_s(lambda: net(x), repeats),
               "value+grad": _median_s(lambda: problem.value_and_grad(x, aux), repeats)}
    seconds["iteration"] = bench_run.jax_run(problem, x, 12)["iteration_s"]
    state = jax.device_get(problem.init(x, aux))
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        np.savez(Path(folder) / "state.npz", *jax.tree_util.tree_leaves(state))
        seconds["checkpoint write"] = time.perf_counter() - t
    seconds["checkpoint per iteration"] = seconds["checkpoint write"] * seconds["iteration"] / (60 * CHECKPOINT_MINUTES)
    return {"size": size, "conv_forms": conv_forms, "forms": problem.forms, "convs": convs, "seconds": seconds}


def markdown(rows: list[dict], rates: dict[str, float], command: str, cpu: str) -> str:
    bound = {k: 4 * v for k, v in rates.items()}
    lines = [f"# Where an iteration's time goes ({cpu}, {time.strftime('%Y-%m-%d')})", "",
             f"`{command}`, quiet machine, load average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}. "
             "Medians of single calls, in ms. GFLOP/s counts a direct convolution (2·H·W·9·Cin·Cout).", ""]
    if rates:
        lines += ["torch's 4096² matrix product here: " + ", ".join(f"{v:.0f} GFLOP/s {k}" for k, v in rates.items())
                  + ("" if "bfloat16" in rates else " (bfloat16 runs emulated here: not measured)")
                  + "; the bound of F(4×4) counted as direct convolution is 4× that: "
                  + " and ".join(f"{v:.0f}" for v in bound.values()) + " GFLOP/s.", ""]
    for r in rows:
        s, convs = r["seconds"], r["convs"]
        conv_s = sum(c["total"] for c in convs)
        gflop = sum(c["gflop"] for c in convs)
        parts = [("convolutions (below)", conv_s), ("pooling, ReLU, rest of the network", s["network"] - conv_s),
                 ("Gram matrices and losses", s["value+grad"] - s["network"]),
                 ("L-BFGS and the loop", s["iteration"] - s["value+grad"]),
                 ("checkpoints (one write spread over the default schedule)", s["checkpoint per iteration"])]
        bf16 = any(c["form"] in ("f4fb", "f4fa") for c in convs)
        limit = bound.get("bfloat16" if bf16 else "float32")
        lines += [f"## {r['size']}², `--conv-forms {r['conv_forms']}`: {r['forms']}", "",
                  f"One iteration {1000 * s['iteration']:.1f} ms; the convolutions {gflop:.1f} GFLOP at "
                  f"{gflop / conv_s:.0f} GFLOP/s" + (f", {100 * gflop / conv_s / limit:.0f} % of the "
                                                     f"{'bfloat16' if bf16 else 'float32'} bound" if limit else "")
                  + f"; the whole iteration {gflop / s['iteration']:.0f} GFLOP/s.", "",
                  "| part | ms | share |", "|---|---|---|"]
        lines += [f"| {name} | {1000 * v:.1f} | {100 * v / s['iteration']:.0f} % |" for name, v in parts]
        lines += ["", "| layer | direction | H×W×Cin→Cout | form | ms | input transform | products | output transform "
                  "| GFLOP/s |", "|---|---|---|---|---|---|---|---|---|"]
        for c in convs:
            h, w, ci, co = c["shape"]
            split = " | ".join(f"{1000 * c[k]:.2f}" if k in c else "—" for k in ("input", "products", "output"))
            lines.append(f"| {c['layer']} | {c['direction']} | {h}×{w}×{ci}→{co} | {c['form']} | "
                         f"{1000 * c['total']:.2f} | {split} | {c['gflop'] / c['total']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from nst_jax.machine.hardware import describe_cpu
    p = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--conv-forms", default="auto,auto-bf16", help="comma-separated --conv-forms settings")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tag", default="cpu", help="a name for the CPU in the file name (e.g. xeon-amx)")
    args = p.parse_args(argv)
    from nst_jax.machine import allocator
    allocator.keep_freed_memory()   # as `nst-jax run` does where its memory plan has room
    command = "python -m bench.breakdown " + " ".join(argv if argv is not None else sys.argv[1:])
    rates = matmul_rates()
    rows = [breakdown(int(size), forms, args.repeats) for size in args.sizes.split(",")
            for forms in args.conv_forms.split(",")]
    from bench import write_results
    write_results(f"breakdown-{args.tag}", markdown(rows, rates, command, describe_cpu()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
