"""Tables and numbers of the write-up: spreads over image pairs, Markdown and CSV tables (written
atomically), and the 'not run yet' line of a section."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Callable

import numpy as np

from nst_jax.files import untrusted
from nst_jax.files.fileio import write_text

COLUMNS_AT = (1, 10, 100, 1000, 5000)


def spread(values) -> str:
    """'median [min – max]' of finite values, or '—'."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "—"
    if len(v) == 1:
        return num(v[0])
    return f"{num(float(np.median(v)))} [{num(min(v))} – {num(max(v))}]"


def num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-2:
        return f"{x:.2e}"
    if abs(x) >= 1e3:   # iteration counts and the like, whole
        return f"{x:.0f}"
    return f"{x:.3g}"


def largest_passing(fractions, passes: Callable[[float], bool]) -> float | None:
    """The largest of `fractions` such that it and every smaller one pass; None when the smallest fails."""
    most = None
    for f in sorted(fractions):
        if not passes(f):
            break
        most = f
    return most


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def not_run(head: str, command: str, experiment: str) -> str:
    return f"{head.rstrip()}\n\nNot run yet: `{command} --only {experiment}`.\n"


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO(newline="")
    w = csv.DictWriter(buffer, keys)
    w.writeheader()
    w.writerows(rows)
    write_text(path, buffer.getvalue())


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                     ["| " + " | ".join(r) + " |" for r in rows])


def read_json(path: Path):
    return untrusted.read_json(path, "study record") if path.exists() else None


def iterations(scale, cap: int) -> str:
    """How long a study's runs ran: to convergence by the scale's rule (at most `cap`), or `cap` iterations."""
    if scale.tol:
        return f"L-BFGS to convergence (`--tol {scale.tol:g} --tol-window {scale.tol_window}`, at most {cap} iterations)"
    return f"{cap} L-BFGS iterations"
