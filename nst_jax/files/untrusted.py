"""The one reader of untrusted files and bodies: every JSON, JSON-lines, TOML, gzip and .npy file nst_jax reads
back (sidecars, loss logs, manifests, grids, caches, the studio's records and POST bodies, --temporal and
the flow cache) comes through here, so that a hostile or damaged file is one `NSTError` line and never a
traceback, a hang or a huge allocation.

The limits: only regular files are opened (a named pipe, a device or a folder is refused before anything
blocks on it); a file or body over `MAX_BYTES` is refused unread; nesting deeper than `MAX_DEPTH` is
refused (JSON's and TOML's own parsers recurse, and 2000 nested lists would end them in a RecursionError);
an .npy header is checked against the dtype and shape the caller expects, and against the file's size,
before its array is allocated.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import zipfile
import zlib
from typing import Any, Callable

import numpy as np

from nst_jax.base.errors import NSTError

MAX_BYTES = 64 * 2**20      # a record, log or grid larger than this is not one nst_jax wrote
MAX_DEPTH = 64              # records nst_jax writes nest at most a few levels deep
MAX_ARRAY_BYTES = 2**31     # an .npy array larger than this is refused before it is allocated


def _size(limit: int) -> str:
    return f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit} bytes"


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:200]


def open_regular(path: str | os.PathLike, what: str, links: bool = True):
    """`path` opened for reading in binary, refused with one line unless it is a regular file (and, with
    `links` False, unless it is itself no symbolic link). It is opened without blocking (a named pipe would
    wait for a writer forever) and checked on the open descriptor, so a file swapped in between cannot
    slip through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (0 if links else os.O_NOFOLLOW))
    except OSError as err:
        if err.errno == errno.ELOOP and not links:
            raise NSTError(f"{what} {path}: a symbolic link, not a file nst_jax wrote") from None
        raise NSTError(f"{what} {path}: unreadable ({(err.strerror or str(err)).lower()})") from None
    return regular_file(fd, f"{what} {path}")


def regular_file(fd: int, where: str):
    """The descriptor `fd` (opened with O_NONBLOCK) as a blocking binary file, when it is a regular file;
    else it is closed and NSTError says so."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NSTError(f"{where}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike, what: str, limit: int = MAX_BYTES, links: bool = True) -> bytes:
    """A regular file's bytes, refused with one line when it is over `limit` (or a link, as `open_regular`)."""
    with open_regular(path, what, links) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise NSTError(f"{what} {path}: unreadable (over {_size(limit)}, not a file nst_jax wrote)")
    return data


def gunzip(data: bytes, what: str, limit: int = MAX_BYTES) -> bytes:
    """gzip-compressed bytes expanded, refused with one line when they are not gzip or would expand past
    `limit` (a small file can expand a thousandfold; nothing past the limit is ever allocated)."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as err:
        raise NSTError(f"{what}: unreadable (not gzip: {_first_line(err)})") from None
    if len(out) > limit:
        raise NSTError(f"{what}: unreadable (expands past {_size(limit)}, not a file nst_jax wrote)")
    if not d.eof:
        raise NSTError(f"{what}: unreadable (cut short)")
    return out


def check_depth(value: Any, what: str, limit: int = MAX_DEPTH) -> Any:
    """`value` itself, when lists and objects nest in it at most `limit` deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            raise NSTError(f"{what}: unreadable (nested more than {limit} deep, not a record nst_jax wrote)")
        stack.extend((child, depth + 1) for child in children)
    return value


def _parse(parse: Callable[[str], Any], data: bytes | str, what: str, kind: str, limit: int) -> Any:
    if len(data) > limit:
        raise NSTError(f"{what}: unreadable (over {_size(limit)}, not {kind} nst_jax takes)")
    try:
        text = data.decode() if isinstance(data, (bytes, bytearray)) else data
        value = parse(text)
    except RecursionError:
        raise NSTError(f"{what}: unreadable (nested more than {MAX_DEPTH} deep, not a record nst_jax wrote)") from None
    except (ValueError, UnicodeDecodeError) as err:   # json.JSONDecodeError and tomllib.TOMLDecodeError too
        raise NSTError(f"{what}: unreadable (not valid {kind}: {_first_line(err)})") from None
    return check_depth(value, what)


