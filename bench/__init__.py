"""Benchmarks and the PyTorch reference implementation (not part of the installed package)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, text: str, folder: str | Path | None = None) -> Path:
    """Print a bench's Markdown table and write it as `<folder>/<name>-<date>.md` (default folder:
    bench/results), the one place the benches name their result files."""
    print(text)
    path = Path(folder or RESULTS) / f"{name}-{_dt.date.today().isoformat()}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
