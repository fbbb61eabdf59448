"""Benchmark nst_jax against the PyTorch reference, in one process, from the same initial image.

    python -m bench [--size 128,256] [--iterations 100] [--device cpu|gpu] [--json out.json]

For each size: per-evaluation (value+grad) and per-iteration times after warm-up (medians), compile
time, final losses after N iterations, time to reach the reference's final loss, PSNR/SSIM between the
two results, peak memory; then nst_jax's other solvers and batched (vmapped) runs. Writes JSON and a
markdown table to bench/results/<device>-<date>.md. Absolute CPU times on shared machines are noisy:
compare the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import image, losses, solvers, weights
from nst_jax.image import psnr
from nst_jax.config import PRESETS

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "nst_jax" / "samples" / "chelsea.png"
STYLE = ROOT / "nst_jax" / "samples" / "ihc.png"
STYLE_LAYERS = PRESETS["default"]["style_layers"]
CONTENT_LAYERS = PRESETS["default"]["content_layers"]
STYLE_WEIGHT, TV_WEIGHT = PRESETS["default"]["style_weight"], PRESETS["default"]["tv_weight"]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) over channels, 7×7 uniform windows, images in [0, 1]."""
    from numpy.lib.stride_tricks import sliding_window_view as windows
    a, b = np.clip(a, 0, 1).astype(np.float64), np.clip(b, 0, 1).astype(np.float64)
    c1, c2, k = 0.01 ** 2, 0.03 ** 2, 7
    vals = []
    for ch in range(a.shape[-1]):
        wa, wb = windows(a[..., ch], (k, k)), windows(b[..., ch], (k, k))
        ma, mb = wa.mean(axis=(-1, -2)), wb.mean(axis=(-1, -2))
        va, vb = wa.var(axis=(-1, -2)), wb.var(axis=(-1, -2))
        cov = (wa * wb).mean(axis=(-1, -2)) - ma * mb
        s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
        vals.append(s.mean())
    return float(np.mean(vals))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _time_to_loss(curve: list[tuple[float, float]], target: float) -> float | None:
    """First time at which the loss is ≤ target; curve is [(seconds, loss)]."""
    for t, loss in curve:
        if loss <= target:
            return t
    return None


def _images(size: int):
    c = image.resize(image.load_image(CONTENT), (size, size))[None]
    s = image.resize(image.load_image(STYLE), (size, size))[None]
    return c, s


