"""Which of a run's files nst_jax wrote, from what each file holds: a run replaces no file of the user's.

A file that a run may write (`RunFiles.check_ours` lists them) and that exists is nst_jax's when it,
or a file of the run beside it, carries nst_jax's evidence:

- the sidecar `out.json`: it is a JSON object whose `config.output` names an output (this one, to count
  as evidence for the files beside it);
- the result `out.png`: the sidecar names it, or the PNG's own `nst_jax` record names this output,
  or the loss log beside it is nst_jax's (a run that stopped on a NaN leaves its last good image and log);
- the loss log, the checkpoint, intermediate images, set-aside checkpoints and logs: it reads as one of
  nst_jax's (the log's first line a loss record, the checkpoint's metadata nst_jax's), or the run's
  sidecar, result or loss log is nst_jax's;
- the lock `out.lock`: it holds nothing but a process id.

A symbolic link in any of these places is never nst_jax's (nst_jax makes none). Evidence is read as
untrusted input (`untrusted`) and only recognised here; the run checks each record fully when it uses it
(`records`), so a damaged record of nst_jax's still gets its own message. The error file `out.error.txt`
is not checked: only sweeps and the studio write one, into folders they own.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from nst_jax.files import checkpoints, records, untrusted
from nst_jax.base.errors import NSTError

HEAD_BYTES = 64 * 1024   # the first line of a loss log nst_jax wrote is far shorter


def named_output(record: Any) -> str | None:
    """The file name of the output a run record (a sidecar's, or a result PNG's) names in `config.output`."""
    config = record.get("config") if isinstance(record, dict) else None
    named = config.get("output") if isinstance(config, dict) else None
    return Path(named).name if isinstance(named, str) else None


def sidecar_output(path: Path) -> str | None:
    try:
        return named_output(untrusted.read_json(path, "sidecar"))
    except NSTError:
        return None


def png_names(path: Path, output: Path) -> bool:
    """True if `path` is a PNG whose `nst_jax` text (stored before the pixels, read without decoding
    them) names `output`."""
    try:
        with untrusted.open_regular(path, "image") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")   # a large image's DecompressionBombWarning: its pixels are not read
            with Image.open(f) as im:
                text = im.info.get("nst_jax") if im.format == "PNG" else None
    except Exception:  # noqa: BLE001 - any file Pillow cannot open is simply not nst_jax's result
        return False
    try:
        return isinstance(text, str) and named_output(untrusted.parse_json(text, f"result {path}")) == output.name
    except NSTError:
        return False


def is_loss_log(path: Path) -> bool:
    """True if the first line of `path` is one of nst_jax's loss records."""
    try:
        with untrusted.open_regular(path, "loss log") as f:
            first = f.readline(HEAD_BYTES)
        records.log_record(untrusted.parse_json(first, f"loss log {path}"), path, 1)
        return True
    except NSTError:
        return False


def is_checkpoint(path: Path) -> bool:
    """True if `path` holds nst_jax's checkpoint metadata (a damaged field still says whose it is)."""
    try:
        return checkpoints.read_meta(path) is not None
    except NSTError:
        return True


def is_lock(path: Path) -> bool:
    try:
        return re.fullmatch(rb"\s*\d*\s*", untrusted.read_bytes(path, "lock file", 64)) is not None
    except NSTError:
        return False


def foreign(image: Path, sidecar: Path, log: Path, lock: Path,
            others: list[tuple[Path, Callable[[Path], bool] | None, str]]) -> tuple[Path, str] | None:
    """The first of a run's files that exists and that nst_jax did not write (see the module docstring),
    with why; None if there is none. `others`: the remaining files that exist, each with the check of its
    own evidence (None: it has none) and what it would be."""
    def there(p: Path) -> bool:
        return os.path.lexists(p)   # False, not an error, where the folder cannot be searched

    for p in (image, sidecar, log, lock, *(o for o, _, _ in others)):
        if os.path.islink(p):
            return p, "is a symbolic link, which nst_jax did not make"
    named = sidecar_output(sidecar) if there(sidecar) else None   # another result's: `RunFiles.check_output`
    if there(sidecar) and named is None:
        return sidecar, "exists and is not the sidecar of an nst_jax result"
    ours_sidecar = named == image.name
    ours_log = there(log) and is_loss_log(log)
    ours_image = there(image) and (ours_sidecar or ours_log or png_names(image, image))
    if there(image) and not ours_image:
        return image, "exists and nst_jax did not write it (no record of nst_jax's names it)"
    run = ours_sidecar or ours_image or ours_log
    if there(log) and not run:
        return log, "exists and is not a loss log of nst_jax's"
    if there(lock) and not is_lock(lock):
        return lock, "exists and is not a lock file of nst_jax's"
    for path, own, what in others:
        if there(path) and not (run or (own is not None and own(path))):
            return path, (f"exists and is not {what} of nst_jax's ({'unreadable as one, and ' if own else ''}no "
                          f"other file of this run is nst_jax's)")
    return None
