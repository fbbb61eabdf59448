"""This machine's identity and nst_jax's cache folder: what a measurement, a build or a compiled program
depends on (the CPU, its flags, the JAX versions, the backend), hashed into the name of the folder it is
kept in, so nothing measured or built on another machine is used here.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def machine(backend: bool = True) -> dict[str, str]:
    """What a measured choice depends on: the CPU, its flags, the JAX versions and the backend
    (`backend=False`: without it, so that JAX's backend is not started, as before `jax.distributed` or a fork)."""
    import jax
    import jaxlib
    from nst_jax.machine import hardware
    flags = sorted(f for f in hardware.cpu_flags() if f.startswith(("avx", "fma", "amx", "sse")))
    info = {"cpu": hardware.describe_cpu(), "flags": " ".join(flags), "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "xla_flags": os.environ.get("XLA_FLAGS", "")}
    return {**info, "backend": jax.default_backend()} if backend else info


def machine_key(info: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


def cache_folder() -> Path:
    """$NST_JAX_CACHE, else $XDG_CACHE_HOME/nst_jax, else ~/.cache/nst_jax."""
    return Path(os.environ.get("NST_JAX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "nst_jax"))
