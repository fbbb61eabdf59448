"""A sweep on the live page: each run's state (waiting, running, done, failed), its iteration and a
thumbnail of its newest image (its result, or its latest intermediate image), beside the sweep's
iterations in all, rate and ETA. Thumbnails are read from the runs' files at most every `every`
seconds, and whenever a run ends.
"""

from __future__ import annotations

import time

from nst_jax.files import image
from nst_jax.base.errors import NSTError
from nst_jax.files.runfiles import RunFiles

THUMBNAIL = 160   # longest side, pixels


class SweepWatch:
    def __init__(self, state, runs, iterations: int, out, every: float = 2.0):
        self.state, self.iterations, self.every = state, iterations, every
        self.files = {name: RunFiles(cfg.output) for name, cfg in runs}
        self.shown: dict[str, str] = {}       # run → the file its thumbnail was made from (and its mtime)
        self.last = 0.0
        state.header([f"sweep of {len(runs)} runs to {iterations} iterations in {out}"], 0,
                     len(runs) * iterations, (1.0, 1.0, 1.0))

    def update(self, tracker, force: bool = False) -> None:
        now, total = tracker.progress()
        if force or time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            for i, name in enumerate(tracker.names):
                self._thumbnail(i, name)
        rows = [{"name": n, "status": self._status(tracker, n), "iteration": min(tracker.reached.get(n, 0),
                 self.iterations), "thumb": f"run-{i}", "image": self.shown.get(n, "")}
                for i, n in enumerate(tracker.names)]
        self.state.update(runs=rows, iteration=now, target=total, status="running", eta=tracker.eta(),
                          rate=tracker.rate() or None)

    @staticmethod
    def _status(tracker, name: str) -> str:
        if name in tracker.failed:
            return "failed"
        if name in tracker.done:
            return "done"
        return "running" if name in tracker.running else "waiting"

    def _thumbnail(self, index: int, name: str) -> None:
        files = self.files[name]
        found = files.intermediates()
        newest = files.image if files.image.is_file() else (found[max(found)] if found else None)
        if newest is None:
            return
        try:
            key = f"{newest.name}@{newest.stat().st_mtime_ns}"
            if self.shown.get(name) == key:
                return
            rgb = image.load_image(newest)
        except (OSError, NSTError):
            return
        small = image.resize(rgb, image.fit_size(rgb.shape[:2], min(THUMBNAIL, max(rgb.shape[:2]))))
        self.state.images[f"run-{index}"] = image.png_bytes(small, compress_level=1)
        self.shown[name] = key
