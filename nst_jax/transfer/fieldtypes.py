"""Config fields by kind: how one is declared (`option`, its metadata), how a comma list is split, and
a value as a field of a given kind holds it: lists become tuples, integers floats where floats are
meant, and a value of the wrong type one `NSTError` naming the field (and where it came from, e.g. a
grid file)."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Callable

from nst_jax.base.errors import NSTError

def split_list(text: str) -> list[str]:
    return [v.strip() for v in str(text).split(",") if v.strip()]


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(split_list(text))


def option(default, help: str, *, kind: str, result: bool = True, flag: str | None = None,
           short: str | None = None, choices: Callable[[], tuple] | None = None, metavar: str | None = None,
           positional: bool = False, from_preset: bool = False, default_text: str | None = None):
    """A Config field with the metadata that generates its command-line option and its checks.

    kind: 'int', 'float', 'str', 'path', 'names' (comma list), 'floats', 'ints' (comma lists) or
    'paths' (several arguments); result: the field changes the optimisation's path (hashed);
    from_preset: the default comes from --preset."""
    meta = dict(help=help, kind=kind, result=result, flag=flag, short=short, choices=choices,
                metavar=metavar, positional=positional, from_preset=from_preset, default_text=default_text)
    return field(default=default, metadata=meta)


_KIND_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
               "path": "a file path (a string)", "names": "a list of names", "floats": "a list of numbers",
               "ints": "a list of integers", "paths": "a list of file paths"}


def coerce_value(name: str, kind: str, value: Any, where: str = "", parse_names=None) -> Any:
    """`value` as a field `name` of `kind` holds it; NSTError when its type is wrong."""
    wrong = NSTError(f"{where}{name} must be {_KIND_WORDS[kind]}, got {value!r}")
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong
        return value
    scalar = {"int": int, "float": float, "str": str, "path": str}.get(kind)
    if scalar is not None:
        if isinstance(value, bool) or (scalar is int and not isinstance(value, int)) or \
                (scalar is float and not isinstance(value, (int, float))) or \
                (scalar is str and not isinstance(value, str)):
            raise wrong
        return scalar(value)
    if isinstance(value, str) and kind in ("names", "paths"):
        value = parse_names(value) if kind == "names" else (value,)
    if not isinstance(value, (list, tuple)):
        raise wrong
    item = {"names": str, "paths": str, "floats": float, "ints": int}[kind]
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float) if item is float else item):
            raise wrong
    return tuple(item(v) for v in value)
