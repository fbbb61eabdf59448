"""Atomic file writes: nothing a user has is left half-written, and a failed write is one clear line.

Every file nst_jax writes goes through `atomic_write_path`: a temporary file beside the target
(`.NAME.XXXX.tmp`), then a rename. An OS error on the way (permission, read-only file system, no
space left, a folder where a file should be, a file where a folder should be) becomes an `NSTError`
naming the path; the temporary file is removed and the earlier file stays intact.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

from nst_jax.errors import NSTError

_REASONS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
            errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
            errno.EISDIR: "it is a folder", errno.ENOTDIR: "a part of its path is a file, not a folder",
            errno.EEXIST: "a part of its path is a file, not a folder", errno.EDQUOT: "disk quota exceeded"}


def write_error(path, err: OSError) -> NSTError:
    """The one-line error for an OS error while writing `path`."""
    reason = _REASONS.get(err.errno) or (err.strerror or type(err).__name__).lower()
    return NSTError(f"cannot write {path}: {reason}")


def temp_name_pattern(path: str | os.PathLike) -> str:
    """The glob of the temporary files that writing `path` makes (left behind only by a kill)."""
    return "." + Path(path).name + ".*.tmp"


def atomic_write_path(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(temp_path) for a temp file beside `path` (for writers that want a file name, such
    as h5py), then give it the usual permissions and rename it into place."""
    path = Path(path)
    tmp = None
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, write: Callable) -> None:
    """Call write(binary file object) on a temp file beside `path`, then rename it into place."""
    def to_path(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write(f)
    atomic_write_path(path, to_path)


_HELD: dict[str, int] = {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lock:
    """An exclusive lock file holding the owner's pid: a second process gets one clear error naming
    that process; a lock whose process is gone (killed) is stale and taken over. Re-entrant within
    one process; released on exit from the `with` block."""

    def __init__(self, path: str | os.PathLike, what: str):
        self.path, self.what = Path(path), what

    def __enter__(self) -> "Lock":
        key = str(self.path.resolve())
        if _HELD.get(key):
            _HELD[key] += 1
            return self
        for _ in range(3):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _alive(pid):
                    raise NSTError(f"{self.what} is in use by process {pid} (lock file {self.path}); wait for it "
                                   f"to finish or stop it") from None
                stale = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
                try:  # break a stale lock; of two processes doing this at once, O_EXCL lets one win
                    os.replace(self.path, stale)
                    os.unlink(stale)
                except FileNotFoundError:
                    pass
                continue
            except OSError as err:
                raise write_error(self.path, err) from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            _HELD[key] = 1
            return self
        raise NSTError(f"{self.what}: could not take the lock file {self.path}")

    def __exit__(self, *exc) -> None:
        key = str(self.path.resolve())
        _HELD[key] -= 1
        if _HELD[key] == 0:
            del _HELD[key]
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