def bench_jax(w, content, style, x0, iterations, repeats, solver_name="lbfgs", batch=1, fuse=1):
    spec = losses.ObjectiveSpec(CONTENT_LAYERS, STYLE_LAYERS, (1 / len(STYLE_LAYERS),) * len(STYLE_LAYERS),
                                "max", w.preprocessing)
    params = jax.tree.map(jnp.asarray, w.params)
    targets = jax.jit(lambda p, c, s: losses.compute_targets(p, spec, c, [s]))(params, content, style)
    lw = losses.LossWeights(jnp.float32(1.0), jnp.float32(STYLE_WEIGHT), jnp.float32(TV_WEIGHT))
    fun = lambda x, aux: losses.objective(x, aux[0], aux[1], aux[2], spec)  # gram: no key needed
    aux = (params, targets, lw)
    solver = solvers.make_solver(solver_name, fun)
    x = jnp.asarray(x0)
    out: dict = {"solver": solver_name, "batch": batch, "fuse": fuse}
    one_step, one_init = solver.step, solver.init
    if batch > 1:
        x = jnp.broadcast_to(x, (batch,) + x.shape)
        one_init = jax.vmap(solver.init, in_axes=(0, None))
        one_step = jax.vmap(solver.step, in_axes=(0, None))
    if fuse > 1:  # k steps per call (lax.fori_loop): fewer host syncs; on XLA-CPU convolutions in loops are slower
        many = lambda st, aux: jax.lax.fori_loop(0, fuse, lambda i, s: one_step(s, aux), st)
        init, step = jax.jit(one_init), jax.jit(many, donate_argnums=0)
    else:
        init, step = jax.jit(one_init), jax.jit(one_step, donate_argnums=0)
    if solver_name == "lbfgs" and batch == 1:
        vg = jax.jit(jax.value_and_grad(fun, has_aux=True))
        t = time.perf_counter()
        jax.block_until_ready(vg(x, aux))
        out["compile_eval_s"] = time.perf_counter() - t
        out["eval_s"] = _median_time(lambda: jax.block_until_ready(vg(x, aux)), repeats)
    t = time.perf_counter()
    state = jax.block_until_ready(init(x, aux))
    out["init_s"] = time.perf_counter() - t
    t = time.perf_counter()
    compiled = step.lower(state, aux).compile()
    out["compile_step_s"] = time.perf_counter() - t
    loss0 = float(jnp.mean(state.value))
    curve, per_it = [(0.0, loss0)], []
    start = time.perf_counter()
    for _ in range(max(1, iterations // fuse) if iterations else 0):
        t = time.perf_counter()
        state = compiled(state, aux)
        loss = float(jnp.mean(state.value))  # one host sync per call, as the run loop does per step
        per_it.append((time.perf_counter() - t) / fuse)
        curve.append((time.perf_counter() - start, loss))
    out["iteration_s"] = statistics.median(per_it) if per_it else None
    out["per_run_iteration_s"] = out["iteration_s"] / batch if per_it else None
    out["total_s"] = time.perf_counter() - start
    out["final_loss"] = curve[-1][1]
    out["evaluations_per_iteration"] = float(jnp.mean(state.evaluations - 1)) / max(iterations, 1)
    out["image"] = np.asarray(state.x if batch == 1 else state.x[0])[0]
    out["curve"] = curve
    return out


def bench_torch(w, content, style, x0, iterations, repeats, device):
    import torch
    from bench.torch_reference import Objective, run_lbfgs

    torch.manual_seed(0)
    obj = Objective(w, content[0], style[0], CONTENT_LAYERS, STYLE_LAYERS,
                    (1 / len(STYLE_LAYERS),) * len(STYLE_LAYERS), 1.0, STYLE_WEIGHT, TV_WEIGHT, device=device)
    sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
    x = obj.to_tensor(x0[0]).requires_grad_(True)

    def eval_once():
        x.grad = None
        loss, _ = obj(x)
        loss.backward()
        sync()

    eval_once()
    out = {"eval_s": _median_time(eval_once, repeats)}
    times = []
    start = [0.0]

    def callback(i, loss):
        sync()
        times.append((time.perf_counter() - start[0], loss))

    start[0] = time.perf_counter()
    img, curve = run_lbfgs(obj, x0[0], iterations, callback=callback)
    total = time.perf_counter() - start[0]
    # times[i] is when the loss after i iterations was known; the final one is computed after the loop
    times.append((total, curve[-1]))
    out["curve"] = times
    out["final_loss"] = curve[-1]
    out["total_s"] = total
    steps = np.diff([t for t, _ in times[1:]])
    out["iteration_s"] = float(np.median(steps)) if len(steps) else None
    out["image"] = img
    if device == "cuda":
        out["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def run_size(w, size, iterations, repeats, device, solver_names, batches, fuse=1):
    content, style = _images(size)
    x0 = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), content.shape, jnp.float32))
    row = {"size": size, "iterations": iterations}
    ours = bench_jax(w, content, style, x0, iterations, repeats, fuse=fuse)
    row["jax_peak_rss_mb"] = peak_rss_mb()
    if device != "none":
        ref = bench_torch(w, content, style, x0, iterations, repeats, "cuda" if device == "gpu" else "cpu")
        row["torch_peak_rss_mb"] = peak_rss_mb()
        target = ref["final_loss"]
        t_ours, t_ref = _time_to_loss(ours["curve"], target), _time_to_loss(ref["curve"], target)
        row.update({
            "torch_eval_s": ref["eval_s"], "torch_iteration_s": ref["iteration_s"],
            "torch_final_loss": ref["final_loss"], "torch_total_s": ref["total_s"],
            "time_to_ref_loss_jax_s": t_ours, "time_to_ref_loss_torch_s": t_ref,
            "speedup_time_to_loss": (t_ref / t_ours) if (t_ours and t_ref) else None,
            "speedup_eval": ref["eval_s"] / ours["eval_s"],
            "final_loss_gap": (ours["final_loss"] - ref["final_loss"]) / ref["final_loss"],
            "psnr_db": psnr(ours["image"], ref["image"]), "ssim": ssim(ours["image"], ref["image"]),
        })
        if "peak_mem_mb" in ref:
            row["torch_peak_gpu_mb"] = ref["peak_mem_mb"]
    row.update({f"jax_{k}": v for k, v in ours.items() if k not in ("image", "curve", "solver", "batch")})
    row["solvers"] = []
    for name in solver_names:
        r = ours if name == "lbfgs" else bench_jax(w, content, style, x0, iterations, repeats, name)
        row["solvers"].append({k: v for k, v in r.items() if k not in ("image", "curve")})
    row["batched"] = []
    for b in batches:
        r = bench_jax(w, content, style, x0, max(2, min(iterations, 10)), repeats, "lbfgs", batch=b)
        row["batched"].append({k: v for k, v in r.items() if k not in ("image", "curve")})
    if jax.devices()[0].platform == "gpu":
        stats = jax.devices()[0].memory_stats() or {}
        row["jax_peak_gpu_mb"] = stats.get("peak_bytes_in_use", 0) / 2 ** 20
    return row


