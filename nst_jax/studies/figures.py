"""Figures, the way every tool draws them: matplotlib without a display (the Agg backend, chosen once,
whatever the machine), and saved atomically in the format the file name says."""

from __future__ import annotations

from nst_jax.files.fileio import save_figure  # noqa: F401 - figures are saved through here


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed; imported only when a figure is drawn)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def log_axes(ax, title: str, xlabel: str, fontsize: int = 9) -> None:
    """Both axes logarithmic, with a title, an x label and a light grid: the study's curves and fronts."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=fontsize)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, which="both")
