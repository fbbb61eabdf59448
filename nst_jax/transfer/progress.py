"""What a run tells its user while it works: a header, then honest progress.

The header, before the first step, says what will run: the sizes actually used (and when an image is
upscaled), the device, layers, statistic, optimizer, memory in use and the checkpoint's size. Then:
the first step (which compiles) is reported with its time on its own, so that the ETA that follows
counts only steps; the losses shown are the weighted parts that add up to the total
(content_weight·content + k·style + tv_weight·tv). On a terminal that is a progress bar; in a log file
(no terminal) plain lines every --print-every iterations, as neural-style prints them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from nst_jax.scale.memory import human_bytes


def human_seconds(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def weighted_parts(parts: dict, weights: tuple[float, ...]) -> dict[str, float]:
    """The parts of the objective as they enter the total: content·w_c, style·k, tv·w_tv (and
    temporal·w_t when the run has a temporal term; `weights` then has a fourth value)."""
    names = ("content", "style", "tv", "temporal")
    return {n: w * parts[n] for n, w in zip(names, weights) if n in parts}


def loss_text(value: float, parts: dict, weights: tuple[float, ...]) -> str:
    w = weighted_parts(parts, weights)
    temporal = f" + temporal {w['temporal']:.4g}" if "temporal" in w else ""
    return f"loss {value:.4g} = content {w['content']:.4g} + style {w['style']:.4g} + tv {w['tv']:.4g}{temporal}"


def memory_in_use() -> int:
    """Bytes in use now: the device's allocator on an accelerator, this process's resident set on CPU."""
    import jax
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_in_use" in stats:
            return int(stats["bytes_in_use"])
    try:
        with open("/proc/self/statm") as f:
            import os
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Reporter:
    """Progress of one run towards `target` from `start`, to `stream` (stderr by default)."""

    def __init__(self, name: str, start: int, target: int, print_every: int,
                 weights: tuple[float, float, float], stream: TextIO | None = None, tty: bool | None = None):
        self.name, self.start, self.target, self.print_every = name, start, target, print_every
        self.weights = weights
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.bar = None
        self.t0 = time.perf_counter()
        self.t_first = None

    def say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def on_step(self, it: int, alive: int, value: float, parts: dict) -> None:
        now = time.perf_counter()
        if self.t_first is None:  # the first step compiles: reported apart from the ETA
            self.t_first = now
            self.say(f"{self.name}: first step (compiling) took {human_seconds(now - self.t0)}; "
                     f"{loss_text(value, parts, self.weights)}")
            if self.tty:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=self.target, initial=it, desc=self.name, unit="it", dynamic_ncols=True,
                                file=self.stream)
            return
        due = self.print_every and (it % self.print_every == 0 or it == self.target)
        if self.bar is not None:
            self.bar.update(1)
            if due:
                w = weighted_parts(parts, self.weights)
                self.bar.set_postfix_str(f"loss {value:.4g} = c {w['content']:.3g} + s {w['style']:.3g} + "
                                         f"tv {w['tv']:.3g}", refresh=False)
        elif due:
            per_step = (now - self.t_first) / max(it - self.start - 1, 1)
            self.say(f"Iteration {it} / {self.target}: {loss_text(value, parts, self.weights)} "
                     f"({per_step:.3g} s/it, ETA {human_seconds(per_step * (self.target - it))})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _forms_text(plan) -> str:
    from nst_jax.model import convforms
    if plan.forms.source == "none":
        why = "one float32 CPU device only" if plan.layout.split or plan.precision != "float32" else "XLA chooses"
        return f"convolutions: XLA's ({why})"
    return convforms.describe(plan.forms)


def _precision_text(precision: str) -> str:
    """The precision and, where it is what --precision auto chooses here, why."""
    import jax
    from nst_jax.machine import hardware
    chosen, why = hardware.choose_precision(jax.default_backend())
    return f"{precision} ({why})" if precision == chosen else precision


def header(cfg, plan, problem, inputs_shape: tuple[int, int], start: int, ckpt_bytes: int) -> list[str]:
    """The lines a run prints before its first step (plan: `planning.RunPlan`; problem: `problem.Problem`)."""
    import jax
    mem, devices = plan.figure, plan.devices
    h, w = problem.content.shape[:2]
    up = f" (upscaled from {inputs_shape[1]}×{inputs_shape[0]})" if max(inputs_shape) < max(h, w) else ""
    styles = ", ".join(f"{Path(p).name} at {s.shape[1]}×{s.shape[0]}" for p, s in zip(cfg.styles, problem.styles))
    if cfg.checkpoints.on:
        ckpt = (f"checkpoint {human_bytes(ckpt_bytes)} {cfg.checkpoints.describe()}"
                f"{' (kept at the end)' if cfg.keep_checkpoint else ' (removed at the end)'}")
    else:
        ckpt = "no checkpoints"
    begin = f"from iteration {start} to {cfg.iterations}" if start else f"{cfg.iterations} iterations"
    return [f"nst_jax: {Path(cfg.content).name} → {cfg.output}, {w}×{h} px{up}; style {styles}",
            f"  layers: content {','.join(cfg.content_layers) or '—'}, style {','.join(cfg.style_layers) or '—'}; "
            f"{_precision_text(plan.precision)}; statistic {cfg.style_statistic}; weights content {cfg.content_weight:g}, style {cfg.style_weight:g}, "
            f"tv {cfg.tv_weight:g}",
            f"  {cfg.optimizer} (lr {cfg.lr_or_default:g}{f', history {cfg.history}' if cfg.optimizer != 'adam' else ''}),"
            f" init {Path(cfg.init).name}, {begin}; device {jax.devices()[0].platform} ({jax.devices()[0]}"
            f"{f' and {devices - 1} more: the image split in {devices} bands' if devices > 1 else ''}); "
            f"memory in use {human_bytes(memory_in_use())}; {ckpt}"] + \
        ([f"  memory plan: --memory {mem.way}, about {human_bytes(mem.needed)} of {human_bytes(mem.available)} "
          f"available (--plan for the parts)"] if mem is not None else []) + \
        [f"  {_forms_text(plan)}"]
