"""Atomic file writes: nothing a user has is left half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write_path(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(temp_path) for a temp file beside `path` (for writers that want a file name, such
    as h5py), then give it the usual permissions and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, write: Callable) -> None:
    """Call write(binary file object) on a temp file beside `path`, then rename it into place."""
    def to_path(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write(f)
    atomic_write_path(path, to_path)
