"""The one place where nst_jax's programs are jitted with its XLA compiler options.

On XLA-CPU (jaxlib 0.10), convolutions and matrix products are by default handed to YNNPACK
("ynn fusions"). For VGG19's 3×3 convolutions XLA's own (Eigen) convolution is faster on the 2-core
AVX-512 machines measured here: one forward + input-gradient pass over VGG19 to relu5_1 at 256² took
0.54 s with YNNPACK and 0.44 s without (PyTorch's oneDNN: 0.48 s), and a value+grad of the Gatys
objective 0.71 s vs 0.59 s when this was added (the bench keeps a column compiled with XLA's
defaults, so the comparison is repeated in every run). The option is passed per compiled program
(`jax.jit(..., compiler_options=...)`), so nst_jax changes nothing for other JAX code in the process.

Set NST_JAX_XLA_DEFAULTS=0 to compile with XLA's defaults instead (to compare, or if a future
jaxlib drops the option: an unknown option is detected once and then not passed).

nst_jax's commands also keep their compiled programs across runs (`keep_compiled_programs`): compiling a
512 px run's programs takes ~25 s on a 2-core CPU, about 6 % of the main job, and a run of the
same settings and size again then loads them instead. Each kept program is bound to its key
(`_BoundEntries`): a program file copied over another's, or damaged, is dropped and compiled again, never run.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Callable

import jax

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.lru_cache(maxsize=None)
def compiler_options(backend: str | None = None) -> dict[str, Any] | None:
    """The options nst_jax compiles with on `backend` (default: JAX's default backend), or None."""
    if os.environ.get("NST_JAX_XLA_DEFAULTS", "1").strip() in ("0", "false", "no"):
        return None
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return None
    try:  # a jaxlib without the option rejects it at compile time: check once, on a trivial program
        jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(1.0).compile()
    except Exception:  # noqa: BLE001 - any rejection means: compile with the defaults
        return None
    return dict(CPU_OPTIONS)


def jit(fun: Callable, xla_defaults: bool = False, **kwargs) -> Callable:
    """`jax.jit(fun, **kwargs)` with `compiler_options()` for the default backend; `xla_defaults`: with
    XLA's own options — for bfloat16 programs, whose matrix products need YNNPACK's fast path (the
    option that gives float32 convolutions theirs turns it off for products too)."""
    options = None if xla_defaults else compiler_options()
    if options:
        kwargs.setdefault("compiler_options", options)
    return jax.jit(fun, **kwargs)


COMPILED_CACHE_BYTES = 2 * 2**30   # the compiled programs kept, least recently used dropped first


def keep_compiled_programs() -> Path | None:
    """For nst_jax's commands (not on import: other code in the process keeps its own JAX settings): JAX's
    persistent compilation cache in the user's cache folder (`identity.cache_folder`), one folder per
    machine — a program compiled for one CPU's instruction set must not be loaded on another, and JAX's
    own cache key does not tell CPUs apart — at most `COMPILED_CACHE_BYTES`. The folder, or None when
    `NST_JAX_COMPILE_CACHE=off`, when JAX was already given a cache folder (that one is used), or when the
    folder cannot be made (then every run compiles, as without it)."""
    if os.environ.get("NST_JAX_COMPILE_CACHE", "").strip().lower() in ("0", "off", "no", "false"):
        return None
    if jax.config.jax_compilation_cache_dir:
        return None
    from nst_jax.machine import identity
    # JAX's key names the platform; asking for the backend here would start it (before jax.distributed, or
    # a sweep's Ray cluster forking its workers)
    folder = identity.cache_folder() / "compiled" / identity.machine_key(identity.machine(backend=False))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if folder.is_symlink() or not os.access(folder, os.W_OK):
            return None
    except OSError:
        return None
    if not _bind_entries(folder):
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _min_compile_seconds())
    jax.config.update("jax_compilation_cache_max_size", COMPILED_CACHE_BYTES)
    return folder


def _min_compile_seconds() -> float:
    """Programs that compile faster are not kept: 1 s, or JAX's own JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS."""
    try:
        return max(0.0, float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", 1.0)))
    except ValueError:
        return 1.0


_MAGIC = b"nst_jax compiled program 1\n"


def _seal(key: str, value: bytes) -> bytes:
    return hashlib.sha256(key.encode() + b"\0" + value).digest()


class _BoundEntries:
    """JAX's file cache of compiled programs with each entry bound to its key: written as a mark, the
    SHA-256 of key and entry, and the entry; read back only when that holds. JAX finds a program by its
    file's name alone and runs what the file holds, so a program file copied over another's would run in
    its place (an error deep in the loop on every run, or other numbers), and a damaged one would not
    load. Such a file, one without the mark or one larger than the whole cache may be, is dropped, and
    the program is compiled again and kept anew. A file that is not a regular file (a named pipe would
    block the read) is passed over, never opened."""

    def __init__(self, base, folder: Path):
        self._base, self._folder = base, folder

    @property
    def _path(self):   # JAX logs the cache's path
        return self._base._path

    def get(self, key: str) -> bytes | None:
        try:
            found = os.stat(self._folder / f"{key}-cache")
        except OSError:
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        value = self._base.get(key) if found.st_size <= COMPILED_CACHE_BYTES else None
        head, body = (value[:len(_MAGIC) + 32], value[len(_MAGIC) + 32:]) if value else (b"", b"")
        if value and head == _MAGIC + _seal(key, body):
            return body
        try:                                     # not what was written under this key: compiled again
            for suffix in ("-cache", "-atime"):
                (self._folder / f"{key}{suffix}").unlink(missing_ok=True)
        except OSError:                          # not removable: compiled again on every run, never run
            pass
        return None

    def put(self, key: str, value: bytes) -> None:
        self._base.put(key, _MAGIC + _seal(key, value) + value)

    def clear(self):
        return self._base.clear()


_BOUND: set[Path] = set()


def _bind_entries(folder: Path) -> bool:
    """Have JAX's file cache for `folder` bind its entries to their keys (`_BoundEntries`); False (the
    programs are then not kept) where this JAX does not have the file cache nst_jax wraps."""
    try:
        from jax._src import compilation_cache
        plain = compilation_cache.get_file_cache
    except (ImportError, AttributeError):
        return False
    if folder in _BOUND:
        return True

    def file_cache(path):
        made = plain(path)
        if made is not None and Path(path) == folder:
            made = (_BoundEntries(made[0], folder), made[1])
        return made
    compilation_cache.get_file_cache = file_cache
    _BOUND.add(folder)
    return True
