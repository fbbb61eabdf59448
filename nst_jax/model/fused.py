"""Winograd F(4×4, 3×3) as one fused kernel of nst_jax's own ('f4f'), compiled on and for this machine
and called from XLA through its foreign-function interface (`native/winograd_f4.cc`); the same library
holds the Gram matrix's product FᵀF (`gram`, `native/gram.cc`), which runs planned with the fused forms
use for the Gram statistic (`objective.statistics.get`), and a radix sort of columns with the same bits as
`jnp.sort` (`sort_columns`, `native/sort.cc`), which the sorting statistics use wherever the library is.

The arithmetic is `winograd.conv_f4`'s; what differs is where the data goes. XLA's fusions write the
transformed tiles (2.25× the input) to memory, multiply them in a separate batched product and read the
products back for the inverse transform; the fused kernel transforms, multiplies and transforms back
one block of tiles at a time while it is in cache, with a matrix micro-kernel of the CPU's vector width.

The kernel is built once per machine with the C++ compiler found ($CXX, else g++, c++ or clang++), with
`-O3 -march=native` (or the architecture $NST_JAX_FUSED_ARCH names), into the user's cache folder: one file
per source, compiler, flags and machine, so a library built for another CPU is never loaded. Without a
compiler, or with `NST_JAX_FUSED=off`, the form is not offered and the planner chooses among the others
(`why_unavailable` says why). CPU only.

Where the CPU has bfloat16 units, the same kernel also multiplies in bfloat16 (`conv_bf16`): float32
transforms, the transformed input rounded to bfloat16, float32 accumulation, on AMX tiles ('amx') or
AVX512-BF16's dot products ('avx512-bf16'); or on AMX with each number split into two bfloat16 ones and
three products ('amx-split': an error near float32's at about three times the products). `bf16_units`
names those this build may use (AMX only where Linux grants the process its tile state).

The library in the cache is untrusted like everything read back: its SHA-256 is recorded beside it when it
is built (`<name>.sha256.json`) and it is loaded only when it is a regular file whose bytes match that
record. A truncated library would end the process with SIGBUS inside `ctypes.CDLL`, and another library
put in its place would run other code; either, or a missing or damaged record, means: built again once,
else the form is not offered.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

NATIVE = Path(__file__).resolve().parent / "native"
SOURCES = (NATIVE / "winograd_f4.cc", NATIVE / "gram.cc", NATIVE / "sort.cc")   # built into one library
HEADERS = (NATIVE / "share.h",)                              # what they include (in the library's digest)
TARGET = "nst_jax_winograd_f4"
TARGET_BF16 = "nst_jax_winograd_f4_bf16"
TARGET_GRAM = "nst_jax_gram"
TARGET_SORT, TARGET_UNSORT = "nst_jax_sort_columns", "nst_jax_unsort_columns"
UNITS = {"avx512-bf16": 1, "amx": 2}   # the kernel's codes of the bfloat16 units
# the kernel's bfloat16 methods: (code, the units they need); 'amx-split' splits each float32 number into two
# bfloat16 ones and takes three products, for nearly float32's accuracy
METHODS = {"avx512-bf16": (1, "avx512-bf16"), "amx": (2, "amx"), "amx-split": (3, "amx")}
FORM_METHODS = {"f4fb": "avx512-bf16", "f4fa": "amx", "f4fa3": "amx-split"}   # the planner's bfloat16 forms
ALL_PHASES = 7                          # input transform 1, products 2, output transform 4 (`bench.breakdown`)
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=fast", "-w")


def _arch_flags() -> tuple[str, ...]:
    """-march=native, or the architecture $NST_JAX_FUSED_ARCH names (e.g. x86-64-v3: AVX2 and FMA)."""
    return (f"-march={os.environ.get('NST_JAX_FUSED_ARCH', '').strip() or 'native'}",)


class Library(NamedTuple):
    path: Path
    panel: int    # output channels per packed panel (the micro-kernel's width)
    lanes: int    # input channels must be a multiple of this (the vector width)
    bf16: int = 0  # the bfloat16 units this build may use (`UNITS` codes, or-ed)
    trial_calls: int = 0  # calls of a new shape that try block sizes before the fastest is kept
    gram_channels: int = 0  # the Gram product takes channel counts that are a multiple of this


def turned_off() -> bool:
    return os.environ.get("NST_JAX_FUSED", "").strip().lower() in ("0", "off", "no", "false")


def _compiler() -> str | None:
    wanted = os.environ.get("CXX")
    for name in ([wanted] if wanted else ["g++", "c++", "clang++"]):
        found = shutil.which(name)
        if found:
            return found
    return None


def _build_path(cxx: str) -> Path:
    """The library's file in the cache: per machine (`identity.machine_key`) and per source, compiler
    (its version text) and flags."""
    from nst_jax.machine import identity
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    described = "\0".join((cxx, version, *FLAGS, *_arch_flags())).encode()
    code = b"".join(path.read_bytes() for path in SOURCES + HEADERS)
    digest = hashlib.sha256(code + described).hexdigest()[:16]
    machine = identity.machine_key(identity.machine(backend=False))
    return identity.cache_folder() / "native" / machine / f"winograd_f4-{digest}.so"


def _run_all(cxx: str, commands: list[list[str]], seconds: float = 600) -> str | None:
    """The compiler's commands run side by side, each in a process group of its own (so that a build
    given up ends the compiler's own processes too), within `seconds` in all; None, or why one failed."""
    import signal
    import time
    started, deadline = [], time.monotonic() + seconds
    try:
        for command in commands:
            started.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                            errors="replace", start_new_session=True))
        failed = [(p, p.communicate(timeout=max(1.0, deadline - time.monotonic()))[1]) for p in started]
    except (OSError, subprocess.SubprocessError) as err:
        return f"{Path(cxx).name} could not run ({type(err).__name__}: {err})"
    finally:
        for p in started:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.communicate()
    for p, stderr in failed:
        if p.returncode != 0:
            last = (stderr.strip().splitlines() or ["no message"])[-1]
            return f"{Path(cxx).name} failed ({last[:200]})"
    return None


