"""A video's progress over frames and iterations: one line per finished frame run with the ETA of the
whole video, and (for the runs after the first, which print no header of their own) a line every
--print-every iterations. The ETA counts the iterations left at the seconds per iteration of the latest
run (the first one compiles, so its rate would overstate the rest).
"""

from __future__ import annotations

import time
from typing import Callable

from nst_jax.transfer.progress import human_seconds
from nst_jax.apps.video.methods import Step


class VideoProgress:
    def __init__(self, passes: list[list[Step]], print_every: int, say: Callable[[str], None]):
        self.passes, self.print_every, self._say = passes, print_every, say
        self.total = sum(s.iterations for steps in passes for s in steps)
        self.runs = sum(len(steps) for steps in passes)
        self.done_iterations, self.done_runs = 0, 0
        self.rate: float | None = None   # seconds per iteration of the latest run done here
        self.step: Step | None = None
        self.t_step = time.perf_counter()

    def say(self, line: str) -> None:
        self._say(line)

    def _where(self, step: Step) -> str:
        n = len(self.passes[step.pass_number - 1])
        passes = f", pass {step.pass_number}/{len(self.passes)}" if len(self.passes) > 1 else ""
        return f"frame {step.frame + 1}/{n}{passes}"

    def eta(self, extra: int = 0) -> str:
        if self.rate is None:
            return "ETA unknown yet"
        return f"ETA {human_seconds(self.rate * max(self.total - self.done_iterations - extra, 0))}"

    def begin(self, step: Step) -> None:
        self.step, self.t_step = step, time.perf_counter()

    def on_step(self, it: int, alive: int, value: float, parts: dict) -> None:
        if self.step is not None and self.print_every and (it % self.print_every == 0 or it == self.step.iterations):
            self.say(f"{self._where(self.step)}: iteration {it}/{self.step.iterations}, loss {value:.4g} "
                     f"(video {self.eta(it)})")

    def end(self, step: Step, iteration: int, seconds: float, already: bool) -> None:
        self.done_runs += 1
        self.done_iterations += step.iterations
        if not already and iteration > 0:
            self.rate = (time.perf_counter() - self.t_step if step is self.step else seconds) / max(iteration, 1)
        what = "already done" if already else f"{iteration} iterations in {human_seconds(seconds)}"
        self.say(f"video: {self._where(step)} {what}; {self.done_runs}/{self.runs} runs, {self.eta()}")
