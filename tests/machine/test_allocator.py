"""The commands' C allocator settings: a large block freed by a thread is reused from the heap, not
mapped and faulted in again, where the run has room for it; switchable off; one arena set first by the
commands."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from nst_jax.machine import allocator

# A thread allocates, writes and frees 64 MB five times (as XLA's threads do a step's intermediate values)
# and prints the page faults of the last four rounds.
ROUNDS = """
import ctypes, resource, sys, threading
from nst_jax.machine import allocator
print(allocator.keep_freed_memory())
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
SIZE = 64 << 20
faults = []
def rounds():
    for _ in range(5):
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        p = libc.malloc(SIZE)
        ctypes.memset(p, 1, SIZE)
        libc.free(p)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
thread = threading.Thread(target=rounds)
thread.start()
thread.join()
print(faults[-1] - faults[1])
"""
PAGES = (64 << 20) // 4096
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
HUGE_ALWAYS = THP.exists() and "[always]" in THP.read_text()   # 2 MB pages: far fewer faults either way


def _rounds(keep: str) -> tuple[str, int]:
    env = {**os.environ, "NST_JAX_KEEP_MEMORY": keep}
    done = subprocess.run([sys.executable, "-c", ROUNDS], env=env, capture_output=True, text=True, timeout=120)
    kept, faults = done.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's, on Linux")
def test_a_freed_block_is_reused_without_faulting_its_pages_in_again():
    kept, faults = _rounds("on")
    assert kept == "True" and faults < PAGES // 4
    kept, faults = _rounds("off")                     # glibc's defaults: mapped afresh each round
    assert kept == "False" and faults > (16 if HUGE_ALWAYS else 3 * PAGES)


def test_off_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv("NST_JAX_KEEP_MEMORY", "off")
    assert not allocator.wanted() and allocator.keep_freed_memory() is False


def test_freed_memory_is_kept_only_where_the_run_has_room_for_it():
    assert allocator.keep_freed_memory(needed=10e9, available=10e9 * allocator.ROOM - 1) is False


def test_a_command_sets_one_arena_before_it_keeps_compiled_programs(monkeypatch):
    from nst_jax.machine import command
    calls = []
    monkeypatch.setattr(allocator, "one_arena", lambda: calls.append("allocator"))
    monkeypatch.setattr(command.compiler, "keep_compiled_programs", lambda: calls.append("compiler"))
    command.prepare()
    assert calls == ["allocator", "compiler"]
