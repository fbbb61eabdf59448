"""What a live page shows, kept apart from the run: a `LiveState` the run's hooks update (its header,
each step's losses, an image now and then) and the page reads. Images are encoded to PNG by a thread
of its own, which keeps only the latest one waiting, so a step never waits for an encoder.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np

from nst_jax.files import image
from nst_jax.transfer.progress import weighted_parts

FINAL = ("finished", "interrupted", "failed")
MAX_POINTS = 2000   # loss history points kept (older ones thinned), so a long run's events stay small


def png_bytes(rgb: np.ndarray) -> bytes:
    return image.png_bytes(rgb, compress_level=1)


class LiveState:
    """Thread-safe: the run updates it, the server reads snapshots; `version` counts the changes."""

    def __init__(self, title: str):
        self._lock = threading.Lock()
        self.version = 0
        self.data: dict[str, Any] = {"title": title, "status": "starting", "header": [], "iteration": 0,
                                     "start": 0, "target": 0, "rate": None, "eta": None, "losses": [],
                                     "image": 0, "frames": [], "frame": None, "note": "", "runs": []}
        self.images: dict[str, bytes] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._weights: tuple[float, ...] = (1.0, 1.0, 1.0)
        self._t = None
        self._encoder = threading.Thread(target=self._encode, name="nst_jax-live-encoder", daemon=True)
        self._encoder.start()

    # ---------------------------------------------------------------- written by the run
    def update(self, **values) -> None:
        with self._lock:
            self.data.update(values)
            self.version += 1

    def header(self, lines: list[str], start: int, target: int, weights: tuple[float, ...]) -> None:
        self._weights, self._t = tuple(weights), None
        self.update(header=list(lines), start=start, iteration=start, target=target, status="running", losses=[])

    def step(self, iteration: int, alive: int, value: float, parts: dict) -> None:
        now = time.perf_counter()
        if self._t is None:
            self._t = (iteration, now)   # the first step compiles: the rate counts from after it
            rate = None
        else:
            done = iteration - self._t[0]
            rate = done / (now - self._t[1]) if done > 0 and now > self._t[1] else None
        weighted = list(weighted_parts(parts, self._weights).values())
        with self._lock:
            losses = self.data["losses"]
            losses.append([iteration, value, *weighted])
            if len(losses) > MAX_POINTS:
                del losses[1:-1:2]
            target = self.data["target"]
            self.data.update(iteration=iteration, rate=rate, status="running",
                             eta=(target - iteration) / rate if rate else None)
            self.version += 1

    def image(self, iteration: int, rgb: np.ndarray) -> None:
        """Queue an image for the encoder (replacing one still waiting); returns at once."""
        item = (iteration, np.array(rgb, np.float32, copy=True))
        self._submitted += 1
        try:
            self._queue.get_nowait()
        except queue.Empty:
            pass
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            pass

    def frame_done(self, number: int, rgb: np.ndarray) -> None:
        """A video's finished frame (its thumbnail is served as frame<number>.png)."""
        self.images[f"frame{number}"] = png_bytes(rgb)
        with self._lock:
            if number not in self.data["frames"]:
                self.data["frames"].append(number)
            self.version += 1

    def finish(self, status: str, note: str = "") -> None:
        self.flush()
        self.update(status=status, note=note)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the last queued image is encoded."""
        deadline = time.time() + timeout
        while self._handled < self._submitted and time.time() < deadline:
            time.sleep(0.01)

    # ---------------------------------------------------------------- the encoder's thread
    _submitted = 0   # images queued so far
    _handled = 0     # images encoded or replaced by a later one

    def _encode(self) -> None:
        while True:
            iteration, rgb = self._queue.get()
            data = png_bytes(rgb)
            with self._lock:
                self.images["image"] = data
                self.data["image"] += 1
                self.data["image_iteration"] = iteration
                self.version += 1
            self._handled = self._submitted if self._queue.empty() else self._handled

    # ---------------------------------------------------------------- read by the server
    def snapshot(self) -> tuple[int, dict]:
        with self._lock:
            return self.version, {**self.data, "losses": list(self.data["losses"]),
                                  "frames": list(self.data["frames"]), "header": list(self.data["header"]),
                                  "runs": list(self.data["runs"])}
