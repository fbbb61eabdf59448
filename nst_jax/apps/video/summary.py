"""How a video ends: the mp4 from the stylised frames, its temporal consistency (the mean warping error
between consecutive frames where the flow is trusted, Ruder et al.'s measure), the losses and times
of its runs, all in the video's sidecar.
"""

from __future__ import annotations

import shlex
import sys

import numpy as np

from nst_jax.files import image
from nst_jax.files.fileio import write_json
from nst_jax.files.runfiles import RunFiles
from nst_jax.apps.video import flow
from nst_jax.apps.video.frames import write_mp4


def consistency(frames: list[np.ndarray], pairs: dict) -> list[float]:
    """The warping error of each frame against the previous one (8-bit levels), frames 2 … n."""
    return [flow.warping_error(frames[i], frames[i - 1], pairs[(i - 1, i)]) for i in range(1, len(frames))]


def _runs(video) -> list[dict]:
    out = []
    for steps in video.passes:
        for s in steps:
            record = RunFiles(video.files.run_image(s.pass_number, s.frame)).read_sidecar() or {}
            out.append({"pass": s.pass_number, "frame": s.frame + 1, "init": s.init,
                        "held to": [e + 1 for e in s.earlier], "iteration": record.get("iteration"),
                        "seconds": record.get("seconds"), "loss": record.get("loss"), "parts": record.get("parts")})
    return out


def finish(video, seconds: float, identity: str | None = None) -> dict:
    """Write the mp4 and the sidecar (with the video's `identity`, `driver.identity`); return the
    sidecar's record."""
    files, cfg, clip = video.files, video.cfg, video.clip
    n = len(clip.frames)
    frames = [image.load_image(files.frame(i)) for i in range(n)]
    runs = _runs(video)
    final = [r for r in runs if r["pass"] == len(video.passes)]
    errors = consistency(frames, video.pairs)
    weighted = lambda part, w: float(np.mean([w * (r["parts"] or {}).get(part, np.nan) for r in final]))
    record = {
        "video": files.video.name, "identity": identity, "source": clip.source, "frame numbers": clip.numbers,
        "frames": n, "fps": str(clip.fps), "size": list(frames[0].shape[:2]),
        "method": {**video.opts.method._asdict(), "frame_iterations": video.opts.frame_iterations},
        "config": {k: v for k, v in cfg.to_dict().items() if k not in ("content", "output", "temporal")},
        "flow": video.flow_info,
        "consistency": {"mean warping error": float(np.mean(errors)) if errors else 0.0,
                        "per frame": [round(e, 4) for e in errors],
                        "what": "mean |x_i − warp(x_{i−1})| over the pixels with c = 1, in 8-bit levels"},
        "losses": {"content": weighted("content", cfg.content_weight), "style": weighted("style", cfg.style_weight),
                   "what": "the final frames' weighted content and style losses, mean over frames"},
        "seconds": {"runs": round(sum(r["seconds"] or 0.0 for r in runs), 3), "this process": round(seconds, 3),
                    "per frame": round(sum(r["seconds"] or 0.0 for r in runs) / n, 3)},
        "runs": runs, "command": shlex.join(["python", *sys.orig_argv[1:]]),
    }
    write_json(files.sidecar, record)   # first: the sidecar claims the mp4 (a rerun may replace it)
    write_mp4(files.video, frames, clip.fps)
    return record
