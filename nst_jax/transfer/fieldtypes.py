"""A value as a Config field of a given kind holds it: lists become tuples, integers floats where
floats are meant, and a value of the wrong type one `NSTError` naming the field (and where it came
from, e.g. a grid file)."""

from __future__ import annotations

from typing import Any

from nst_jax.base.errors import NSTError

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
