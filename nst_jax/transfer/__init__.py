"""One run, in named steps: what was asked (`config.Config`, pure data), what was planned (`planning.RunPlan`,
one record built once), where it starts (`start`), the one loop that drives it (`loop.drive`, with its
hooks as one record), and how it ends (`finish`). `runs` puts the steps together.

The public face, for code that imports nst_jax: `from nst_jax.transfer import Config, run`
(`run`, `run_many` and `run_multiscale` are `runs`'s; importing this package alone loads no JAX, so the
command line's `--help` stays quick).
"""

from __future__ import annotations

PUBLIC = {"Config": "nst_jax.transfer.config", "with_preset": "nst_jax.transfer.config",
          "run": "nst_jax.transfer.runs", "run_many": "nst_jax.transfer.runs",
          "run_multiscale": "nst_jax.transfer.runs", "RunResult": "nst_jax.transfer.finish"}


def __getattr__(name: str):
    if name in PUBLIC:
        import importlib
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'nst_jax.transfer' has no attribute {name!r}")
