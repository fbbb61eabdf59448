"""Atomic file writes: nothing a user has is left half-written, and a failed write is one clear line.

Every file nst_jax writes goes through `atomic_write_path`: a temporary file beside the target with a
name nobody can predict (`.NAME.XXXXXXXX.tmp`, created with O_EXCL by `tempfile.mkstemp`), then a
rename — which replaces a symbolic link in the target's place instead of writing through it. The loss
logs, the one file appended to, are opened with O_NOFOLLOW (`open_append`). An OS error on the way
(permission, read-only file system, no space left, a folder where a file should be, a file where a
folder should be, a symbolic link) becomes an `NSTError` naming the path; the temporary file is removed
and the earlier file stays intact. Left-over temporary files are removed only when they are regular
files with exactly that name pattern (`stale_temps`).
"""

from __future__ import annotations

import errno
import json
import fcntl
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

from nst_jax.base.errors import NSTError

_REASONS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
            errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
            errno.EISDIR: "it is a folder", errno.ENOTDIR: "a part of its path is a file, not a folder",
            errno.EEXIST: "a part of its path is a file, not a folder", errno.EDQUOT: "disk quota exceeded",
            errno.ELOOP: "it is a symbolic link (nst_jax writes through none it did not make)"}


def write_error(path, err: OSError) -> NSTError:
    """The one-line error for an OS error while writing `path`."""
    reason = _REASONS.get(err.errno) or (err.strerror or type(err).__name__).lower()
    return NSTError(f"cannot write {path}: {reason}")


def temp_name_pattern(path: str | os.PathLike) -> str:
    """The glob of the temporary files that writing `path` makes (left behind only by a kill)."""
    return "." + Path(path).name + ".*.tmp"


TEMP_PART = re.compile(r"[a-z0-9_]{8}")   # what tempfile.mkstemp puts between prefix and suffix


def stale_temps(path: str | os.PathLike) -> list[Path]:
    """The temporary files that writing `path` left behind: regular files (not links, not folders) named
    exactly as `atomic_write_path` names them."""
    path = Path(path)
    found = []
    if not path.parent.is_dir():
        return found
    prefix = "." + path.name + "."
    for candidate in path.parent.glob(temp_name_pattern(path)):
        middle = candidate.name[len(prefix):-len(".tmp")]
        try:
            regular = stat.S_ISREG(candidate.lstat().st_mode)
        except OSError:
            continue
        if regular and TEMP_PART.fullmatch(middle):
            found.append(candidate)
    return found


def probe_writable(folder: str | os.PathLike, name: str) -> None:
    """Create and remove a temporary file in `folder` (OSError if that cannot be done); the name cannot
    be predicted, so nothing planted in the folder is written through."""
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    os.unlink(tmp)


def open_append(path: str | os.PathLike):
    """`path` opened for appending text, created if absent — never through a symbolic link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as err:
        raise write_error(path, err) from None
    return os.fdopen(fd, "a")


def save_figure(fig, path: str | os.PathLike, **kwargs) -> None:
    """A matplotlib figure saved atomically, in the format its file name says."""
    fmt = Path(path).suffix.lower().lstrip(".")
    atomic_write_bytes(path, lambda f: fig.savefig(f, format=fmt, **kwargs))


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


_HELD: dict[str, tuple[int, int]] = {}   # lock path → (count, descriptor) for re-entry within one process


def _pid_in(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


class Lock:
    """An exclusive lock: `flock` on a lock file that holds the owner's pid, so a second process gets one
    clear error naming that process, a lock whose process died is free again (the kernel releases it),
    and two processes can never both hold it. Re-entrant within one process; released on exit from the
    `with` block."""

    def __init__(self, path: str | os.PathLike, what: str):
        self.path, self.what = Path(path), what

    def __enter__(self) -> "Lock":
        key = str(self.path.absolute())
        if key in _HELD:
            count, fd = _HELD[key]
            _HELD[key] = (count + 1, fd)
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(self.path, err) from None
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as err:
                raise write_error(self.path, err) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid = _pid_in(self.path)
                raise NSTError(f"{self.what} is in use by process {pid or 'unknown'} (lock file {self.path}); wait "
                               f"for it to finish or stop it") from None
            try:  # the file may have been removed (a holder's release) between our open and our lock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _HELD[key] = (1, fd)
            return self
        raise NSTError(f"{self.what}: could not take the lock file {self.path}")

    def __exit__(self, *exc) -> None:
        key = str(self.path.absolute())
        count, fd = _HELD[key]
        if count > 1:
            _HELD[key] = (count - 1, fd)
            return
        del _HELD[key]
        try:  # removed while still locked, so a waiting process's check above sees that it is gone
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` of a text (UTF-8)."""
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, lambda f: f.write(data))


def write_json(path: Path, record: Any) -> None:
    write_text(path, json.dumps(record, indent=2, default=str))