def _build(cxx: str, target: Path) -> str | None:
    """Compile the kernel into `target` (each source beside it at once, then linked; written beside it,
    then renamed: a concurrent build or a killed one never leaves a partial file); None, or why it failed."""
    import jax.ffi
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot create {target.parent} ({err.strerror or err})"
    from nst_jax.files import fileio
    from nst_jax.base.errors import NSTError
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    objects = [partial.with_name(f"{partial.name}.{source.stem}.o") for source in SOURCES]
    flags = [*FLAGS, *_arch_flags()]
    try:
        why = _run_all(cxx, [[cxx, *flags, "-I", jax.ffi.include_dir(), "-c", str(source), "-o", str(obj)]
                             for source, obj in zip(SOURCES, objects)])
        why = why or _run_all(cxx, [[cxx, *flags, *map(str, objects), "-o", str(partial)]])
        if why:
            return why
        # the record first: a library is never in place without it
        fileio.write_json(_record_path(target), {"sha256": hashlib.sha256(partial.read_bytes()).hexdigest()})
        os.replace(partial, target)
        return None
    except OSError as err:
        return f"cannot put the built library at {target} ({err.strerror or err})"
    except NSTError as err:
        return str(err)
    finally:
        for path in (partial, *objects):
            path.unlink(missing_ok=True)


def _record_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256.json")


def _checked_load(path: Path) -> tuple[Library | None, str | None]:
    """The library loaded when `path` is a regular file whose SHA-256 is the one recorded when it was
    built, else why not. It is hashed and loaded through one open descriptor (/proc/self/fd on Linux),
    so a file put in its place in between is not the one loaded."""
    from nst_jax.files import untrusted
    from nst_jax.base.errors import NSTError
    try:
        record = untrusted.read_json(_record_path(path), "the kernel's digest record", limit=4096)
        wanted = record.get("sha256") if isinstance(record, dict) else None
        with untrusted.open_regular(path, "the kernel library") as f:
            data = f.read(untrusted.MAX_BYTES + 1)
            if not isinstance(wanted, str) or wanted != hashlib.sha256(data).hexdigest():
                return None, f"the kernel library {path} is not the one built here (not the SHA-256 it was built with)"
            held = f"/proc/self/fd/{f.fileno()}"
            return _load(path, held if os.path.exists(held) else str(path)), None
    except NSTError as err:
        return None, str(err)
    except (OSError, AttributeError) as err:   # unreadable or not ours
        return None, str(err)


