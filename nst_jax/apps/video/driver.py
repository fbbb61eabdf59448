"""A video, run by run: the picked frames are written as the runs' content images, the flows are
loaded (`flowcache`), and each step of each pass (`methods.schedule`) becomes an ordinary nst_jax run
(`transfer.run`) whose initial image and temporal targets are made here from the files of the runs
before it. Nothing lives only in memory: a frame's inputs are made from the earlier frames' result
files, so a video killed at any point continues, by the same command, at the frame and iteration where
it stopped, with the same result as an uninterrupted one. The independent runs of a pass (all of the
first pass of `independent` and `multipass`) run as Ray tasks with `--engine ray`. All of that happens in
the video's work folder (`files`), removed when the video is done: its sidecar records the video's
`identity`, so the same command then has nothing to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from nst_jax.files import image
from nst_jax.transfer.config import Config
from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import write_bytes
from nst_jax.files.runfiles import RunFiles
from nst_jax.apps.video import flow, flowcache, methods, temporal
from nst_jax.apps.video.files import VideoFiles
from nst_jax.apps.video.frames import Clip
from nst_jax.apps.video.methods import Method, Step
from nst_jax.apps.video.progress import VideoProgress


class Options(NamedTuple):
    """How a video is run, beyond each frame's Config."""

    method: Method = Method()
    frame_iterations: int | None = None   # of every frame after the first (None: --iterations)
    flow_preset: str = "medium"
    engine: str = "local"
    address: str | None = None
    cpus_per_task: float = 1.0
    frame_tol: float | None = None         # the stopping rule (--tol) of every frame after the first
    remote: bool = False                   # with engine 'ray': every run a Ray task (several clips at once)
    keep_work: bool = False                # keep the work folder when the video is done


def write_if_changed(path: Path, data: bytes) -> None:
    """Write `data` unless the file already holds exactly it (so its digest, and a run's hash, stay)."""
    try:
        if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
            return
    except OSError:
        pass
    write_bytes(path, data)


class Video:
    """One video's runs: the files, the frames and their flows, and the Config every frame starts from."""

    def __init__(self, cfg: Config, clip: Clip, files: VideoFiles, opts: Options, say: Callable[[str], None]):
        self.cfg, self.clip, self.files, self.opts, self.say = cfg, clip, files, opts, say
        self.watch = None
        n = len(clip.frames)
        frame_its = cfg.iterations if opts.frame_iterations is None else opts.frame_iterations
        self.passes = methods.schedule(opts.method, n, cfg.iterations, frame_its)
        self.inputs = [files.input_frame(i) for i in range(n)]
        for path, frame in zip(self.inputs, clip.frames):
            write_if_changed(path, image.png_bytes(frame))
        self.frames = [image.load_image(p) for p in self.inputs]   # exactly what each run reads
        self.shape = self.frames[0].shape[:2]
        self.pairs, self.flow_info = flowcache.load_pairs(
            files, self.inputs, self.frames, methods.pairs(opts.method, self.passes, n), opts.flow_preset,
            opts.engine, opts.address, say)

    def result(self, pass_number: int, i: int) -> np.ndarray:
        return image.load_image(self.files.run_image(pass_number, i))

    def config(self, step: Step) -> Config:
        """The frame run of `step`, its initial image and temporal targets written first."""
        p, i, f = step.pass_number, step.frame, self.files
        init = self.cfg.init
        if step.init == "warp":
            earlier = self.result(p, step.earlier[0])
            init_img = flow.warp(earlier, self.pairs[(step.earlier[0], i)].flow)
        elif step.init == "blend":
            init_img = temporal.blend(self.result(p - 1, i), self.result(p, step.earlier[0]),
                                      self.pairs[(step.earlier[0], i)], self.opts.method.blend)
        elif step.init == "own":
            init = str(f.run_image(p - 1, i))
        if step.init in ("warp", "blend"):
            write_if_changed(f.init_image(p, i), image.png_bytes(init_img))
            init = str(f.init_image(p, i))
        held = None
        if self.opts.method.slots:
            earlier = [(self.result(p, e), self.pairs[(e, i)]) for e in step.earlier]
            targets = temporal.targets(earlier, self.opts.method.slots, self.shape)
            write_if_changed(f.temporal(p, i), flowcache.npy_bytes(targets))
            held = str(f.temporal(p, i))
        later = {} if self.opts.frame_tol is None or step.init == "config" else {"tol": self.opts.frame_tol}
        return dataclasses.replace(self.cfg, content=str(self.inputs[i]), output=str(f.run_image(p, i)), init=init,
                                   temporal=held, iterations=step.iterations, scales=None, scale_iterations=None,
                                   **later)


