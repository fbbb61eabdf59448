"""A run's settings identity: the hash that says whether files on disk belong to these settings.

It covers every Config field that changes the optimisation's path (metadata `result=True`), and
nothing else: output paths, printing and checkpointing options do not enter. Files enter by their
contents, not their paths, so a run moved to another folder or machine (a Ray worker) keeps its hash,
and an image changed in place does not. Two fields enter as what the plan made of them: `precision`
as the precision chosen on this machine ('auto' resolved), `memory` only as the L-BFGS history's
precision (rematerialising changes no number; a bfloat16 history does).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

from nst_jax.transfer.config import FIELDS, INITS, Config

# the fields that name files a run reads: images, masks, an --init image, a weights file
INPUT_FIELDS = tuple(name for name, f in FIELDS.items()
                     if f.metadata["result"] and (f.metadata["kind"] in ("path", "paths") or name == "init"))


# fields added after runs were already hashed, whose off value leaves the path as it was: hashed only when
# on, so an earlier run's checkpoint still resumes
HASHED_WHEN_ON = frozenset({"normalize_gradients"})


def input_files(cfg: Config) -> list[str]:
    """The files `cfg` reads (--init only when it names a file)."""
    files = []
    for name in INPUT_FIELDS:
        value = getattr(cfg, name)
        if isinstance(value, tuple):
            files.extend(value)
        elif value is not None and not (name == "init" and value in INITS):
            files.append(value)
    return files


def settings_hash(cfg: Config, plan=None) -> str:
    """16 hex digits over the fields that change the path (see the module docstring). `plan`: the
    run's `planning.RunPlan`, whose memory way and precision are hashed; without one, the Config's own
    values (its precision resolved for this machine's default device)."""
    memory_way = cfg.memory if plan is None else plan.memory
    if plan is None:
        from nst_jax.machine.hardware import resolve_precision
        precision = resolve_precision(cfg.precision)
    else:
        precision = plan.precision
    d = {}
    for f in dataclasses.fields(cfg):
        if not f.metadata["result"]:
            continue
        value = getattr(cfg, f.name)
        if f.name in HASHED_WHEN_ON and not value:
            continue
        if f.name in INPUT_FIELDS:
            value = [file_digest(v) for v in value] if isinstance(value, tuple) else file_digest(value)
        elif f.name == "precision":
            value = precision
        elif f.name == "memory":
            value = "bfloat16 history" if memory_way == "remat-bf16" else "float32 history"
        d[f.name] = value
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(value):
    """sha256 of a file's bytes (cached by path, size and modification time), or `value` itself when it
    names no file (None, or an initialisation such as 'noise')."""
    if not isinstance(value, str) or value in INITS:
        return value
    try:
        st = Path(value).stat()
    except OSError:
        return value
    if not Path(value).is_file():
        return value
    return _digest(str(Path(value).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
