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
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.machine import allocator, compiler
from nst_jax.files import image
from nst_jax.objective import losses
from nst_jax import solvers
from nst_jax.transfer import steps, runs as transfer
from nst_jax.model import vgg, weights
from nst_jax.transfer.inputs import Inputs
from nst_jax.transfer.config import PRESETS, with_preset
from nst_jax.files.image import psnr

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


def value_and_grad_flops(size: int, layers=tuple(STYLE_LAYERS) + tuple(CONTENT_LAYERS)) -> float:
    """Floating-point operations of one value+grad of the objective on a size² image: every
    convolution up to the deepest layer twice (forward and input gradient; multiply-add = 2), plus
    the Gram matrices and their gradients (2·M·C² each). Elementwise work is not counted."""
    deepest = max(vgg.depth_index(n) for n in layers)
    total, cin, conv_i = 0.0, 3, 0
    for name, _, kind in vgg.LAYERS[: deepest + 1]:
        if kind == "conv":
            h, w, cout = vgg.feature_shape(name, size, size)
            total += 2 * (2 * h * w * 9 * cin * cout)
            cin, conv_i = cout, conv_i + 1
    for name in STYLE_LAYERS:
        h, w, c = vgg.feature_shape(name, size, size)
        total += 2 * (2 * h * w * c * c)
    return total


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds of each function, timed in turns (A, B, A, B, …) so that the machine's load
    drifts equally over all of them: on shared CPUs consecutive blocks of repeats differ by 10–20 %."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def warmed_medians(fns: dict, repeats: int) -> dict:
    """Each of `fns` (name → call returning a JAX array) called once, then timed in turns to completion
    (`interleaved_medians`)."""
    done = {name: (lambda fn=fn: jax.block_until_ready(fn())) for name, fn in fns.items()}
    for fn in done.values():
        fn()
    return interleaved_medians(done, repeats)


def native_bench_head(title: str, command: str, caps: str | None) -> list[str]:
    """The first lines of a native-library bench's table: its title, command, load and instruction-set caps."""
    capped = [f"Instruction sets capped by the environment: {caps}. The title names the CPU; these figures stand "
              "in for a CPU with only the capped sets, not measured on one.", ""] if caps else []
    return [f"# {title}", "", f"`{command}`; load average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}. "
            "Medians of calls in turns, freed memory kept.", "", *capped]


def native_library_bench(argv: list[str] | None, prog: str, doc: str, rounds: int, measure) -> int:
    """The command line of a bench of nst_jax's native library against XLA (`bench.gram_products`,
    `bench.sorts`): --size, --rounds, --tag; one `error:` line without the library; freed memory kept as
    `nst-jax run` keeps it; `measure(size, rounds, command, cpu, caps)` → (file name, Markdown), written
    to bench/results."""
    from nst_jax.machine.hardware import describe_cpu
    from nst_jax.model import fused
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--tag", default="cpu", help="a name for the CPU in the file name (e.g. xeon-amx)")
    args = p.parse_args(argv)
    if fused.why_unavailable():
        print(f"error: the native library is not available here: {fused.why_unavailable()}", file=sys.stderr)
        return 2
    allocator.keep_freed_memory()
    command = f"{prog} " + " ".join(argv if argv is not None else sys.argv[1:])
    name, text = measure(args.size, args.rounds, command, describe_cpu(), isa_caps())
    from bench import write_results
    write_results(f"{name}-{args.tag}", text)
    return 0


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


class JaxProblem(NamedTuple):
    """nst_jax's objective and solver for one size, compiled: what the run CLI does, minus the files."""

    solver: str
    batch: int
    fuse: int
    aux: tuple
    init: Callable
    step: Callable
    value_and_grad: Callable
    value_and_grad_xla_defaults: Callable | None
    forms: str = ""
    by_layer: tuple = ()   # (layer, forward form, gradient form) per convolution
    x0: np.ndarray | None = None
    spec: losses.ObjectiveSpec | None = None