_REGISTERED: list[Library] = []   # XLA takes one handler per name and process: the first library loaded


def _load(path: Path, opened: str) -> Library:
    """The library at `path`, loaded from `opened` (the same file)."""
    import jax
    lib = ctypes.CDLL(opened)
    found = Library(path, int(lib.nst_winograd_f4_panel()), int(lib.nst_winograd_f4_lanes()),
                    int(lib.nst_winograd_f4_bf16_units()), int(lib.nst_winograd_f4_trial_calls()),
                    int(lib.nst_gram_channels()))
    if not _REGISTERED:
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.NstWinogradF4), platform="cpu")
        jax.ffi.register_ffi_target(TARGET_BF16, jax.ffi.pycapsule(lib.NstWinogradF4Bf16), platform="cpu")
        jax.ffi.register_ffi_target(TARGET_GRAM, jax.ffi.pycapsule(lib.NstGram), platform="cpu")
        jax.ffi.register_ffi_target(TARGET_SORT, jax.ffi.pycapsule(lib.NstSortColumns), platform="cpu")
        jax.ffi.register_ffi_target(TARGET_UNSORT, jax.ffi.pycapsule(lib.NstUnsortColumns), platform="cpu")
        _REGISTERED.append(found)
    elif _REGISTERED[0][1:] != found[1:]:
        raise OSError(f"another build of the kernel ({_REGISTERED[0].path}) is in use in this process")
    return found


@functools.lru_cache(maxsize=1)
def _library() -> tuple[Library | None, str | None]:
    cxx = _compiler()
    if cxx is None:
        return None, "no C++ compiler found (set CXX, or install g++)"
    path = _build_path(cxx)
    for attempt in range(2):
        if not os.path.lexists(path) or attempt:
            why = _build(cxx, path)
            if why:
                return None, why
        lib, last = _checked_load(path)     # damaged, replaced or unrecorded: built again once
        if lib is not None:
            return lib, None
    return None, f"the built library does not load ({last})"


def _state() -> tuple[Library | None, str | None]:
    """The loaded kernel and why not (`_library`), unless turned off."""
    return (None, "NST_JAX_FUSED=off") if turned_off() else _library()


def why_unavailable() -> str | None:
    """None when the fused kernel is ready on this machine (built now if need be), else why not."""
    return _state()[1]


def library() -> Library:
    """The loaded kernel; NSTError when it cannot be had here."""
    from nst_jax.base.errors import NSTError
    lib, why = _state()
    if lib is None:
        raise NSTError(f"the fused Winograd F(4×4, 3×3) kernel is not available here: {why}")
    return lib


def fits(cin: int, cout: int) -> bool:
    """Whether the kernel takes these channel counts (false when it is unavailable)."""
    lib = _state()[0]
    return lib is not None and cin % lib.lanes == 0 and cout % lib.panel == 0


def bf16_units() -> tuple[str, ...]:
    """The bfloat16 units the kernel may use here ('amx', 'avx512-bf16'); none when it is unavailable."""
    lib = _state()[0]
    return tuple(name for name, code in UNITS.items() if lib is not None and lib.bf16 & code)


def form_units(form: str) -> str | None:
    """The bfloat16 units a fused form needs ('amx', 'avx512-bf16'); None for the float32 one."""
    method = FORM_METHODS.get(form)
    return METHODS[method][1] if method else None


def fits_bf16(cin: int, cout: int, units: str) -> bool:
    """Whether the kernel's bfloat16 products on `units` take these channel counts here."""
    return units in bf16_units() and fits(cin, cout) and cin % 32 == 0


def pack(u):
    """F(4×4)'s transformed kernel U (36, C, O) in the kernel's panels: (36, O / panel, C, panel)."""
    panel = library().panel
    return u.reshape(u.shape[0], u.shape[1], -1, panel).transpose(0, 2, 1, 3)


