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