def parse_json(data: bytes | str, what: str, limit: int = MAX_BYTES) -> Any:
    """JSON text or bytes within the size and depth limits."""
    return _parse(json.loads, data, what, "JSON", limit)


def parse_toml(data: bytes | str, what: str, limit: int = MAX_BYTES) -> Any:
    import tomllib
    return _parse(tomllib.loads, data, what, "TOML", limit)


def read_json(path: str | os.PathLike, what: str, limit: int = MAX_BYTES) -> Any:
    """A JSON file, as `parse_json`; `what` names it in the message (e.g. 'sidecar')."""
    return parse_json(read_bytes(path, what, limit), f"{what} {path}", limit)


def read_toml(path: str | os.PathLike, what: str, limit: int = MAX_BYTES) -> Any:
    return parse_toml(read_bytes(path, what, limit), f"{what} {path}", limit)


def json_lines(text: str, what: str) -> list[tuple[int, Any]]:
    """The records of a JSON-lines text, each with its line number (blank lines skipped)."""
    return [(i, parse_json(line, f"{what}, line {i}")) for i, line in enumerate(text.splitlines(), start=1)
            if line.strip()]


def _read_npy(f, size_on_disk: int, where: str, accept: Callable[[np.dtype, tuple], str | None],
              limit: int | None = MAX_ARRAY_BYTES) -> np.ndarray:
    try:
        version = np.lib.format.read_magic(f)
        reader = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if reader is None:
            raise ValueError(f"unknown .npy version {version}")
        shape, fortran, dtype = reader(f, max_header_size=10000)
        start = f.tell()
    except (ValueError, EOFError, SyntaxError, TypeError) as err:
        raise NSTError(f"{where}: unreadable (not an .npy array: {_first_line(err)})") from None
    if dtype.hasobject:
        raise NSTError(f"{where}: unreadable (it holds Python objects, not numbers)")
    why = accept(dtype, tuple(shape))
    if why is not None:
        raise NSTError(f"{where}: {why}")
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if (limit is not None and size > limit) or size_on_disk - start != size:
        raise NSTError(f"{where}: unreadable (its header claims {size} bytes of data, which the file does not hold)")
    raw, got = bytearray(size), 0
    view = memoryview(raw)
    while got < size:
        n = f.readinto(view[got:])
        if not n:
            raise NSTError(f"{where}: unreadable (it ends before its data does)")
        got += n
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def load_npy(path: str | os.PathLike, what: str, accept: Callable[[np.dtype, tuple], str | None]) -> np.ndarray:
    """An .npy array whose header `accept(dtype, shape)` passes (it returns None, or why not), read only
    after that and after checking that the file holds exactly the data its header claims."""
    with open_regular(path, what) as f:
        return _read_npy(f, os.fstat(f.fileno()).st_size, f"{what} {path}", accept)


class Archive:
    """An .npz archive read as untrusted input: each member through `load_npy`'s checks (`array`)."""

    def __init__(self, path: str | os.PathLike, what: str):
        self.where = f"{what} {path}"
        self.file = open_regular(path, what)
        try:
            self.zip = zipfile.ZipFile(self.file)
        except Exception as err:  # noqa: BLE001 - any archive the zip reader cannot open is damaged
            self.file.close()
            raise NSTError(f"{self.where}: unreadable (not an archive: {_first_line(err)})") from None

    def array(self, name: str, accept: Callable[[np.dtype, tuple], str | None],
              limit: int | None = MAX_ARRAY_BYTES) -> np.ndarray:
        """A member, its header passed by `accept`; `limit` None where `accept` fixes its shape and dtype
        (a checkpoint's leaves: as large as the run's own state)."""
        try:
            info = self.zip.getinfo(f"{name}.npy")
            with self.zip.open(info) as f:
                return _read_npy(f, info.file_size, f"{self.where} ({name})", accept, limit)
        except KeyError:
            raise NSTError(f"{self.where}: unreadable (it has no {name})") from None
        except NSTError:
            raise
        except Exception as err:  # noqa: BLE001 - zip, CRC, compression and encryption errors alike: damaged
            raise NSTError(f"{self.where}: unreadable ({_first_line(err)})") from None

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.zip.close()
        self.file.close()
