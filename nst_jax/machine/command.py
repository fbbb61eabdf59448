"""What nst_jax's commands set in their own process before anything runs; code that imports nst_jax keeps
its own settings."""

from __future__ import annotations

from nst_jax.machine import allocator, compiler


def prepare() -> None:
    """One allocator arena for every thread (`allocator.one_arena`: first, before XLA's threads
    allocate), and compiled programs kept across runs (`compiler.keep_compiled_programs`: before
    anything compiles)."""
    allocator.one_arena()
    compiler.keep_compiled_programs()
