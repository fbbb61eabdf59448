"""Plots of what runs wrote (never numerical work): loss curves from `.losses.jsonl` logs.

    python -m nst_jax.report plot RUN.losses.jsonl [MORE.losses.jsonl …] -o curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nst_jax.errors import NSTError


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL loss log; NSTError if unreadable."""
    path = Path(path)
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as err:
        raise NSTError(f"loss log {path}: unreadable ({err})") from None


def plot_losses(logs: dict[str, list[dict]], out: str | Path, title: str = "") -> None:
    """Log-scale curves of the total, content and weighted style losses per iteration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, records in logs.items():
        its = [r["iteration"] for r in records]
        for ax, key in zip(axes, ("loss", "content", "style")):
            ax.plot(its, [max(r[key], 1e-30) for r in records], label=name, lw=1.2)
    for ax, key in zip(axes, ("total loss", "content loss", "style loss (unweighted)")):
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(key, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    if len(logs) > 1:
        axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nst_jax.report", description="Plots from run logs.")
    sub = p.add_subparsers(dest="what", required=True)
    pp = sub.add_parser("plot", help="loss curves of one or more runs")
    pp.add_argument("logs", nargs="+")
    pp.add_argument("-o", "--output", required=True)
    pp.add_argument("--title", default="")
    args = p.parse_args(argv)
    try:
        logs = {Path(log).name.replace(".losses.jsonl", ""): read_log(log) for log in args.logs}
        plot_losses(logs, args.output, args.title)
    except NSTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
