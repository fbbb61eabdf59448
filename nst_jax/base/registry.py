"""A name → entry registry filled by the modules of a package: adding an entry is adding one module.

`nst_jax.objective.statistics` and `nst_jax.solvers` each keep one: every module of the package registers its
entries when imported, and the package imports them all (its preferred first entry first, then the
rest in name order), so the registry knows every module without a list to keep in step.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Generic, Iterable, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in registration order; `what` names the kind in error messages."""

    def __init__(self, what: str):
        self.what = what
        self.entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self.entries:
            raise ValueError(f"{self.what} {name!r} registered twice")
        self.entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry called `name`; ValueError listing the valid names otherwise."""
        try:
            return self.entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r}; choose one of {', '.join(self.entries)}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)


def import_modules(package: str, path: Iterable[str], first: str) -> None:
    """Import every public module of `package` (its `__path__`), `first` before the others."""
    from nst_jax.base.catalogue import module_order
    for module in module_order(Path(next(iter(path))), first):
        importlib.import_module(f"{package}.{module}")
