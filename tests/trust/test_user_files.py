"""A run never replaces a file nst_jax did not write (`runfiles.RunFiles.check_ours`, `ownership`), and
extreme option values are refused by the config checks before anything is computed (`config`)."""

from __future__ import annotations

import shutil
import warnings

import pytest

from nst_jax.run import main

from conftest import CONTENT, STYLE, call_main, one_error_line

RUN = ["--size", "32", "--iterations", "2", "--quiet"]


def _theirs():
    """Files of the user's at the names a run of `keep.png` writes: name → bytes."""
    return {"keep.json": b"photo\n", "keep.losses.jsonl": b"my notes\n", "keep.png": CONTENT.read_bytes(),
            "keep.ckpt.npz": b"PK\x03\x04 my archive", "keep.lock": b"do not touch\n",
            "keep_iter00002.png": STYLE.read_bytes()}


def _listing(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("name", list(_theirs()))
def test_a_file_nst_jax_did_not_write_is_refused_before_any_work_and_left_as_it_was(tmp_path, capsys, name):
    (tmp_path / name).write_bytes(_theirs()[name])
    before = _listing(tmp_path)
    line = one_error_line(main, [CONTENT, STYLE, *RUN, "-o", tmp_path / "keep.png"], capsys)
    assert str(tmp_path / name) in line and "--overwrite" in line and "-o" in line, line
    assert _listing(tmp_path) == before                      # byte-identical, and nothing else written


@pytest.mark.parametrize("name", ["keep.json", "keep.losses.jsonl", "keep.png", "keep.ckpt.npz"])
def test_overwrite_replaces_a_file_nst_jax_did_not_write(tmp_path, capsys, name):
    theirs = _theirs()[name]
    (tmp_path / name).write_bytes(theirs)
    code, out, err = call_main(main, [CONTENT, STYLE, *RUN, "--overwrite", "-o", tmp_path / "keep.png"], capsys)
    assert code == 0 and out.startswith("wrote "), err
    assert not (tmp_path / name).exists() or (tmp_path / name).read_bytes() != theirs
    assert (tmp_path / "keep.json").read_bytes() != b"photo\n" and (tmp_path / "keep.png").exists()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_plain_run_leaves_an_error_file_beside_it_as_it_was(tmp_path, capsys, overwrite):
    """`keep.error.txt` is written only by sweeps and the studio, into folders they own: a plain run
    neither checks nor removes one that is there."""
    (tmp_path / "keep.error.txt").write_bytes(b"my error notes\n")
    code, out, err = call_main(main, [CONTENT, STYLE, *RUN, *overwrite, "-o", tmp_path / "keep.png"], capsys)
    assert code == 0 and out.startswith("wrote "), err
    assert (tmp_path / "keep.error.txt").read_bytes() == b"my error notes\n"


def test_a_rerun_over_its_own_result_continues_as_before(tmp_path, capsys):
    argv = [CONTENT, STYLE, "--size", "32", "--quiet", "--keep-checkpoint", "-o", tmp_path / "keep.png"]
    assert call_main(main, [*argv, "--iterations", "2"], capsys)[0] == 0
    code, out, _ = call_main(main, [*argv, "--iterations", "2"], capsys)
    assert code == 0 and "nothing to do" in out
    code, out, _ = call_main(main, [*argv, "--iterations", "3"], capsys)
    assert code == 0 and out.startswith("wrote ") and "after 3 iterations" in out
    for gone in ("keep.png", "keep.json"):       # as a killed run leaves it: a log and a checkpoint, or a log
        (tmp_path / gone).unlink()
    code, out, err = call_main(main, [*argv, "--iterations", "4"], capsys)
    assert code == 0 and "after 4 iterations" in out, err
    for gone in ("keep.png", "keep.json", "keep.ckpt.npz"):
        (tmp_path / gone).unlink()
    assert call_main(main, [*argv, "--iterations", "2"], capsys)[0] == 0


def test_a_rerun_over_the_last_good_image_of_a_failed_run_is_not_refused(tmp_path, capsys):
    """A run whose loss became NaN leaves its last good image (no record in it, no sidecar) and its log."""
    out = tmp_path / "keep.png"
    line = one_error_line(main, [CONTENT, STYLE, *RUN, "--optimizer", "adam", "--lr", "1e38", "-o", out], capsys)
    assert "became" in line and out.exists() and not (tmp_path / "keep.json").exists()
    code, stdout, err = call_main(main, [CONTENT, STYLE, *RUN, "--optimizer", "adam", "-o", out], capsys)
    assert code == 0 and stdout.startswith("wrote "), err


def test_an_input_as_the_output_is_still_refused_as_an_input(tmp_path, capsys):
    mine = tmp_path / "mine.png"
    shutil.copy(CONTENT, mine)
    line = one_error_line(main, [mine, STYLE, *RUN, "--overwrite", "-o", mine], capsys)
    assert "would overwrite an input image" in line and mine.read_bytes() == CONTENT.read_bytes()


def test_a_multiscale_run_is_refused_before_its_first_scale(tmp_path, capsys):
    (tmp_path / "keep.png").write_bytes(CONTENT.read_bytes())
    before = _listing(tmp_path)
    line = one_error_line(main, [CONTENT, STYLE, *RUN, "--scales", "32,40", "-o", tmp_path / "keep.png"], capsys)
    assert "--overwrite" in line and _listing(tmp_path) == before     # no keep_s32.png


def test_the_sidecar_of_another_result_is_refused_as_that_result_s(tmp_path, capsys):
    assert call_main(main, [CONTENT, STYLE, *RUN, "-o", tmp_path / "keep.png"], capsys)[0] == 0
    before = _listing(tmp_path)
    line = one_error_line(main, [CONTENT, STYLE, *RUN, "-o", tmp_path / "keep.jpg"], capsys)
    assert "keep.json and keep.losses.jsonl belong to" in line and _listing(tmp_path) == before


@pytest.mark.parametrize("flags, fragment", [
    (["--style-weight", "1e308"], "--style-weight must be a finite number ≥ 0 and ≤ 1e+20"),
    (["--optimizer", "adam", "--lr", "1e308"], "--lr must be positive and at most 3.4e+38"),
    (["--lr", "1e39"], "--lr must be positive and at most 3.4e+38"),
    (["--content-weight", "1e21"], "--content-weight must be"),
    (["--tv-weight", "1e300"], "--tv-weight must be"),
    (["--temporal-weight", "1e308"], "--temporal-weight must be"),
    (["--style-layer-weights", "1e308,1,1,1,1"], "--style-layer-weights must be"),
    (["--style-layer-weights=-1,1,1,1,1"], "--style-layer-weights must be"),
    (["--tol", "0.5", "--tol-window", "100000000000"], "--tol-window must be at most 1000000"),
])
def test_extreme_values_are_one_error_line_without_a_warning_and_compute_nothing(tmp_path, capsys, flags,
                                                                                 fragment):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = one_error_line(main, [CONTENT, STYLE, *RUN, *flags, "-o", tmp_path / "x.png"], capsys)
    assert fragment in line, line
    assert not caught, [str(w.message) for w in caught]
    assert list(tmp_path.iterdir()) == []


def test_the_largest_values_allowed_still_run(tmp_path, capsys):
    code, out, err = call_main(main, [CONTENT, STYLE, *RUN, "--style-weight", "1e20", "--tv-weight", "1e20",
                                      "-o", tmp_path / "x.png"], capsys)
    assert code == 0 and out.startswith("wrote "), err
