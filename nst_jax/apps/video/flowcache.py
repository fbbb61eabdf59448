"""The flows a video needs, computed once: each Pair (the flow dst → src and the weights of src warped
into dst) is a file in the flow cache (`files.VideoFiles.flows`), keyed by the frames' bytes and the
flow's settings. Missing pairs are computed here, or as Ray tasks with `--engine ray`; every pair is
then read back from its file, so a first run and a rerun use the very same numbers.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Callable

import numpy as np

from nst_jax.files.fileio import write_bytes
from nst_jax.apps.video import flow
from nst_jax.apps.video.files import VideoFiles, flow_key, read_pair_file


def pair_array(src: np.ndarray, dst: np.ndarray, preset: str) -> np.ndarray:
    return flow.pair(src, dst, preset).as_array()


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def load_pairs(files: VideoFiles, frame_files: list[Path], frames: list[np.ndarray], needed: list[tuple[int, int]],
               preset: str, engine: str = "local", address: str | None = None,
               say: Callable[[str], None] = print) -> tuple[dict, dict]:
    """Every needed (src, dst) Pair, from the cache or computed; and what it took (for the sidecar)."""
    key = flow_key(frame_files, preset)
    folder = files.flows(key)
    shape = frames[0].shape[:2]
    path = lambda s, d: folder / f"{s + 1:04d}-{d + 1:04d}.npy"
    missing = [(s, d) for s, d in needed if read_pair_file(path(s, d), shape) is None]
    t0 = time.perf_counter()
    if missing:
        say(f"flow: computing {len(missing)} of {len(needed)} frame pairs (OpenCV DIS, {preset})"
            + (" on Ray" if engine == "ray" else ""))
        arrays = _on_ray(frames, missing, preset, address) if engine == "ray" else \
            (pair_array(frames[s], frames[d], preset) for s, d in missing)
        for (s, d), a in zip(missing, arrays):
            write_bytes(path(s, d), npy_bytes(a))
    seconds = time.perf_counter() - t0
    pairs = {}
    for s, d in needed:
        a = read_pair_file(path(s, d), shape)
        if a is None:
            from nst_jax.base.errors import NSTError
            raise NSTError(f"flow cache {path(s, d)}: unreadable just after it was written")
        pairs[(s, d)] = flow.Pair.from_array(a)
    info = {"pairs": len(needed), "computed": len(missing), "seconds": round(seconds, 3), "preset": preset,
            "cache": f"{folder.parent.name}/{key}"}
    return pairs, info


def _on_ray(frames: list[np.ndarray], missing: list[tuple[int, int]], preset: str, address: str | None):
    """The missing pairs as Ray tasks (one per pair), in order."""
    import ray

    from nst_jax.studies.ray_engine import connect
    connect(address)
    task = ray.remote(pair_array).options(num_cpus=1)
    refs = {}
    refs_frames = {}
    for s, d in missing:
        for i in (s, d):
            if i not in refs_frames:
                refs_frames[i] = ray.put(frames[i])
        refs[(s, d)] = task.remote(refs_frames[s], refs_frames[d], preset)
    return (ray.get(refs[k]) for k in missing)
