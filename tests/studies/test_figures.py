"""Figures as every tool draws them: matplotlib on the Agg backend whatever was chosen before, and
saved atomically in the format the file's name says (an earlier file left whole when drawing fails)."""

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install nst_jax[studies])")

import matplotlib  # noqa: E402

from nst_jax.studies import figures  # noqa: E402
from nst_jax.files import fileio  # noqa: E402

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}


def test_pyplot_is_on_the_agg_backend_even_after_another_was_chosen():
    matplotlib.use("svg")       # as another library or the user's rc file might
    plt = figures.pyplot()
    assert matplotlib.get_backend().lower() == "agg"
    assert plt is __import__("matplotlib.pyplot").pyplot
    fig, ax = plt.subplots()
    assert type(fig.canvas).__name__ == "FigureCanvasAgg"
    plt.close(fig)


def test_figures_are_saved_through_the_atomic_writer():
    assert figures.save_figure is fileio.save_figure


def _figure():
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(1, 1), dpi=32)
    ax.plot([0, 1], [1, 0])
    return plt, fig


@pytest.mark.parametrize("name, fmt", [("plot.png", "png"), ("plot.pdf", "pdf"), ("plot.svg", "svg"),
                                       ("Plot.PNG", "png")])
def test_a_figure_is_saved_in_the_format_its_name_says(tmp_path, name, fmt):
    plt, fig = _figure()
    try:
        figures.save_figure(fig, tmp_path / name)
    finally:
        plt.close(fig)
    assert (tmp_path / name).read_bytes().startswith(MAGIC[fmt])
    assert [p.name for p in tmp_path.iterdir()] == [name]       # no temporary file left beside it


def test_a_figure_goes_into_a_new_folder_and_replaces_the_earlier_file(tmp_path):
    target = tmp_path / "new" / "curve.png"
    plt, fig = _figure()
    try:
        figures.save_figure(fig, target)
        first = target.read_bytes()
        fig.axes[0].plot([0, 1], [0, 1])
        figures.save_figure(fig, target)
    finally:
        plt.close(fig)
    assert target.read_bytes() != first and target.read_bytes().startswith(MAGIC["png"])


def test_a_failed_save_leaves_the_earlier_file_whole_and_no_temporary_file(tmp_path):
    target = tmp_path / "plot.xyz"
    target.write_bytes(b"earlier")
    plt, fig = _figure()
    try:
        with pytest.raises(ValueError, match="xyz"):     # matplotlib knows no format 'xyz'
            figures.save_figure(fig, target)
    finally:
        plt.close(fig)
    assert target.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.xyz"]


def test_saving_where_a_folder_is_is_one_error_line(tmp_path):
    from nst_jax.base.errors import NSTError
    (tmp_path / "plot.png").mkdir()
    plt, fig = _figure()
    try:
        with pytest.raises(NSTError, match=r"cannot write .*plot\.png: it is a folder"):
            figures.save_figure(fig, tmp_path / "plot.png")
    finally:
        plt.close(fig)