def pack_bf16(u, split: bool = False):
    """U (36, C, O) for the bfloat16 products: rounded to bfloat16, in panels, with pairs of input
    channels side by side (36, O / panel, C / 2, panel, 2); `split`: beside it the bfloat16 of what the
    rounding lost, (36, O / panel, 2, C / 2, panel, 2)."""
    import jax.numpy as jnp
    panel = library().panel
    p, c, o = u.shape

    def packed(a):
        return a.reshape(p, c // 2, 2, o // panel, panel).transpose(0, 3, 1, 4, 2).astype(jnp.bfloat16)
    high = packed(u)
    if not split:
        return high
    return jnp.stack([high, packed(u - u.astype(jnp.bfloat16).astype(jnp.float32))], axis=2)


def conv(x, packed, phases: int = ALL_PHASES, tiles: int = 0):
    """The 3×3 'same' convolution of x (…, H, W, C) with a packed kernel (`pack`); vmaps over x.
    `tiles`: 4×4 output tiles per block: 0 measured by the kernel per shape on its first calls, < 0 its
    fixed rule, > 0 about that many (rounded to the kernel's step, at most a share that leaves each thread
    two blocks); it changes the speed, never a value."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    library()
    out = jax.ShapeDtypeStruct(x.shape[:-1] + (packed.shape[1] * packed.shape[-1],), jnp.float32)
    return jax.ffi.ffi_call(TARGET, out, vmap_method="expand_dims")(x, packed, phases=np.int32(phases),
                                                                     tiles=np.int32(tiles))


def conv_bf16(x, packed, method: str, phases: int = ALL_PHASES, tiles: int = 0):
    """The same with bfloat16 products by `method` (`METHODS`), U packed by `pack_bf16` (split for
    'amx-split')."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    library()
    out = jax.ShapeDtypeStruct(x.shape[:-1] + (packed.shape[1] * packed.shape[-2],), jnp.float32)
    return jax.ffi.ffi_call(TARGET_BF16, out, vmap_method="expand_dims")(
        x, packed, method=np.int32(METHODS[method][0]), phases=np.int32(phases), tiles=np.int32(tiles))


def gram_fits(channels: int) -> bool:
    """Whether the library's Gram product (`gram`) takes features of this many channels here."""
    lib = _state()[0]
    return lib is not None and lib.gram_channels > 0 and channels % lib.gram_channels == 0


def gram(f):
    """FᵀF (…, C, C) of float32 features f (…, M, C), by the library's Gram product (`native/gram.cc`:
    the blocks on and above the diagonal, mirrored); vmaps over f."""
    import jax
    import jax.numpy as jnp
    library()
    out = jax.ShapeDtypeStruct(f.shape[:-2] + (f.shape[-1], f.shape[-1]), jnp.float32)
    return jax.ffi.ffi_call(TARGET_GRAM, out, vmap_method="expand_dims")(f)


def sort_columns(x):
    """(sorted, order) of float32 x (…, M, K) along M by the library's stable radix sort: the bits of
    `jnp.sort(x, axis=-2)` and `jnp.argsort(x, axis=-2)` (int32); vmaps over x."""
    import jax
    import jax.numpy as jnp
    library()
    out = (jax.ShapeDtypeStruct(x.shape, jnp.float32), jax.ShapeDtypeStruct(x.shape, jnp.int32))
    return jax.ffi.ffi_call(TARGET_SORT, out, vmap_method="expand_dims")(x)


def unsort_columns(v, order, plus_zero: bool = False):
    """v (…, M, K) put back where `sort_columns` took each row from: out[…, order[…, i, k], k] = v[…, i, k];
    `plus_zero`: v + 0 (-0 becomes +0), as the gradient of XLA's sort gives it. `order` must be a
    permutation of each column, as `sort_columns` gives it (entries it misses are left unwritten); an
    entry outside 0..M-1 is an error."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    library()
    out = jax.ShapeDtypeStruct(v.shape, jnp.float32)
    return jax.ffi.ffi_call(TARGET_UNSORT, out, vmap_method="broadcast_all")(v, order, plus_zero=np.int32(plus_zero))
