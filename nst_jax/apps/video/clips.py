"""Several clips in one command (`--clips`): each is a video of its own (`driver.run_video`) written to
`<folder>/<clip name>.mp4`, with its own work folder there. Here they run one after the other;
with `--engine ray` they run at once, every run of every clip a Ray task, each clip's runs in its
own order (a frame still starts from the one before it).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from nst_jax.transfer.config import Config
from nst_jax.base.errors import NSTError
from nst_jax.apps.video.driver import Options, run_video
from nst_jax.apps.video.frames import Clip


def outputs(inputs: list[str], folder: str) -> list[str]:
    """Each clip's .mp4 in `folder`, named by its input; NSTError when two inputs share a name."""
    if Path(folder).suffix.lower() == ".mp4":
        raise NSTError(f"-o {folder}: with --clips, -o names a folder (each clip is written as <name>.mp4 in it)")
    names = [Path(p.rstrip("/")).stem for p in inputs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise NSTError(f"--clips: several inputs are named {', '.join(clash)}; their results would share a name")
    return [str(Path(folder) / f"{n}.mp4") for n in names]


def run_clips(cfg: Config, clips: list[Clip], outs: list[str], opts: Options, restart: bool, progress: bool,
              say: Callable[[str], None]) -> list[dict]:
    """Every clip's video; their sidecar records, in order."""
    if opts.engine != "ray":
        return [run_video(cfg, c, o, opts, restart, progress, say=lambda line, n=Path(o).stem: say(f"[{n}] {line}"))
                for c, o in zip(clips, outs)]
    from nst_jax.studies.ray_engine import connect
    connect(opts.address)   # once, before the clips' threads share it
    remote = opts._replace(remote=True)
    with ThreadPoolExecutor(max_workers=len(clips)) as pool:
        futures = [pool.submit(run_video, cfg, c, o, remote, restart, progress,
                               None, lambda line, n=Path(o).stem: say(f"[{n}] {line}")) for c, o in zip(clips, outs)]
        return [f.result() for f in futures]
