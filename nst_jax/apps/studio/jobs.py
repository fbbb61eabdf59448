"""The studio's queue: one run at a time on the device, in a worker thread, each an ordinary
`transfer.run` in its run folder. Stopping is the Ctrl-C path (the step hook raises KeyboardInterrupt
after the current step, so the loop writes the image so far and its checkpoint); continuing is a
rerun, which the run resumes from its checkpoint exactly. What a run is (finished, stopped, failed,
not started) is read back from its files, so it survives a restart of the studio.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
import traceback

from nst_jax.base.errors import NSTError
from nst_jax.apps.studio import request as requests
from nst_jax.apps.studio.folder import StudioFolder


class Runner:
    def __init__(self, folder: StudioFolder, start: bool = True):
        self.folder = folder
        self.queue: collections.deque[str] = collections.deque()
        self.current: str | None = None
        self.stopping: set[str] = set()
        self.live: dict = {}                 # run id → its web.live.LiveState, for runs of this session
        self._cv = threading.Condition()
        self._weights = None
        self._thread = threading.Thread(target=self._work, name="nst_jax-studio-runner", daemon=True)
        if start:
            self._thread.start()

    # ---------------------------------------------------------------- asked by the page
    def submit(self, run_id: str) -> str:
        """Queue a run unless it is queued, running or finished already; returns what happened, in words."""
        with self._cv:
            if run_id == self.current:
                return "running already"
            if run_id in self.queue:
                return "queued already"
            if status(self.folder, run_id)[0] == "finished":
                return "finished already"
            self.queue.append(run_id)
            self._cv.notify()
            return "queued"

    def stop(self, run_id: str) -> str:
        with self._cv:
            if run_id in self.queue:
                self.queue.remove(run_id)
                return "taken off the queue"
            if run_id == self.current:
                self.stopping.add(run_id)
                return "stopping after the current step"
            return "not running"

    def state_of(self, run_id: str) -> str | None:
        """'queued', 'running' or 'stopping' for a run of the queue, else None (its files say)."""
        with self._cv:
            if run_id == self.current:
                return "stopping" if run_id in self.stopping else "running"
            return "queued" if run_id in self.queue else None

    def ahead(self, run_id: str) -> int | None:
        """How many runs go before a queued run (the running one included), or None if it is not queued."""
        with self._cv:
            if run_id not in self.queue:
                return None
            return self.queue.index(run_id) + (self.current is not None)

    def idle(self) -> bool:
        with self._cv:
            return self.current is None and not self.queue

    def close(self, timeout: float = 120.0) -> str | None:
        """Empty the queue and stop the running run, waiting until its image and checkpoint are written;
        returns the id of the run that was stopped, if any."""
        with self._cv:
            self.queue.clear()
            stopped = self.current
            if stopped is not None:
                self.stopping.add(stopped)
        deadline = time.time() + timeout
        while stopped is not None and self.current == stopped and time.time() < deadline:
            time.sleep(0.05)
        return stopped

    # ---------------------------------------------------------------- the worker
    def _work(self) -> None:
        while True:
            with self._cv:
                while not self.queue:
                    self._cv.wait()
                self.current = self.queue.popleft()
            try:
                self._run(self.current)
            finally:
                with self._cv:
                    self.stopping.discard(self.current)
                    self.current = None

    def _run(self, run_id: str) -> None:
        from nst_jax.transfer import runs as transfer
        from nst_jax.model import weights
        from nst_jax.web.live import LiveState
        files = self.folder.run_files(run_id)
        self.live.pop(run_id, None)   # a continued run moves to the end: the page shows the last run's plot
        live = self.live[run_id] = LiveState(run_id)

        def check_stop(*_):
            if run_id in self.stopping:
                raise KeyboardInterrupt
        try:
            record = self.folder.read_request(run_id)
            if record is None:
                raise NSTError(f"run {run_id}: its studio.json is missing or unreadable")
            cfg = requests.config(self.folder, requests.from_record(run_id, record))
            if self._weights is None:
                self._weights = weights.load(None)
            files.clear_error()   # a failure of an earlier attempt no longer stands
            result = transfer.run(cfg, progress=False, loaded_weights=self._weights, on_step=check_stop, watch=live,
                                  say=lambda line: print(f"studio: {run_id}: {line}", file=sys.stderr, flush=True))
        except KeyboardInterrupt:
            live.finish("interrupted", "stopped; continue goes on from here")
        except NSTError as err:
            files.write_error(str(err))
            live.finish("failed", str(err))
        except Exception as err:  # a bug must not end the queue: said, kept beside the run, and shown
            traceback.print_exc()
            files.write_error(f"{type(err).__name__}: {err}")
            live.finish("failed", f"{type(err).__name__}: {err}")
        else:
            files.clear_error()
            live.finish("finished", result.note or "")


def status(folder: StudioFolder, run_id: str, record: dict | None = None) -> tuple[str, dict | None]:
    """(status, sidecar) of a run from its files: 'finished', 'stopped', 'failed', 'unreadable' (a file that
    does not check) or 'new' (never started). `record`: its request, if the caller has read it already."""
    files = folder.run_files(run_id)
    record = record if record is not None else folder.read_request(run_id)
    if files is None or record is None:
        return "unreadable", None
    try:
        sidecar = files.read_sidecar()
        target = requests.options_of(record["options"])["iterations"]
    except NSTError:
        return "unreadable", None
    if files.read_error():
        return "failed", sidecar
    if sidecar is not None and files.image.exists() and not sidecar.get("interrupted") \
            and sidecar["iteration"] >= target:
        return "finished", sidecar
    if sidecar is not None or files.checkpoint.exists():
        return "stopped", sidecar
    return "new", sidecar
