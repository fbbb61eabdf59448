"""`python -m bench.sorts`: sorting along the positions by XLA and by nst_jax's native library.

The sliced Wasserstein and histogram statistics sort every style layer's features (or their projections)
along the positions at each iteration. At one size (the bench's square images), in one process, freed
memory kept as `nst-jax run` keeps it:
- each style layer's features (M positions × C channels) sorted alone, XLA's `jnp.sort` (compiled with
  nst_jax's options) and the native `fused.sort_columns`, timed in turns, medians;
- each sorting statistic's objective value+grad as a run plans it, with the native sorts and with XLA's
  (`statistics._common.xla_sorts`), timed in turns, medians; whether the gradients have the same bits,
  and how far the values differ.
Writes bench/results/sorts-<tag>-<date>.md (`bench.write_results`).
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np


SORTING = ("sliced_wasserstein", "histogram")


def sorts(size: int, rounds: int) -> list[dict]:
    """Each style layer's features at `size`² sorted along the positions, XLA's sort and the native one, in
    seconds."""
    import jax
    import jax.numpy as jnp
    from bench.run import STYLE_LAYERS, warmed_medians
    from nst_jax.machine import compiler
    from nst_jax.model import fused, vgg_layers
    xla, native = compiler.jit(lambda f: jnp.sort(f, axis=0)), compiler.jit(lambda f: fused.sort_columns(f)[0])
    rows = []
    for layer in STYLE_LAYERS:
        h, w, c = vgg_layers.feature_shape(layer, size, size)
        f = jnp.asarray(np.random.default_rng(0).standard_normal((h * w, c)), jnp.float32)
        seconds = warmed_medians({"xla": lambda: xla(f), "native": lambda: native(f)}, rounds)
        rows.append({"layer": layer, "m": h * w, "c": c, **seconds})
        jax.clear_caches()
    return rows


def value_and_grad(statistic: str, size: int, rounds: int) -> dict:
    """The objective's value+grad for `statistic` with the native sorts and with XLA's, whether their
    gradients have the same bits, and their values' relative difference."""
    import jax
    import jax.numpy as jnp
    from bench import run as bench_run
    from bench.run import warmed_medians
    from nst_jax.machine import compiler
    from nst_jax.model import weights
    from nst_jax.objective import losses
    from nst_jax.objective.statistics import _common
    problem = bench_run.jax_problem(weights.load(), *bench_run._images(size), style_statistic=statistic)
    x = jnp.asarray(np.asarray(problem.x0))[None] if np.ndim(problem.x0) == 3 else jnp.asarray(problem.x0)
    fns, results = {}, {}
    for name in ("native", "xla"):
        fn = compiler.jit(jax.value_and_grad(losses.make_objective(problem.spec), has_aux=True))
        with _common.xla_sorts() if name == "xla" else contextlib.nullcontext():
            (value, _), grad = fn(x, problem.aux)   # traced here
        fns[name], results[name] = fn, (np.asarray(value), np.asarray(grad))
    seconds = warmed_medians({name: (lambda fn=fn: fn(x, problem.aux)[1]) for name, fn in fns.items()}, rounds)
    (v1, g1), (v0, g0) = results["native"], results["xla"]
    jax.clear_caches()
    return {"statistic": statistic, "forms": problem.forms, **seconds,
            "same gradient": bool(np.array_equal(g1.view(np.uint32), g0.view(np.uint32))),
            "value difference": float(abs(v1 - v0) / abs(v0))}


def markdown(size: int, rows: list[dict], wholes: list[dict], command: str, cpu: str, caps: str | None = None) -> str:
    from bench.run import native_bench_head
    ms = lambda s: f"{1e3 * s:.1f}"
    lines = [*native_bench_head(f"Sorting along the positions, XLA's and the native library's ({cpu})", command, caps),
             f"## One sort, the style layers' features at {size}²", "",
             "| layer | M × C | XLA ms | native ms | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['m']} × {r['c']} | {ms(r['xla'])} | {ms(r['native'])} | "
                     f"{r['xla'] / r['native']:.1f}× |")
    xla, native = sum(r["xla"] for r in rows), sum(r["native"] for r in rows)
    lines += [f"| all | | {ms(xla)} | {ms(native)} | {xla / native:.1f}× |", "",
              f"## The objective's value+grad at {size}², per sorting statistic", "",
              "| statistic | convolution forms | XLA's sorts ms | native sorts ms | ratio | gradient | value |",
              "|---|---|---|---|---|---|---|"]
    for w in wholes:
        gradient = "the same bits" if w["same gradient"] else "differs"
        value = "the same bits" if w["value difference"] == 0 else f"{w['value difference']:.1e} apart"
        lines.append(f"| {w['statistic']} | {w['forms']} | {ms(w['xla'])} | {ms(w['native'])} | "
                     f"{w['xla'] / w['native']:.1f}× | {gradient} | {value} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bench.run import native_library_bench

    def measure(size, rounds, command, cpu, caps):
        rows = sorts(size, rounds)
        wholes = [value_and_grad(name, size, rounds) for name in SORTING]
        return "sorts", markdown(size, rows, wholes, command, cpu, caps)
    return native_library_bench(argv, "python -m bench.sorts", __doc__, 7, measure)

if __name__ == "__main__":
    sys.exit(main())