def jax_problem(w, content, style, solver_name="lbfgs", batch=1, fuse=1, conv_forms="auto",
                style_statistic="gram") -> JaxProblem:
    """The run's own problem (`transfer.build_problem`, default settings) on these square images, with
    the convolution forms a run would have here (`planning.with_forms`: measured and cached)."""
    from nst_jax.transfer import planning
    from nst_jax.scale.sharding import Layout
    cfg = with_preset("default", content=str(CONTENT), styles=(str(STYLE),), size=content.shape[1],
                      optimizer=solver_name, conv_forms=conv_forms, style_statistic=style_statistic)
    plan = planning.plain(cfg)._replace(layout=Layout(1, tuple(content.shape[1:])))
    plan = planning.with_forms(cfg, plan, say=lambda line: print(line, file=sys.stderr, flush=True))
    problem = transfer.build_problem(cfg, w, Inputs(content[0], [style[0]]), plan)
    fun = losses.make_objective(problem.spec)
    aux = problem.aux(steps.step_key(cfg, 0))
    solver = solvers.make_solver(solver_name, fun)
    one_step, one_init = solver.step, solver.init
    if batch > 1:
        one_init = jax.vmap(solver.init, in_axes=(0, None))
        one_step = jax.vmap(solver.step, in_axes=(0, None))
    if fuse > 1:  # k steps per call (lax.fori_loop): fewer host syncs; on XLA-CPU convolutions in loops are slower
        many = lambda st, aux: jax.lax.fori_loop(0, fuse, lambda i, s: one_step(s, aux), st)
        init, step = compiler.jit(one_init), compiler.jit(many, donate_argnums=0)
    else:
        init, step = compiler.jit(one_init), compiler.jit(one_step, donate_argnums=0)
    vg = compiler.jit(jax.value_and_grad(fun, has_aux=True))
    vg0 = jax.jit(jax.value_and_grad(fun, has_aux=True)) if compiler.compiler_options() else None
    from nst_jax.model import convforms
    return JaxProblem(solver_name, batch, fuse, aux, init, step, vg, vg0, convforms.describe(plan.forms),
                      plan.forms.by_layer, problem.x0, problem.spec)


def jax_run(problem: JaxProblem, x0, iterations: int, target=None,
            max_iterations: int | None = None, turn: Callable[[], None] | None = None) -> dict:
    """Run `iterations` steps from x0 (then, if `target` is not reached yet, on up to `max_iterations`
    until it is). Times include the host sync per call that the run loop does for its progress bar.
    `turn` (optional) is called once per iteration after each call, for the first `iterations`, outside
    nst_jax's time: the reference's iteration, so that the two are timed in turns; `target` may then be a callable, asked
    once those turns are done."""
    aux, fuse, batch = problem.aux, problem.fuse, problem.batch
    x = jnp.asarray(x0)
    if batch > 1:
        x = jnp.broadcast_to(x, (batch,) + x.shape)
    out: dict = {"solver": problem.solver, "batch": batch, "fuse": fuse}
    t = time.perf_counter()
    state = jax.block_until_ready(problem.init(x, aux))
    out["init_s"] = time.perf_counter() - t
    t = time.perf_counter()
    compiled = problem.step.lower(state, aux).compile()
    out["compile_step_s"] = time.perf_counter() - t
    curve, per_it = [(0.0, float(jnp.mean(state.value)))], []
    limit = max(iterations, max_iterations or 0)
    own = 0.0   # nst_jax's own time: the turns of the reference are not counted
    done = turns = 0
    while done < limit:
        if done >= iterations:
            target = target() if callable(target) else target
            if target is None or curve[-1][1] <= target:
                break
        t = time.perf_counter()
        state = compiled(state, aux)
        loss = float(jnp.mean(state.value))  # one host sync per call, as the run loop does per step
        done += fuse
        seconds = time.perf_counter() - t
        own += seconds
        per_it.append(seconds / fuse)
        curve.append((own, loss))
        if "final_loss" not in out and done >= iterations:  # the result after N iterations
            out["final_loss"] = loss
            out["image"] = np.asarray(state.x if batch == 1 else state.x[0])[0]
            out["evaluations_per_iteration"] = float(jnp.mean(state.evaluations - 1)) / max(done, 1)
            out["total_s"] = own
        while turn is not None and turns < min(done, iterations):  # one of the reference's per iteration
            turn()
            turns += 1
    if iterations == 0:
        out.update(final_loss=curve[0][1], image=np.asarray(x if batch == 1 else x[0])[0],
                   evaluations_per_iteration=0.0, total_s=0.0)
    out["iteration_s"] = statistics.median(per_it) if per_it else None
    out["per_run_iteration_s"] = out["iteration_s"] / batch if per_it else None
    out["curve"] = curve
    out["iterations_run"] = done
    return out


