"""`python -m bench.gram_products`: the Gram matrix's product FᵀF by XLA and by nst_jax's native library.

At one size (the bench's square images), in one process, freed memory kept as `nst-jax run` keeps it:
- FᵀF alone for each style layer's features (M positions × C channels), XLA's product (`tmm`, compiled
  with nst_jax's options) and the native one (`fused.gram`), timed in turns, medians;
- the Gatys objective's value+grad as a run plans it (the fused forms), with the Gram statistic's native
  variant and with XLA's product, timed in turns, medians; the largest difference of the two gradients.
Writes bench/results/gram-products-<tag>-<date>.md (`bench.write_results`).
"""

from __future__ import annotations

import sys

import numpy as np


def products(size: int, rounds: int) -> list[dict]:
    """FᵀF of each style layer's features at `size`², XLA's and the native product, in seconds."""
    import jax
    import jax.numpy as jnp
    from bench.run import STYLE_LAYERS, warmed_medians
    from nst_jax.machine import compiler
    from nst_jax.model import fused, vgg_layers
    from nst_jax.objective.statistics._common import tmm
    xla, native = compiler.jit(lambda f: tmm(f, f)), compiler.jit(fused.gram)
    rows = []
    for layer in STYLE_LAYERS:
        h, w, c = vgg_layers.feature_shape(layer, size, size)
        f = jnp.asarray(np.random.default_rng(0).standard_normal((h * w, c)), jnp.float32)
        seconds = warmed_medians({"xla": lambda: xla(f), "native": lambda: native(f)}, rounds)
        rows.append({"layer": layer, "m": h * w, "c": c, "gflop": 2 * h * w * c * c / 1e9, **seconds})
        jax.clear_caches()
    return rows


def value_and_grad(size: int, rounds: int) -> dict:
    """The objective's value+grad with the native and with XLA's Gram product, and their gradients' difference."""
    import jax
    import jax.numpy as jnp
    from bench import run as bench_run
    from bench.run import warmed_medians
    from nst_jax.machine import compiler
    from nst_jax.model import weights
    from nst_jax.objective import losses
    problem = bench_run.jax_problem(weights.load(), *bench_run._images(size))
    x = jnp.asarray(np.asarray(problem.x0))[None] if np.ndim(problem.x0) == 3 else jnp.asarray(problem.x0)
    fns = {name: compiler.jit(jax.value_and_grad(losses.make_objective(problem.spec._replace(native_statistic=flag)),
                                                 has_aux=True)) for name, flag in (("native", True), ("xla", False))}
    grads = {name: np.asarray(fn(x, problem.aux)[1]) for name, fn in fns.items()}
    seconds = warmed_medians({name: (lambda fn=fn: fn(x, problem.aux)[1]) for name, fn in fns.items()}, rounds)
    diff = float(np.abs(grads["native"] - grads["xla"]).max() / np.abs(grads["xla"]).max())
    return {"forms": problem.forms, **seconds, "gradient difference": diff}


def markdown(size: int, rows: list[dict], whole: dict, command: str, cpu: str, caps: str | None = None) -> str:
    from bench.run import native_bench_head
    ms = lambda s: f"{1e3 * s:.2f}"
    lines = [*native_bench_head(f"The Gram matrix's product FᵀF, XLA's and the native library's ({cpu})", command, caps),
             f"## FᵀF alone, the style layers' features at {size}²", "",
             "| layer | M × C | XLA ms | native ms | XLA GFLOP/s | native GFLOP/s (full product counted) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['m']} × {r['c']} | {ms(r['xla'])} | {ms(r['native'])} | "
                     f"{r['gflop'] / r['xla']:.0f} | {r['gflop'] / r['native']:.0f} |")
    lines.append(f"| all | | {ms(sum(r['xla'] for r in rows))} | {ms(sum(r['native'] for r in rows))} | | |")
    lines += ["", f"## The Gatys objective's value+grad at {size}² ({whole['forms']})", "",
              "| Gram product | ms |", "|---|---|", f"| XLA's | {ms(whole['xla'])} |",
              f"| native | {ms(whole['native'])} |", "",
              f"The gradients differ by at most {whole['gradient difference']:.1e} of the largest entry."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bench.run import native_library_bench

    def measure(size, rounds, command, cpu, caps):
        return "gram-products", markdown(size, products(size, rounds), value_and_grad(size, rounds), command, cpu, caps)
    return native_library_bench(argv, "python -m bench.gram_products", __doc__, 11, measure)

if __name__ == "__main__":
    sys.exit(main())
