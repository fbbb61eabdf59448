"""Where a video's files go: the one module that names them. For `-o clip.mp4`:

    clip.mp4                  the result
    clip.json                 the video's sidecar: settings, method, each frame's run, timings, consistency
    clip.frames/0001.png …    the stylised frames, lossless (to re-encode or inspect them)
    clip.work/                every working file, in one folder while the video is made:
      nst_jax-video.json      the marker that says the folder is this video's (written first)
      lock                    held while a process works on the video
      runs.jsonl              one line per finished frame run (the progress log)
      input/0001.png          the picked frames at the run's size (each frame run's content image)
      p1/0001/                frame 1's run of pass 1: frame.png with its sidecar, loss log and checkpoint,
                              and init.png / temporal.npy, what it starts from and is held to
      flows/<key>/            flows and consistency weights, keyed by the frames and the flow's settings

A finished video keeps the first three; its work folder is removed (`--keep-work` keeps it), and a rerun
with the same frames, styles and settings finds the sidecar's `identity` and has nothing to do. A video
stopped before it finished is continued from its work folder.

Every folder here is made by nst_jax inside the output's folder; one that is a symbolic link (which
nst_jax did not make) is refused, so nothing is written outside it. A command refused before any frame
run finished removes the folders it made (`discarded_if_refused`), and nothing that was there before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from nst_jax.files import untrusted
from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import Lock, open_append, probe_writable, write_error

VIDEO_SUFFIXES = (".mp4",)


class VideoFiles:
    def __init__(self, output: str | Path):
        self.video = Path(output)
        stem = self.video.with_suffix("")
        self.root = self.video.parent
        self.sidecar = Path(f"{stem}.json")
        self.frames = Path(f"{stem}.frames")
        self.work = Path(f"{stem}.work")
        self.log = self.work / "runs.jsonl"
        self.lock_file = self.work / "lock"
        self.made: list[tuple[Path, Path, bool]] = []   # (outermost made, folder asked for, all of it ours)
        self.finished = False                           # a frame run finished in this process

    def check(self, inputs: list[str] = ()) -> None:
        """NSTError now, before any work, for an output that is not an .mp4, cannot be written, is one of
        the inputs, or would replace a file that nst_jax.video did not write (an .mp4, .json or .frames
        of the same name without this video's sidecar, or a .work folder without this video's marker)."""
        if self.video.suffix.lower() not in VIDEO_SUFFIXES:
            raise NSTError(f"output {self.video}: use the extension .mp4")
        if self.video.is_dir():
            raise NSTError(f"output {self.video}: is a folder; give a file name ending in .mp4")
        written = (self.video, self.sidecar, self.frames, self.work)
        for p in inputs:
            here = Path(p).resolve()
            if Path(p).exists() and any(here == w.resolve() or w.resolve() in here.parents for w in written):
                raise NSTError(f"output {self.video} would overwrite the input {p}; choose another -o")
        theirs = [w for w in written[:3] if _there(w)] if not self.ours() else []
        theirs += [self.work] if _there(self.work) and not _records_this(self.marker, self.video.name) else []
        if theirs:
            raise NSTError(f"output {self.video}: {theirs[0]} exists and was not written by nst_jax.video for "
                           f"this output; choose another -o or move it away")
        self._made(self.root, None, whole=False)       # may hold others' files: only emptied folders go
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe_writable(self.root, self.video.name)
        except OSError as err:
            raise write_error(self.video, err) from None
        for folder in (self.frames, self.work):
            _not_a_link(folder, self.root)

    @property
    def marker(self) -> Path:
        return self.work / "nst_jax-video.json"

    def ours(self) -> bool:
        """True if the files of this name were written by nst_jax.video for this output (its sidecar,
        or the marker its work folder gets first), so that they may be replaced."""
        return any(_records_this(path, self.video.name) for path in (self.sidecar, self.marker))

    def claim(self, identity: str | None = None) -> None:
        """Mark the work folder as this video's, made here if needed (before anything else is written in
        it), and note the `identity` of the video it is working on."""
        work = self.folder(self.work)
        mark = {"video": self.video.name, "identity": identity}
        if _record(self.marker) != mark:
            from nst_jax.files.fileio import write_json
            write_json(work / self.marker.name, mark)

    def done(self, identity: str) -> dict | None:
        """The sidecar's record when this output is a finished video of `identity` (the same frames,
        styles and settings) whose .mp4 is there; None otherwise."""
        record = _record(self.sidecar)
        if record.get("video") == self.video.name and record.get("identity") == identity \
                and self.video.is_file() and not self.video.is_symlink():
            return record
        return None

    def work_of(self, identity: str) -> bool:
        """True if the work folder is there and works on the video of `identity`."""
        return _there(self.work) and _record(self.marker).get("identity") == identity

    def clear_work(self) -> None:
        """Remove the work folder's files (a finished video needs none of them) but the lock, which goes
        when it is released; `remove_work` then removes the folder."""
        for p in self.work.iterdir():
            if p == self.lock_file:
                continue
            try:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            except OSError:
                pass   # left in the work folder, which then stays: the video is done all the same

    def remove_work(self) -> None:
        """The emptied work folder, unless a process took it again meanwhile (then it is not empty)."""
        try:
            self.work.rmdir()
        except OSError:
            pass

    def prune_frames(self, count: int) -> None:
        """Remove stylised frames numbered past `count` (an earlier video of more frames wrote them)."""
        for p in self.frames.glob("*.png"):
            if p.stem.isdigit() and int(p.stem) > count and p.is_file() and not p.is_symlink():
                p.unlink()

    def lock(self) -> Lock:
        return Lock(self.lock_file, f"video {self.video}")

    @contextlib.contextmanager
    def working(self):
        """The work folder, made if needed and locked by this process. NSTError when another process holds
        it: the folder is then that process's, and a refusal here does not remove it even if made here."""
        made = len(self.made)
        self.folder(self.work)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.lock())
            except NSTError:
                del self.made[made:]
                raise
            yield self.work

    def folder(self, path: Path) -> Path:
        """`path` (inside the output's folder) made if needed; NSTError if it or a folder between it and
        the output's folder is a symbolic link or not a folder."""
        _not_a_link(path, self.root)
        self._made(path, self.root, whole=True)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(path, err) from None
        return path

    def input_frame(self, i: int) -> Path:
        return self.folder(self.work / "input") / f"{i + 1:04d}.png"

    def run_folder(self, pass_number: int, i: int) -> Path:
        return self.folder(self.work / f"p{pass_number}" / f"{i + 1:04d}")

    def run_image(self, pass_number: int, i: int) -> Path:
        return self.run_folder(pass_number, i) / "frame.png"

    def init_image(self, pass_number: int, i: int) -> Path:
        return self.run_folder(pass_number, i) / "init.png"

    def temporal(self, pass_number: int, i: int) -> Path:
        return self.run_folder(pass_number, i) / "temporal.npy"

    def frame(self, i: int) -> Path:
        return self.folder(self.frames) / f"{i + 1:04d}.png"

    def flows(self, key: str) -> Path:
        return self.folder(self.work / "flows" / key)

    def _made(self, path: Path, stop: Path | None, whole: bool) -> None:
        """Note the folders that making `path` (up to `stop`) creates, before they are made."""
        top, p, stop = None, path.absolute(), stop.absolute() if stop else None
        while not os.path.lexists(p) and p != p.parent and p != stop:
            top, p = p, p.parent
        if top is not None:
            self.made.append((top, path.absolute(), whole))

    @contextlib.contextmanager
    def discarded_if_refused(self):
        """On an NSTError before any frame run finished here, remove the folders made here (`discard`)."""
        try:
            yield self
        except NSTError:
            if not self.finished:
                self.discard()
            raise

    def discard(self) -> None:
        """Remove the folders this object made, newest first: a folder asked for inside the output's
        folder with all it holds (only this video's runs write there, under its lock); then each folder
        made on the way to it, and the output's folder and those above it that it made, when empty."""
        while self.made:
            top, leaf, whole = self.made.pop()
            if whole and leaf.is_dir() and not leaf.is_symlink():
                shutil.rmtree(leaf, ignore_errors=True)
            for p in ([leaf] if not whole else []) + [q for q in leaf.parents if q.is_relative_to(top)]:
                try:
                    p.rmdir()
                except OSError:
                    break

    def log_run(self, step, record: dict | None, already: bool) -> None:
        """One line in the progress log for a run that finished in this process."""
        if already or not record:
            return
        self.finished = True
        line = {"pass": step.pass_number, "frame": step.frame + 1, "iteration": record.get("iteration"),
                "seconds": record.get("seconds"), "loss": record.get("loss"), "parts": record.get("parts")}
        with open_append(self.log) as f:
            f.write(json.dumps(line) + "\n")


