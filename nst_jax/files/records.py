"""The files nst_jax reads back — sidecars, checkpoint metadata, loss logs, sweep manifests — are
untrusted input: each record is checked against its schema here before anything uses it, and a
mismatch is one `NSTError` line naming the file and the field (never a traceback, never a value from a
file in a path or a page unchecked).

Each schema maps a field to a check: `COUNT` (an integer ≥ 0), `NUMBER` (finite), `SECONDS` (finite,
≥ 0), `FLAG`, `TEXT`, `HASH` (the settings hash: 16 hexadecimal digits), `PARTS` (the loss parts by
name), `TABLE` (an object), `RULE` (a stopping rule), `RELATIVE` (an object of run names → relative paths inside the folder).
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import Any, Callable

from nst_jax.base.errors import NSTError

SETTINGS_HASH = re.compile(r"[0-9a-f]{16}")   # `identity.settings_hash`


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _relative(v) -> bool:
    if not isinstance(v, dict):
        return False
    for name, path in v.items():
        if not isinstance(path, str) or not path:
            return False
        p = PurePosixPath(path)
        if p.is_absolute() or ".." in p.parts or "\\" in path:
            return False
    return True


CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "COUNT": (lambda v: _is_int(v) and v >= 0, "an integer ≥ 0"),
    "NUMBER": (_is_number, "a finite number"),
    "SECONDS": (lambda v: _is_number(v) and v >= 0, "a finite number ≥ 0"),
    "FLAG": (lambda v: isinstance(v, bool), "true or false"),
    "TEXT": (lambda v: isinstance(v, str), "a string"),
    "HASH": (lambda v: isinstance(v, str) and SETTINGS_HASH.fullmatch(v) is not None, "16 hexadecimal digits"),
    "PARTS": (lambda v: isinstance(v, dict) and all(k in v and _is_number(v[k]) for k in ("content", "style", "tv")),
              "an object with the numbers content, style and tv"),
    "TABLE": (lambda v: isinstance(v, dict), "an object"),
    "NAMES": (lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(s, str) for s in v),
              "a non-empty list of strings"),
    "RULE": (lambda v: isinstance(v, dict) and _is_number(v.get("tol")) and v["tol"] > 0 and _is_int(v.get("window"))
             and v["window"] >= 1, "an object with a tol > 0 and a window ≥ 1"),
    "RELATIVE": (_relative, "an object of names and relative paths inside the folder"),
    "FORMS": (lambda v: isinstance(v, list) and all(isinstance(r, list) and len(r) == 3 and isinstance(r[0], str)
                                                   and isinstance(r[1], str) and isinstance(r[2], str)
                                                   for r in v), "a list of [layer, forward form, gradient form]"),
    "GRID": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, list) and x for k, x in v.items()),
             "an object of field names and non-empty lists"),
}

SIDECAR = {"settings_hash": "HASH", "iteration": "COUNT", "loss": "NUMBER", "parts": "PARTS", "seconds": "SECONDS",
           "config": "TABLE"}
SIDECAR_OPTIONAL = {"evaluations": "COUNT", "interrupted": "FLAG", "converged": "RULE", "image_iteration": "COUNT",
                    "weighted_parts": "PARTS"}
CHECKPOINT = {"config_hash": "HASH", "solver": "TEXT", "iteration": "COUNT", "offset": "COUNT", "target": "COUNT",
              "seconds": "SECONDS", "light": "FLAG"}
CHECKPOINT_OPTIONAL = {"conv_forms": "FORMS",   # the convolution forms of the run (`convforms`)
                       "native_gram": "FLAG",   # with them, the Gram's product by the native library
                       "best_iteration": "COUNT"}   # where its `best_x`, the lowest-loss image so far, is from
MANIFEST = {"grid": "GRID", "base": "TABLE", "iterations": "COUNT", "runs": "RELATIVE"}
LOG_RECORD = {"iteration": "COUNT", "loss": "NUMBER"}
LOG_OPTIONAL = {"content": "NUMBER", "style": "NUMBER", "tv": "NUMBER", "seconds": "SECONDS"}


RESTART = "the file was edited or is corrupt: delete it or pass --restart"


def check(record: Any, schema: dict[str, str], what: str, optional: dict[str, str] | None = None,
          remedy: str = RESTART) -> dict:
    """`record` if it is an object with every field of `schema` (and any of `optional` present) of the
    right kind; NSTError naming `what`, the field and `remedy` otherwise."""
    if not isinstance(record, dict):
        raise NSTError(f"{what}: expected a JSON object, got {type(record).__name__}; {remedy}")
    for fields, required in ((schema, True), (optional or {}, False)):
        for name, kind in fields.items():
            if name not in record:
                if required:
                    raise NSTError(f"{what}: the field {name!r} is missing; {remedy}")
                continue
            ok, words = CHECKS[kind]
            if not ok(record[name]):
                raise NSTError(f"{what}: the field {name!r} must be {words}, got {str(record[name])[:60]!r}; {remedy}")
    return record


def sidecar(record: Any, path) -> dict:
    return check(record, SIDECAR, f"sidecar {path}", SIDECAR_OPTIONAL)


def checkpoint_meta(record: Any, path) -> dict:
    record = check(record, CHECKPOINT, f"checkpoint {path}", CHECKPOINT_OPTIONAL)
    if record["offset"] > record["iteration"]:
        raise NSTError(f"checkpoint {path}: the field 'offset' ({record['offset']}) is past its 'iteration' "
                       f"({record['iteration']}); {RESTART}")
    return record


def known_forms(forms: list, known: tuple[str, ...], path) -> list:
    """A checkpoint's `conv_forms` (checked as FORMS) if every form it names is one of `known`."""
    if all(r[1] in known and r[2] in known for r in forms):
        return forms
    raise NSTError(f"checkpoint {path}: the field 'conv_forms' must be a list of [layer, forward form, gradient "
                   f"form] with forms among {', '.join(known)}, got {str(forms)[:60]!r}; {RESTART}")


def manifest(record: Any, path) -> dict:
    return check(record, MANIFEST, f"sweep manifest {path}", remedy="rerun the sweep to rewrite it")


def log_record(record: Any, path, line: int) -> dict:
    return check(record, LOG_RECORD, f"loss log {path}, line {line}", LOG_OPTIONAL)
