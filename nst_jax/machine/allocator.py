"""The C allocator of nst_jax's commands: freed memory stays in the process.

XLA-CPU takes each call's intermediate values as one large allocation and frees it when the call
returns. glibc gives such blocks a mapping of their own (threads other than the main one always do:
their arenas hold at most 64 MB), so every step faults the block's pages in anew, one per 4 KiB
(measured in docs/benchmarks.md, "Freed memory kept"). With one arena, no separate mappings and a high
trim threshold the block is reused from the heap. Results do not change; the process gives less memory
back until it ends (holes in the heap stay resident), so long-lived servers keep glibc's defaults.

Commands set this before anything runs (`keep_freed_memory`), as they keep compiled programs; code that
imports nst_jax, and runs in Ray's worker processes, keep their own allocator settings.
`NST_JAX_KEEP_MEMORY=off` leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
TRIM_THRESHOLD = 2**31 - 1   # mallopt takes an int: the most freed memory at the heap's top kept in the process


def wanted() -> bool:
    """Whether a command should keep freed memory here: glibc on Linux, and not turned off."""
    if os.environ.get("NST_JAX_KEEP_MEMORY", "").strip().lower() in ("0", "off", "no", "false"):
        return False
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Have glibc serve every thread from one heap, without separate mappings, and keep what is freed
    (up to `TRIM_THRESHOLD` at the top); True when it took all three settings. Threads that allocated
    before this keep the arena they have, so commands call it first."""
    if not wanted():
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all([mallopt(param, value) == 1 for param, value in settings])