def _there(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _record(path: Path) -> dict:
    """A video record (a sidecar or a work folder's marker) read as untrusted input; {} if there is none."""
    if path.is_symlink():
        return {}
    try:
        record = untrusted.read_json(path, "video record")
    except NSTError:
        return {}
    return record if isinstance(record, dict) else {}


def _records_this(path: Path, name: str) -> bool:
    return _record(path).get("video") == name


def _not_a_link(path: Path, root: Path) -> None:
    root = root.absolute()
    p = path.absolute()
    while p != root and p != p.parent:
        if p.is_symlink():
            raise NSTError(f"{p}: is a symbolic link; nst_jax writes a video's files only into folders it made "
                           f"(move it away)")
        if p.exists() and not p.is_dir():
            raise NSTError(f"{p}: is a file where nst_jax keeps a folder of the video's files (move it away)")
        p = p.parent


def flow_key(frame_files: list[Path], preset: str) -> str:
    """The flow cache's key: the frames' bytes (at the run's size) and the flow's settings."""
    digest = hashlib.sha256(json.dumps({"preset": preset, "method": "DIS/Sundaram", "version": 1}).encode())
    for f in frame_files:
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()[:16]


def read_pair_file(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """A cached pair (H, W, 3) read as untrusted input: None (compute it again) unless it is a finite
    float array of this frame size with weights in [0, 1]."""
    try:
        a = untrusted.load_npy(path, "flow cache entry", lambda dtype, got: None if dtype == np.float32
                               and got == (*shape, 3) else f"expected float32 {(*shape, 3)}")
    except NSTError:
        return None
    if not np.all(np.isfinite(a)) or np.abs(a[..., :2]).max(initial=0) > 4 * max(shape) \
            or not np.all((a[..., 2] == 0) | (a[..., 2] == 1)):
        return None
    return a