def check_inputs(cfg: Config, clip: Clip, opts: Options) -> None:
    """NSTError before anything is computed or written, for an input the runs would refuse later (after
    the flows, or frames into the video): frames too small for the optical flow, a style that is not an
    image or too small for its layers, an --init file that is not an image. The frame rate is checked as
    the clip is read (`frames.read_clip`)."""
    from nst_jax.transfer.config import INITS
    from nst_jax.transfer.inputs import check_sizes
    frame = clip.frames[0]
    if len(clip.frames) > 1:
        flow.check_size(frame.shape, opts.flow_preset, clip.source)
    longest = max(1, round(max(frame.shape[:2]) * cfg.style_scale))
    styles = [image.load_image(path) for path in cfg.styles]
    check_sizes(dataclasses.replace(cfg, content=clip.source), frame,
                [image.resize(s, image.fit_size(s.shape[:2], longest)) for s in styles])
    if cfg.init not in INITS:
        image.load_image(cfg.init)


def identity(cfg: Config, clip: Clip, opts: Options) -> str:
    """16 hex digits over what makes a video's frames: the picked frames' pixels and rate, every setting
    of the runs (styles and other files by their contents, as a run's settings hash) and the method's
    options. A finished video whose sidecar records the same one has nothing to do."""
    from nst_jax.transfer.identity import settings_hash
    what = {"settings": settings_hash(dataclasses.replace(cfg, content=None, temporal=None)),
            "iterations": cfg.iterations, "tol": cfg.tol, "tol window": cfg.tol_window,   # not in a run's hash
            "method": opts.method._asdict(), "frame iterations": opts.frame_iterations,
            "frame tol": opts.frame_tol, "flow preset": opts.flow_preset, "fps": str(clip.fps),
            "frame numbers": clip.numbers, "version": 2}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode())
    for frame in clip.frames:
        digest.update(np.ascontiguousarray(frame, np.float32).tobytes())
    return digest.hexdigest()[:16]


def header(clip: Clip, files: VideoFiles, opts: Options) -> list[str]:
    """The lines a video prints before its work starts: what is made, and where its working files go."""
    h, w = clip.frames[0].shape[:2]
    until = "kept when the video is done (--keep-work)" if opts.keep_work else "removed when the video is done"
    return [f"video: {len(clip.frames)} frames of {clip.source} at {w}×{h} px, {clip.fps} fps, "
            f"{opts.method.name} method → {files.video}",
            f"  working files: {files.work}/ (frame runs, checkpoints, flows), {until}; a stopped video "
            f"continues from there when the same command is run again"]


def run_video(cfg: Config, clip: Clip, output: str, opts: Options = Options(), restart: bool = False,
              progress: bool = True, weights=None, say: Callable[[str], None] | None = None, watch=None) -> dict:
    """Stylise `clip` into `output` (.mp4) and its frames folder; returns the video's sidecar record
    (with "already done": True when a finished video of the same identity was found, and nothing ran).
    `watch`: a live page's state (`web.live.LiveState`), shown each frame's run and the frames done."""
    from nst_jax.model import weights as vgg_weights
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    check_inputs(cfg, clip, opts)
    files = VideoFiles(output)
    files.check([clip.source])
    key = identity(cfg, clip, opts)
    done = None if restart else files.done(key)
    if done is not None:
        if progress:
            say(f"video: {files.video} is already done (the same frames, styles and settings); --restart makes "
                f"it again")
        if not opts.keep_work and files.work_of(key):   # a finished video's work folder that was left
            _remove_work(files)
        return {**done, "already done": True}
    if progress:
        for line in header(clip, files, opts):
            say(line)
    remote = opts.engine == "ray" and opts.remote
    w = weights if weights is not None or remote else vgg_weights.load(cfg.weights)
    with files.discarded_if_refused(), files.working():
        files.claim(key)
        record = _make(Video(cfg, clip, files, opts, say), w, restart, progress, watch, key)
        if not opts.keep_work:
            files.clear_work()
    if not opts.keep_work:
        files.remove_work()
    return record


