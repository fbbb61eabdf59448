"""What the processor offers for bfloat16, read from /proc/cpuinfo (Linux; elsewhere: nothing known).

`amx_bf16` (Intel AMX tiles, Sapphire Rapids and later) and `avx512_bf16` (AVX-512 BF16 dot products,
Cooper Lake, Zen 4 and later) are the instruction sets XLA-CPU's bfloat16 matrix products can use.
`--precision auto` (the default) takes bfloat16 only where it has been measured faster with the
quality kept (`MEASURED`), float32 elsewhere, and the run's header says which and why.
"""

from __future__ import annotations

import functools
from pathlib import Path

BF16_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> str:
    """/proc/cpuinfo, read once per process (every run's settings hash asks what --precision auto is)."""
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The flags of the first processor listed in `cpuinfo` (default: /proc/cpuinfo)."""
    if cpuinfo is None:
        cpuinfo = _proc_cpuinfo()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def describe_cpu(cpuinfo: str | None = None) -> str:
    """'AMD EPYC, 2 cores, AVX-512 (avx512_bf16)' — the model name, the cores this process may use and its
    widest vector units, for the machine line of every benchmark table."""
    import os
    cpuinfo = _proc_cpuinfo() if cpuinfo is None else cpuinfo
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 "unknown CPU")
    flags = cpu_flags(cpuinfo)
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    extra = sorted(flags & (set(BF16_FLAGS) | {"avx_vnni"}))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, {vector}" + (f" ({', '.join(extra)})" if extra else "")


def bfloat16_flags(cpuinfo: str | None = None) -> set[str]:
    """The bfloat16 instruction sets among the CPU's flags."""
    return cpu_flags(cpuinfo) & set(BF16_FLAGS)


# bfloat16 against float32 where it has been measured (`python -m bench.precision`, value+grad of the
# default objective): (platform, bfloat16 unit) -> (bfloat16 is faster with the quality kept, where measured)
MEASURED: dict[tuple[str, str | None], tuple[bool, str]] = {
    ("cpu", "avx512_bf16"): (False, "bfloat16 measured slower (0.80–0.87× of float32) on an AVX512-BF16 CPU "
                                    "without AMX: bench/results/precision-cpu-2026-11-29.md"),
}


# The quality guard of the convolution forms with bfloat16 products (`python -m bench.bf16_guard`): per
# bfloat16 unit, the forms with which every pair and size ended within BF16_FORMS_TOLERANCE of the float32
# forms' objective after 300 iterations, and where it was measured. Only those does `--conv-forms auto` take.
BF16_FORMS_TOLERANCE = 0.005
BF16_FORMS_GUARD: dict[str, tuple[tuple[str, ...], str]] = {
    "amx_bf16": (("f4fa3",), "the split bfloat16 products on AMX ('f4fa3') ended within 0.20 % of the float32 "
                             "forms' loss on three pairs at 256 and 512 px: bench/results/bf16-guard-xeon-amx-2026-12-06.md"),
}


def bf16_forms_by_default(flags: set[str] | None = None) -> tuple[tuple[str, ...], str]:
    """(the bfloat16 forms `--conv-forms auto` takes on this CPU, why)."""
    unit = bfloat16_unit(bfloat16_flags() if flags is None else flags)
    if unit is None:
        return (), "this CPU has no bfloat16 units"
    return BF16_FORMS_GUARD.get(unit, ((), f"the bfloat16 forms' quality guard not measured on {unit} yet"))


def bfloat16_unit(flags: set[str]) -> str | None:
    """The CPU's best bfloat16 unit: AMX tiles, else AVX512-BF16, else none."""
    return "amx_bf16" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else None


def choose_precision(platform: str, flags: set[str] | None = None) -> tuple[str, str]:
    """(precision, why) for `--precision auto`: bfloat16 only where it has been measured faster with the
    quality kept; float32 everywhere else, saying why."""
    unit = bfloat16_unit(bfloat16_flags() if flags is None else flags) if platform == "cpu" else None
    if platform == "cpu" and unit is None:
        return "float32", "this CPU has no bfloat16 units"
    faster, source = MEASURED.get((platform, unit), (None, ""))
    if faster is None:
        where = f"{platform} with {unit}" if unit else platform
        return "float32", (f"bfloat16 not measured on {where} yet: try --precision bfloat16 and compare the "
                           "s/it and loss it prints with this run's")
    return ("bfloat16" if faster else "float32"), source


def resolve_precision(precision: str, platform: str | None = None) -> str:
    """'auto' resolved for this machine's default device; float32 and bfloat16 as they are."""
    if precision != "auto":
        return precision
    if platform is None:
        import jax
        platform = jax.default_backend()
    return choose_precision(platform)[0]