def _fmt(v, spec=".3g"):
    return "—" if v is None else format(v, spec)


def markdown(result: dict) -> str:
    lines = [f"# nst_jax vs PyTorch reference — {result['device']}, {result['date']}",
             "", f"Command: `{result['command']}`", "",
             f"jax {result['versions']['jax']}, torch {result['versions'].get('torch', '—')}, "
             f"{result['machine']}. Objective: content {','.join(CONTENT_LAYERS)}, style "
             f"{','.join(STYLE_LAYERS)}, k={STYLE_WEIGHT:g}, tv={TV_WEIGHT:g}; both from the same noise image; "
             f"L-BFGS history 100, no line search (torch.optim.LBFGS for the reference).", "",
             "| size | iters | eval s (jax / torch) | iter s (jax / torch) | compile s | final loss (jax / torch) | "
             "gap | time to torch's loss s (jax / torch) | speed-up | PSNR dB | SSIM | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['size']}² | {r['iterations']} | {_fmt(r['jax_eval_s'])} / {_fmt(r.get('torch_eval_s'))} | "
            f"{_fmt(r['jax_iteration_s'])} / {_fmt(r.get('torch_iteration_s'))} | {_fmt(r['jax_compile_step_s'])} | "
            f"{_fmt(r['jax_final_loss'], '.5g')} / {_fmt(r.get('torch_final_loss'), '.5g')} | "
            f"{_fmt(r.get('final_loss_gap'), '+.2%')} | {_fmt(r.get('time_to_ref_loss_jax_s'))} / "
            f"{_fmt(r.get('time_to_ref_loss_torch_s'))} | {_fmt(r.get('speedup_time_to_loss'), '.2f')}× | "
            f"{_fmt(r.get('psnr_db'), '.1f')} | {_fmt(r.get('ssim'), '.3f')} | {_fmt(r.get('torch_peak_rss_mb', r['jax_peak_rss_mb']), '.0f')} |")
    lines += ["", "## nst_jax solvers (same start, same iterations)", "",
              "| size | solver | iter s | evals / iter | final loss |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        for s in r["solvers"]:
            lines.append(f"| {r['size']}² | {s['solver']} | {_fmt(s['iteration_s'])} | "
                         f"{_fmt(s['evaluations_per_iteration'], '.2f')} | {_fmt(s['final_loss'], '.5g')} |")
    lines += ["", "## Batched runs (vmap over runs, one compiled step)", "",
              "| size | runs | step s | per-run s | gain vs 1 run |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        base = next((b["per_run_iteration_s"] for b in r["batched"] if b["batch"] == 1), None)
        for b in r["batched"]:
            gain = base / b["per_run_iteration_s"] if base and b["per_run_iteration_s"] else None
            lines.append(f"| {r['size']}² | {b['batch']} | {_fmt(b['iteration_s'])} | "
                         f"{_fmt(b['per_run_iteration_s'])} | {_fmt(gain, '.2f')}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="128,256", help="comma-separated square sizes")
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5, help="repeats for the per-evaluation medians")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--solvers", default="lbfgs,jaxopt,adam")
    p.add_argument("--batch", default="1,4,16", help="batched run sizes (vmap)")
    p.add_argument("--no-torch", action="store_true", help="skip the reference")
    p.add_argument("--fuse", type=int, default=1, help="L-BFGS steps per compiled call (try 10 on GPU)")
    p.add_argument("--json", default=None, help="also write the JSON here")
    p.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    platform_name = jax.devices()[0].platform
    if args.device == "gpu" and platform_name != "gpu":
        print(f"error: --device gpu but JAX runs on {platform_name}", file=sys.stderr)
        return 2
    w = weights.load()
    versions = {"jax": jax.__version__}
    if not args.no_torch:
        import torch
        versions["torch"] = torch.__version__
    device = "none" if args.no_torch else args.device
    rows = []
    for size in [int(s) for s in args.size.split(",") if s]:
        print(f"size {size}…", file=sys.stderr, flush=True)
        rows.append(run_size(w, size, args.iterations, args.repeats, device,
                             [s for s in args.solvers.split(",") if s], [int(b) for b in args.batch.split(",") if b], args.fuse))
    date = dt.date.today().isoformat()
    dev_name = jax.devices()[0].device_kind if platform_name == "gpu" else f"{os.cpu_count()} cores"
    result = {"device": f"{platform_name} ({dev_name})", "date": date, "machine": platform.platform(),
              "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
              "versions": versions, "rows": rows}
    md = markdown(result)
    print(md)
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{platform_name}-{date}"
    (out_dir / f"{stem}.md").write_text(md)
    text = json.dumps(result, indent=2, default=float)
    (out_dir / f"{stem}.json").write_text(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0