def torch_objective(w, content, style, device):
    from bench.torch_reference import Objective

    return Objective(w, content[0], style[0], CONTENT_LAYERS, STYLE_LAYERS,
                     (1 / len(STYLE_LAYERS),) * len(STYLE_LAYERS), 1.0, STYLE_WEIGHT, TV_WEIGHT, device=device)


def torch_sync(device):
    """A function that waits for torch's queued work on `device` ('cuda' or 'cpu', where nothing is queued)."""
    import torch

    return (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)


def torch_eval_fn(obj, x0, device):
    sync = torch_sync(device)
    x = obj.to_tensor(x0[0]).requires_grad_(True)

    def eval_once():
        x.grad = None
        loss, _ = obj(x)
        loss.backward()
        sync()
    return eval_once


class TorchTurns:
    """The reference's L-BFGS one iteration per call (`torch_reference.LBFGSSteps`), each call timed on its
    own: `jax_run(..., turn=TorchTurns(...))` times the two optimizers' iterations in turns, so a machine
    whose speed drifts slows both alike. `result()` after the turns: the reference's curve (its own time,
    the loss after i iterations), final loss, image and median time per iteration."""

    def __init__(self, obj, x0, device):
        import torch
        from bench.torch_reference import LBFGSSteps

        torch.manual_seed(0)
        self.sync = torch_sync(device)
        self.device = device
        self.steps = LBFGSSteps(obj, x0[0])
        self.own, self.curve, self.durations, self._result = 0.0, [], [], None

    def __call__(self) -> None:
        t = time.perf_counter()
        loss = self.steps.step()  # the loss before this step: after len(self.curve) iterations
        self.sync()
        self.durations.append(time.perf_counter() - t)
        self.own += self.durations[-1]
        self.curve.append((self.own, loss))

    def result(self) -> dict:
        if self._result is None:
            t = time.perf_counter()
            img, final = self.steps.final()
            self.sync()
            self.own += time.perf_counter() - t
            self._result = {"curve": self.curve + [(self.own, final)], "final_loss": final, "total_s": self.own,
                            "iteration_s": float(np.median(self.durations)) if self.durations else None,
                            "image": img}
            if self.device == "cuda":
                import torch
                self._result["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        return self._result

    def final_loss(self) -> float:
        return self.result()["final_loss"]


def coarse_to_fine(w, problem: JaxProblem, size, x0, iterations, coarse_iterations, target) -> dict:
    """nst_jax's multi-scale start (`--scales S/2,S --scale-iterations K,N`) from the same noise image:
    K iterations at half size, the result upsampled, then the full-size run; the coarse stage's
    compile-free time is counted in full."""
    half = size // 2
    c2, s2 = _images(half)
    coarse = jax_run(jax_problem(w, c2, s2, fuse=problem.fuse), image.resize(x0[0], (half, half))[None],
                     coarse_iterations)
    x1 = np.clip(image.resize(coarse["image"], (size, size)), 0, 1)[None].astype(np.float32)
    fine = jax_run(problem, x1, iterations, target, 2 * iterations)  # the full-size problem, as built
    curve = [(t + coarse["total_s"], loss) for t, loss in fine["curve"]]
    return {"coarse_size": half, "coarse_iterations": coarse_iterations, "coarse_s": coarse["total_s"],
            "final_loss": fine["final_loss"], "time_to_ref_loss_s": _time_to_loss(curve, target),
            "fine_iteration_s": fine["iteration_s"], "image": fine["image"]}


def run_size(w, size, iterations, repeats, device, solver_names, batches, fuse=1, coarse=0, conv_forms="auto"):
    content, style = _images(size)
    x0 = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), content.shape, jnp.float32))
    row = {"size": size, "iterations": iterations}

    def timed(p: JaxProblem):
        """p's value+grad at x0 as a timed callable, compiled and run once now."""
        once = lambda: jax.block_until_ready(p.value_and_grad(jnp.asarray(x0), p.aux))
        once()
        return once

    t = time.perf_counter()
    problem = jax_problem(w, content, style, fuse=fuse, conv_forms=conv_forms)
    evals = {"jax": timed(problem)}
    row["jax_compile_eval_s"] = time.perf_counter() - t
    row["conv_forms"] = problem.forms
    if jax.default_backend() == "cpu":  # the same objective with XLA's convolution in every layer
        # its own parameters: no Winograd kernels
        evals["jax_xla_conv"] = timed(jax_problem(w, content, style, fuse=fuse, conv_forms="xla"))
    if conv_forms != "auto":  # the float32 planner's forms beside the ones asked for
        evals["jax_auto"] = timed(jax_problem(w, content, style, fuse=fuse))
    if problem.value_and_grad_xla_defaults is not None:
        vg0 = problem.value_and_grad_xla_defaults
        jax.block_until_ready(vg0(jnp.asarray(x0), problem.aux))
        evals["jax_xla_defaults"] = lambda: jax.block_until_ready(vg0(jnp.asarray(x0), problem.aux))
    ref_device = "cuda" if device == "gpu" else "cpu"
    if device != "none":
        obj = torch_objective(w, content, style, ref_device)
        evals["torch"] = torch_eval_fn(obj, x0, ref_device)
        evals["torch"]()  # warm-up
    medians = interleaved_medians(evals, repeats)
    row["jax_eval_s"] = medians["jax"]
    row["value_and_grad_gflop"] = value_and_grad_flops(size) / 1e9
    row["jax_eval_gflops_per_s"] = row["value_and_grad_gflop"] / medians["jax"]
    row["jax_eval_xla_defaults_s"] = medians.get("jax_xla_defaults")
    row["jax_eval_xla_conv_s"] = medians.get("jax_xla_conv")
    row["jax_eval_auto_s"] = medians.get("jax_auto")
    # the two optimizers' iterations in turns; nst_jax runs on past N iterations, up to 2N, if it has not
    # reached the reference's loss at N
    turns = TorchTurns(obj, x0, ref_device) if device != "none" else None
    ours = jax_run(problem, x0, iterations, turns and turns.final_loss, 2 * iterations if turns else None, turns)
    row["jax_peak_rss_mb"] = peak_rss_mb()
    if device != "none":
        ref = turns.result()
        target = ref["final_loss"]
        row["torch_peak_rss_mb"] = peak_rss_mb()
        t_ours, t_ref = _time_to_loss(ours["curve"], target), _time_to_loss(ref["curve"], target)
        row.update({
            "torch_eval_s": medians["torch"], "torch_iteration_s": ref["iteration_s"],
            "torch_final_loss": ref["final_loss"], "torch_total_s": ref["total_s"],
            "time_to_ref_loss_jax_s": t_ours, "time_to_ref_loss_torch_s": t_ref,
            "jax_iterations_to_ref_loss": next((i for i, (_, v) in enumerate(ours["curve"]) if v <= target), None),
            "speedup_time_to_loss": (t_ref / t_ours) if (t_ours and t_ref) else None,
            "speedup_eval": medians["torch"] / medians["jax"],
            "torch_eval_gflops_per_s": row["value_and_grad_gflop"] / medians["torch"],
            "speedup_iteration": (ref["iteration_s"] / ours["iteration_s"]) if ref["iteration_s"] else None,
            "final_loss_gap": (ours["final_loss"] - ref["final_loss"]) / ref["final_loss"],
            "psnr_db": psnr(ours["image"], ref["image"]), "ssim": ssim(ours["image"], ref["image"]),
        })
        if "peak_mem_mb" in ref:
            row["torch_peak_gpu_mb"] = ref["peak_mem_mb"]
        if coarse:
            c2f = coarse_to_fine(w, problem, size, x0, iterations, coarse, target)
            c2f["speedup_time_to_loss"] = (t_ref / c2f["time_to_ref_loss_s"]) if c2f["time_to_ref_loss_s"] else None
            c2f.pop("image")
            row["coarse_to_fine"] = c2f
    row.update({f"jax_{k}": v for k, v in ours.items() if k not in ("image", "curve", "solver", "batch")})
    row["solvers"] = []
    for name in solver_names:
        r = ours if name == "lbfgs" else jax_run(jax_problem(w, content, style, name), x0, iterations)
        row["solvers"].append({k: v for k, v in r.items() if k not in ("image", "curve")})
    row["batched"] = []
    for b in batches:
        batched = problem if (b == 1 and fuse == 1) else jax_problem(w, content, style, "lbfgs", batch=b)
        r = jax_run(batched, x0, max(2, min(iterations, 10)))
        row["batched"].append({k: v for k, v in r.items() if k not in ("image", "curve")})
    if jax.devices()[0].platform == "gpu":
        stats = jax.devices()[0].memory_stats() or {}
        row["jax_peak_gpu_mb"] = stats.get("peak_bytes_in_use", 0) / 2 ** 20
    return row


