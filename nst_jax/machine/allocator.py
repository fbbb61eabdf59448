"""The C allocator of nst_jax's commands: one arena for every thread, and freed memory kept in the process
where the run has room for it.

XLA-CPU takes each call's intermediate values as one large allocation and frees it when the call
returns. glibc gives such blocks a mapping of their own (threads other than the main one always do:
their arenas hold at most 64 MB), so every step faults the block's pages in anew, one per 4 KiB
(measured in docs/benchmarks.md, "Freed memory kept"). With one arena, no separate mappings and a high
trim threshold the block is reused from the heap. Results do not change, but the heap's freed holes stay
resident, so the peak grows: freed memory is kept only where the run's planned need fits `ROOM` times
into what is available. One arena alone changes neither.

Commands set one arena first (`one_arena`), before XLA's threads allocate; `nst-jax run` then keeps
freed memory where its plan has room (`keep_freed_memory`). Code that imports nst_jax, and runs in Ray's
worker processes, keep their own allocator settings. `NST_JAX_KEEP_MEMORY=off` leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import sys

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
TRIM_THRESHOLD = 2**31 - 1   # mallopt takes an int: the most freed memory at the heap's top kept in the process
ROOM = 2.0                   # kept only where the planned need fits this many times into what is available


def wanted() -> bool:
    """Whether the settings apply here: glibc on Linux, and not turned off (`NST_JAX_KEEP_MEMORY=off`)."""
    if os.environ.get("NST_JAX_KEEP_MEMORY", "").strip().lower() in ("0", "off", "no", "false"):
        return False
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _mallopt(settings) -> bool:
    """glibc's mallopt for each (parameter, value); True when it took them all."""
    if not wanted():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all([mallopt(param, value) == 1 for param, value in settings])


def one_arena() -> bool:
    """Have glibc serve every thread from one arena (threads that allocated before keep theirs)."""
    return _mallopt(((M_ARENA_MAX, 1),))


def keep_freed_memory(needed: float = 0.0, available: float = math.inf) -> bool:
    """One arena, no separate mappings, and what is freed kept (up to `TRIM_THRESHOLD` at the heap's top),
    where `needed` bytes fit `ROOM` times into `available`; True when glibc took the settings."""
    if needed * ROOM > available:
        return False
    return _mallopt(((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
