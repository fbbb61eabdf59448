"""Grids of runs: loading a grid file, expanding it to Configs, and naming each run readably.

A grid (TOML or JSON object) maps Config fields to lists of values; its points are the Cartesian
product. Each point's run folder is named from the axes that vary (`init-noise_k-100`). Both the
sweep (which runs the points) and the report (which shows them) use this module, so a name is made
in one place.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from nst_jax.transfer.config import FIELDS, INITS, Config, coerce, with_preset
from nst_jax.files import untrusted
from nst_jax.base.errors import NSTError

# Dissecting Neural Style Transfer's hyper-parameter experiment: 7 initial images × 3 style weights
DEFAULT_GRID: dict[str, list] = {"init": list(INITS), "style_weight": [10.0, 100.0, 1000.0]}
SHORT = {"style_weight": "k", "content_weight": "cw", "tv_weight": "tv", "style_statistic": "stat",
         "content_layers": "cl", "style_layers": "sl", "optimizer": "opt"}
NOT_GRID_FIELDS = ("output", "iterations")
RESULT = "result.png"
MAX_POINTS = 10_000   # runs in one sweep: beyond this, a grid is refused before it is expanded


def check_size(grid: dict, where: str = "") -> None:
    """NSTError if the grid has more than MAX_POINTS points (checked before the product is formed)."""
    count = math.prod(len(v) if isinstance(v, list) else 1 for v in grid.values())
    if count > MAX_POINTS:
        raise NSTError(f"{where}{count:,} grid points (the product of its lists' lengths); a sweep takes at most "
                       f"{MAX_POINTS:,}: split it into several grids")


def load_grid(path: str | None) -> dict[str, list]:
    """The grid from a .toml or .json file (or the default), every value checked against its field's
    type; NSTError naming the file and the field otherwise."""
    if path is None:
        return {k: list(v) for k, v in DEFAULT_GRID.items()}
    p = Path(path)
    if not p.exists():
        raise NSTError(f"grid {p}: not found")
    grid = (untrusted.read_toml if p.suffix == ".toml" else untrusted.read_json)(p, "grid")
    if not isinstance(grid, dict):
        raise NSTError(f"grid {p}: must be an object of field = [values], got a {type(grid).__name__}")
    fields = sorted(set(FIELDS) - set(NOT_GRID_FIELDS))
    check_size(grid, f"grid {p}: ")
    for key, values in grid.items():
        if key not in fields:
            raise NSTError(f"grid {p}: unknown field {key!r}; valid fields: {', '.join(fields)}")
        if not isinstance(values, list) or not values:
            raise NSTError(f"grid {p}: {key} must be a non-empty list")
        for v in values:
            coerce(key, v, where=f"grid {p}: ")
    return grid


def _show(value: Any, file_part, sep: str) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return sep.join(_show(v, file_part, sep) for v in value)
    return file_part(Path(str(value))) if "/" in str(value) else str(value)


def token(value: Any) -> str:
    """A value as it appears in a run name: numbers short, files by their stem, lists joined by +."""
    return _show(value, lambda p: p.stem, "+")


def label(value: Any) -> str:
    """A value as the report shows it: numbers short, files by their name, lists comma-separated."""
    return _show(value, lambda p: p.name, ",")


def run_name(point: dict[str, Any], grid: dict[str, list] | None = None) -> str:
    """A readable folder name for a grid point from the axes that vary, e.g. `init-noise_k-100`."""
    varying = [k for k in point if grid is None or len(grid[k]) > 1]
    name = "_".join(f"{SHORT.get(k, k)}-{token(point[k])}" for k in varying)
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "-" for ch in name) or "run"


def points(grid: dict[str, list]) -> list[tuple[str, dict[str, Any]]]:
    """(run name, point) for every point of the grid, in product order; NSTError if two names collide."""
    check_size(grid)
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = {k: tuple(v) if isinstance(v, list) else v for k, v in zip(keys, values)}
        out.append((run_name(point, grid), point))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise NSTError("two grid points map to the same run name; make the grid values distinct")
    return out


def expand(grid: dict[str, list], base: dict[str, Any], out: Path) -> list[tuple[str, Config]]:
    """One validated Config per grid point, with its output in out/<name>/result.png."""
    runs = []
    for name, point in points(grid):
        fields = {**base, **point, "output": str(out / name / RESULT)}
        preset = fields.pop("preset", "default")
        try:
            runs.append((name, with_preset(preset, **fields)))
        except NSTError as err:
            raise NSTError(f"grid point {name}: {err}") from None
    return runs