ISA_CAPS = ("NST_JAX_FUSED_ARCH", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def isa_caps(torch_module=None) -> str | None:
    """The instruction sets each engine was held to by the environment (to stand in, on one CPU, for a CPU
    that lacks the rest), with torch's own report of what it dispatches to; None when nothing was capped.
    Of XLA_FLAGS only `--xla_cpu_max_isa` caps; `NST_JAX_FUSED_ARCH=native` is the default build."""
    caps = [flag for flag in os.environ.get("XLA_FLAGS", "").split() if flag.startswith("--xla_cpu_max_isa")]
    caps = [f"XLA_FLAGS={flag}" for flag in caps]
    caps += [f"{name}={os.environ[name].strip()}" for name in ISA_CAPS
             if os.environ.get(name, "").strip() not in ("", "native")]
    if not caps:
        return None
    if torch_module is not None:
        caps.append(f"torch dispatches to {torch_module.backends.cpu.get_cpu_capability()}")
    return ", ".join(caps)


def _fmt(v, spec=".3g"):
    return "—" if v is None else format(v, spec)


def markdown(result: dict) -> str:
    lines = [f"# nst_jax vs PyTorch reference — {result['device']}, {result['date']}",
             "", f"Command: `{result['command']}`", "",
             f"jax {result['versions']['jax']}, torch {result['versions'].get('torch', '—')}, "
             f"{result['machine']}; nst_jax compiler options: {result.get('compiler_options') or 'XLA defaults'}. "
             f"Objective: content {','.join(CONTENT_LAYERS)}, style "
             f"{','.join(STYLE_LAYERS)}, k={STYLE_WEIGHT:g}, tv={TV_WEIGHT:g}; both from the same noise image; "
             f"L-BFGS history 100, no line search (torch.optim.LBFGS for the reference). Evaluation times are "
             f"medians of nst_jax and the reference timed in turns; so are the iterations (one of nst_jax's, then "
             f"one of the reference's, each timed on its own); nst_jax runs past N iterations (up to 2N) "
             f"if it has not reached the reference's loss at N.", "",
             f"Machine: {result.get('cpu', '—')}; load average before {result.get('load_before', '—')}, after "
             f"{result.get('load_after', '—')}.", "",
             f"C allocator: {result.get('allocator', 'the C library defaults')}.", "",
             *([f"Instruction sets capped by the environment: {result['isa_caps']}. The machine line names the CPU; "
                "these figures stand in for a CPU with only the capped sets, not measured on one.", ""]
               if result.get("isa_caps") else []),
             "Convolution forms (`nst_jax.convforms`, measured on this machine): " +
             "; ".join(f"{r['size']}²: {r.get('conv_forms', '—')}" for r in result["rows"]) + ".", "",
             *([f"nst_jax ran with `--conv-forms {result['conv_forms_asked']}`; the value+grad with the float32 "
                "forms (`--conv-forms auto`) timed in the same turns: " + "; ".join(
                    f"{r['size']}²: {_fmt(r.get('jax_eval_auto_s'))} s" for r in result["rows"]) + ".", ""]
               if result.get("conv_forms_asked", "auto") != "auto" else []),
             "| size | iters | eval s (jax / torch) | eval s, jax with XLA's convolutions only / with XLA defaults | iter s (jax / torch) | "
             "compile s | final loss (jax / torch) | gap | time to torch's loss s (jax / torch) | jax iters to it | "
             "speed-up eval / iter / to loss | PSNR dB | SSIM | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['size']}² | {r['iterations']} | {_fmt(r['jax_eval_s'])} / {_fmt(r.get('torch_eval_s'))} | "
            f"{_fmt(r.get('jax_eval_xla_conv_s'))} / {_fmt(r.get('jax_eval_xla_defaults_s'))} | "
            f"{_fmt(r['jax_iteration_s'])} / {_fmt(r.get('torch_iteration_s'))} | {_fmt(r['jax_compile_step_s'])} | "
            f"{_fmt(r['jax_final_loss'], '.5g')} / {_fmt(r.get('torch_final_loss'), '.5g')} | "
            f"{_fmt(r.get('final_loss_gap'), '+.2%')} | {_fmt(r.get('time_to_ref_loss_jax_s'))} / "
            f"{_fmt(r.get('time_to_ref_loss_torch_s'))} | {_fmt(r.get('jax_iterations_to_ref_loss'), 'd')} | "
            f"{_fmt(r.get('speedup_eval'), '.2f')}× / {_fmt(r.get('speedup_iteration'), '.2f')}× / "
            f"{_fmt(r.get('speedup_time_to_loss'), '.2f')}× | "
            f"{_fmt(r.get('psnr_db'), '.1f')} | {_fmt(r.get('ssim'), '.3f')} | "
            f"{_fmt(max(r.get('torch_peak_rss_mb', 0), r['jax_peak_rss_mb']), '.0f')} |")
    lines += ["", "Work per value+grad (convolutions forward and input gradient, Gram matrices and their gradients; "
              "elementwise work not counted) and the rate each implementation sustains:", "",
              "| size | GFLOP per value+grad | GFLOP/s (jax / torch) |", "|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['size']}² | {_fmt(r['value_and_grad_gflop'], '.1f')} | "
                     f"{_fmt(r['jax_eval_gflops_per_s'], '.0f')} / {_fmt(r.get('torch_eval_gflops_per_s'), '.0f')} |")
    c2f = [r for r in result["rows"] if r.get("coarse_to_fine")]
    if c2f:
        lines += ["", "## Coarse-to-fine start (nst_jax `--scales S/2,S --scale-iterations K,N`), same noise image",
                  "", "K iterations at half size, upsampled, then the full-size run; time counted from the "
                  "start of the coarse stage. The objective at size S is the same as above.", "",
                  "| size | K at half size | coarse s | time to torch's loss s (jax / torch) | speed-up | "
                  "loss after N at S (jax / torch) |", "|---|---|---|---|---|---|"]
        for r in c2f:
            c = r["coarse_to_fine"]
            lines.append(f"| {r['size']}² | {c['coarse_iterations']} at {c['coarse_size']}² | {_fmt(c['coarse_s'])} | "
                         f"{_fmt(c['time_to_ref_loss_s'])} / {_fmt(r.get('time_to_ref_loss_torch_s'))} | "
                         f"{_fmt(c.get('speedup_time_to_loss'), '.2f')}× | {_fmt(c['final_loss'], '.5g')} / "
                         f"{_fmt(r.get('torch_final_loss'), '.5g')} |")
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
    p.add_argument("--coarse", type=int, default=60,
                   help="iterations at half size for the coarse-to-fine row (0: no such row)")
    p.add_argument("--conv-forms", default="auto", help="nst_jax's --conv-forms (e.g. auto-bf16; then the "
                   "float32 planner's value+grad is timed beside it)")
    p.add_argument("--json", default=None, help="also write the JSON here")
    p.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    kept = allocator.keep_freed_memory()   # as `nst-jax run` does where it has room; torch here shares it
    platform_name = jax.devices()[0].platform
    if args.device == "gpu" and platform_name != "gpu":
        print(f"error: --device gpu but JAX runs on {platform_name}", file=sys.stderr)
        return 2
    w = weights.load()
    from nst_jax.machine.hardware import describe_cpu
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    versions = {"jax": jax.__version__}
    torch = None
    if not args.no_torch:
        import torch
        versions["torch"] = torch.__version__
    device = "none" if args.no_torch else args.device
    rows = []
    for size in [int(s) for s in args.size.split(",") if s]:
        print(f"size {size}…", file=sys.stderr, flush=True)
        rows.append(run_size(w, size, args.iterations, args.repeats, device,
                             [s for s in args.solvers.split(",") if s], [int(b) for b in args.batch.split(",") if b], args.fuse,
                             args.coarse, args.conv_forms))
    date = dt.date.today().isoformat()
    dev_name = jax.devices()[0].device_kind if platform_name == "gpu" else f"{os.cpu_count()} cores"
    result = {"device": f"{platform_name} ({dev_name})", "date": date, "machine": platform.platform(),
              "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
              "versions": versions, "compiler_options": compiler.compiler_options(), "rows": rows,
              "cpu": describe_cpu(), "load_before": load_before, "conv_forms_asked": args.conv_forms,
              "isa_caps": isa_caps(torch),
              "allocator": "freed memory kept in the process, for both engines (`nst_jax.machine.allocator`)"
                           if kept else "the C library defaults",
              "load_after": " ".join(f"{v:.2f}" for v in os.getloadavg())}
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