def _remove_work(files: VideoFiles) -> None:
    """A finished video's work folder, unless a process works in it now."""
    try:
        with files.lock():
            files.clear_work()
    except NSTError:
        return
    files.remove_work()


def _make(video: Video, w, restart: bool, progress: bool, watch, key: str) -> dict:
    """Every pass of `video`, its frames, mp4 and sidecar; the sidecar's record."""
    from nst_jax.apps.video import summary
    files = video.files
    tracker = VideoProgress(video.passes, video.cfg.print_every if progress else 0,
                            video.say if progress else (lambda line: None))
    t0 = time.perf_counter()
    video.watch = watch
    for steps in video.passes:
        _run_pass(video, steps, w, restart, progress, tracker)
    last = video.passes[-1]
    for s in last:
        write_if_changed(files.frame(s.frame), files.run_image(s.pass_number, s.frame).read_bytes())
    files.prune_frames(len(last))
    return summary.finish(video, time.perf_counter() - t0, key)


def _run_pass(video: Video, steps: list[Step], w, restart: bool, progress: bool, tracker: VideoProgress) -> None:
    """The runs of one pass, in order: with the Ray engine, its independent runs as Ray tasks at once
    (and, with `remote`, each other run as a Ray task in turn); here otherwise."""
    from nst_jax.transfer import runs as transfer
    todo, opts = list(steps), video.opts
    if opts.engine == "ray" and (opts.remote or sum(s.independent for s in todo) > 1):
        _on_ray(video, [s for s in todo if s.independent], restart, tracker)
        todo = [s for s in todo if not s.independent]
    for step in todo:
        if opts.engine == "ray" and opts.remote:
            _on_ray(video, [step], restart, tracker)
            continue
        cfg = video.config(step)
        tracker.begin(step)
        first = step is video.passes[0][0]
        if video.watch is not None:
            video.watch.update(frame=f"{step.frame + 1} of {len(video.frames)}, pass {step.pass_number}")
        try:
            result = transfer.run(cfg, progress=progress and first, restart=restart, loaded_weights=w,
                                  on_step=None if first else tracker.on_step, say=tracker.say, watch=video.watch)
        except NSTError as err:
            raise NSTError(f"frame {step.frame + 1} (pass {step.pass_number}): {err}") from None
        tracker.end(step, result.iteration, result.seconds, result.note is not None)
        if video.watch is not None and step.pass_number == len(video.passes):
            video.watch.frame_done(step.frame + 1, result.image)
        video.files.log_run(step, RunFiles(cfg.output).read_sidecar(), result.note is not None)


def _on_ray(video: Video, steps: list[Step], restart: bool, tracker: VideoProgress) -> None:
    """Runs as Ray tasks at once (the sweep's engine: files travel, checkpoints stream back, a lost
    worker's run resumes from the last one); --restart removes their earlier files first."""
    from nst_jax.studies import ray_engine
    if not steps:
        return
    cfgs = {f"frame {s.frame + 1}": (s, video.config(s)) for s in steps}
    if restart:
        for _, c in cfgs.values():
            for path in RunFiles(c.output).paths().values():
                Path(path).unlink(missing_ok=True)
    if len(steps) > 1:
        tracker.say(f"video: pass {steps[0].pass_number}: {len(steps)} independent runs as Ray tasks")
    for s, _ in cfgs.values():
        tracker.begin(s)
    failed = []

    def on_bundle(chunk, bundle):
        for name, c in chunk:
            if name in bundle["errors"]:
                failed.append(f"{name}: {bundle['errors'][name]}")
            elif bundle["done"]:
                s = cfgs[name][0]
                record = RunFiles(c.output).read_sidecar() or {}
                tracker.end(s, int(record.get("iteration", 0)), float(record.get("seconds", 0.0)), False)
                video.files.log_run(s, record, False)
    ray_engine.run_chunks([[(name, c)] for name, (_, c) in cfgs.items()], address=video.opts.address,
                          cpus_per_task=video.opts.cpus_per_task, gpus_per_task=None, on_bundle=on_bundle,
                          on_failure=lambda chunk, message: failed.append(f"{chunk[0][0]}: {message}"))
    if failed:
        raise NSTError("; ".join(failed))
