"""What the processor offers for bfloat16, read from /proc/cpuinfo (Linux; elsewhere: nothing known).

`amx_bf16` (Intel AMX tiles, Sapphire Rapids and later) and `avx512_bf16` (AVX-512 BF16 dot products,
Cooper Lake, Zen 4 and later) are the instruction sets XLA-CPU's bfloat16 matrix products can use.
"""

from __future__ import annotations

from pathlib import Path

BF16_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The flags of the first processor listed in `cpuinfo` (default: /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def bfloat16_flags(cpuinfo: str | None = None) -> set[str]:
    """The bfloat16 instruction sets among the CPU's flags."""
    return cpu_flags(cpuinfo) & set(BF16_FLAGS)
