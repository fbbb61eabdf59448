"""Reliability: every tool, every bad input — one `error:` line and exit 2, nothing written that was not
asked for. Table-driven and in-process; the files each case needs are made here, small.

Plus property tests: any bytes given as an image, and any JSON given as a grid, give an image/grid or
a clean NSTError — never another exception.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from nst_jax.model import convert
from nst_jax.studies import dissect, gallery, report, sweep
from nst_jax import run
from nst_jax.base.errors import NSTError

from conftest import CONTENT, STYLE, one_error_line

_HELD_LOCKS: list[int] = []   # descriptors that hold the "busy" lock files for the whole module

RUN, SWEEP, REPORT, DISSECT, GALLERY, CONVERT = run.main, sweep.main, report.main, dissect.main, gallery.main, \
    convert.main
C, S = str(CONTENT), str(STYLE)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The small bad (and a few good) files the cases refer to by name."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "notes.txt").write_text("hello")
    (d / "empty.png").write_bytes(b"")
    (d / "trunc.png").write_bytes(CONTENT.read_bytes()[:100])
    Image.new("RGB", (7, 5), "white").save(d / "small_mask.png")
    Image.new("RGB", (451, 300), "white").save(d / "mask.png")
    (d / "folder").mkdir()
    (d / "dir.png").mkdir()
    (d / "afile").write_text("x")
    from nst_jax.model import weights
    (d / "trunc.h5").write_bytes(weights.default_path().read_bytes()[:50_000])
    (d / "exists.h5").write_text("x")
    for name, grid in {"g_str_k.json": {"style_weight": ["heavy"]}, "g_int_init.json": {"init": [3]},
                       "g_float_seed.json": {"seed": [1.5]}, "g_list.json": [1, 2],
                       "g_scalar.json": {"style_weight": 10}, "g_unknown.json": {"bogus": [1]},
                       "g_bad_init.json": {"init": ["noise", "bogus"]},
                       "g_layers.json": {"style_layers": [["relu9_9"]]},
                       "g_missing_image.json": {"content": [str(CONTENT), "missing_content.jpg"]}}.items():
        (d / name).write_text(json.dumps(grid))
    (d / "g_broken.toml").write_text("init = [")
    (d / "noreport").mkdir()
    (d / "badreport").mkdir()
    (d / "badreport" / "sweep.json").write_text("{not json")
    (d / "bad.losses.jsonl").write_text("{not json\n")
    (d / "busy").mkdir()
    for lock in (d / "busy" / "sweep.lock", d / "busy_out.lock"):  # held by a live process (this one, through
        lock.write_text(f"{os.getppid()}\n")                     # a descriptor of its own; the pid says who)
        fd = os.open(lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _HELD_LOCKS.append(fd)
    (d / "corrupt.ckpt.npz").write_bytes(b"PK\x03\x04 not a zip")
    return d


# (tool, arguments — names in braces are the files above —, fragments the one error line must hold)
CASES = [
    # run: files
    (RUN, ["missing.jpg", S], ["missing.jpg", "not found"]),
    (RUN, [C, "missing_style.jpg"], ["missing_style.jpg", "not found"]),
    (RUN, ["{folder}", S], ["folder", "not a regular file"]),
    (RUN, ["{notes.txt}", S], ["notes.txt", "not an image"]),
    (RUN, ["{empty.png}", S], ["empty.png"]),
    (RUN, ["{trunc.png}", S], ["trunc.png", "unreadable"]),
    (RUN, [C, "{notes.txt}"], ["notes.txt", "not an image"]),
    (RUN, [C, S, "--weights", "{notes.txt}"], ["notes.txt", "weights"]),
    (RUN, [C, S, "--weights", "missing.h5"], ["missing.h5", "not found"]),
    (RUN, [C, S, "--weights", "{trunc.h5}"], ["trunc.h5", "truncated or corrupt"]),
    # run: sizes (checked before anything large is allocated)
    (RUN, [C, S, "--size", "0"], ["--size", "positive"]),
    (RUN, [C, S, "--size", "-5"], ["--size", "positive"]),
    (RUN, [C, S, "--size", "9000"], ["--size 9000", "8192"]),
    (RUN, [C, S, "--size", "abc"], ["--size", "invalid int"]),
    (RUN, [C, S, "--size", "8"], ["too small", "relu5_1"]),
    (RUN, [C, S, "--scales", "100000"], ["--scales", "8192"]),
    (RUN, [C, S, "--size", "8192", "--history", "1000"], ["needs about", "L-BFGS history", "available", "--size"]),
    (RUN, [C, S, "--scales", "64,8192", "--history", "1000"], ["scale 8192", "needs about", "--size"]),
    (RUN, [C, S, "--devices", "9"], ["--devices 9", "only 1 device is present"]),
    (RUN, [C, S, "--devices", "-1"], ["--devices", "≥ 0"]),
    (RUN, [C, S, "--memory", "tiles"], ["--memory", "auto, plain, remat, remat-bf16"]),
    (RUN, [C, S, "--memory", "remat-bf16", "--optimizer", "adam"], ["remat-bf16", "adam", "--memory remat"]),
    (RUN, [C, S, "--plan", "lots"], ["--plan 'lots'", "8x80GB"]),
    (RUN, [C, S, "--size", "16", "--plan"], ["too small", "relu5_1"]),
    (RUN, [C, S, "--scales", "0,64"], ["--scales", "positive"]),
    (RUN, [C, S, "--scales", "64,128", "--scale-iterations", "5"], ["--scale-iterations has 1 values for 2"]),
    (RUN, [C, S, "--scales", "64", "--scale-iterations", "-1"], ["--scale-iterations", "≥ 0"]),
    (RUN, [C, S, "--style-scale", "0"], ["--style-scale", "positive"]),
    (RUN, [C, S, "--style-scale", "inf"], ["--style-scale", "finite"]),
    (RUN, [C, S, "--style-scale", "1000"], ["--style-scale 1000", "8192"]),
    # run: numbers
    (RUN, [C, S, "--iterations", "-1"], ["--iterations", "≥ 0"]),
    (RUN, [C, S, "--style-weight", "-1"], ["--style-weight", "≥ 0"]),
    (RUN, [C, S, "--style-weight", "nan"], ["--style-weight", "finite"]),
    (RUN, [C, S, "--content-weight", "inf"], ["--content-weight", "finite"]),
    (RUN, [C, S, "--tv-weight", "-0.5"], ["--tv-weight", "≥ 0"]),
    (RUN, [C, S, "--lr", "0"], ["--lr", "positive"]),
    (RUN, [C, S, "--lr", "-1"], ["--lr", "positive"]),
    (RUN, [C, S, "--history", "0"], ["--history", "≥ 1"]),
    (RUN, [C, S, "--seed", "99999999999999999999999"], ["--seed"]),
    (RUN, [C, S, "--seed", "-1"], ["--seed"]),
    (RUN, [C, S, "--save-every", "-1"], ["--save-every", "≥ 0"]),
    (RUN, [C, S, "--checkpoint-every", "-1"], ["--checkpoint-every", "≥ 0"]),
    (RUN, [C, S, "--checkpoint-minutes", "-1"], ["--checkpoint-minutes", "from 0"]),
    (RUN, [C, S, "--print-every", "-1"], ["--print-every", "≥ 0"]),
    # run: blends, layers, names
    (RUN, [C, S, S, "--style-blend-weights", "nan,1"], ["--style-blend-weights", "finite"]),
    (RUN, [C, S, S, "--style-blend-weights", "inf,1"], ["--style-blend-weights", "finite"]),
    (RUN, [C, S, S, "--style-blend-weights", "1e308,1e308"], ["--style-blend-weights", "finite sum"]),
    (RUN, [C, S, S, "--style-blend-weights", "1"], ["has 1 values for 2 style images"]),
    (RUN, [C, S, S, "--style-blend-weights=-1,2"], ["--style-blend-weights", "≥ 0"]),
    (RUN, [C, S, "--style-blend-weights", "x"], ["comma-separated numbers"]),
    (RUN, [C, S, "--style-layers", "relu9_9"], ["relu9_9", "conv1_1"]),
    (RUN, [C, S, "--content-layers", "bogus"], ["bogus"]),
    (RUN, [C, S, "--style-layer-weights", "1,2"], ["--style-layer-weights has 2 values for 5"]),
    (RUN, [C, S, "--style-statistic", "nope"], ["nope", "gram"]),
    (RUN, [C, S, "--original-colors", "sepia"], ["sepia", "luminance"]),
    (RUN, [C, S, "--optimizer", "sgd"], ["sgd", "lbfgs"]),
    (RUN, [C, S, "--pooling", "min"], ["min", "max"]),
    (RUN, [C, S, "--init", "nonsense"], ["nonsense", "noise"]),
    (RUN, [C, S, "--preset", "nope"], ["nope", "tutorial"]),
    (RUN, [C, S, "--frobnicate"], ["unrecognized arguments", "--frobnicate"]),
    (RUN, [], ["the following arguments are required"]),
    # run: masks
    (RUN, [C, S, "--content-mask", "missing_mask.png"], ["missing_mask.png", "not found"]),
    (RUN, [C, S, "--content-mask", "{mask.png}", "{mask.png}"], ["--content-mask has 2 masks for 1"]),
    (RUN, [C, S, "--style-mask", "{mask.png}"], ["--style-mask needs --content-mask"]),
    (RUN, [C, S, "--content-mask", "{mask.png}", "--style-statistic", "mean_std"], ["masks work with"]),
    (RUN, [C, S, "--content-mask", "{small_mask.png}"], ["small_mask.png", "7×5", "must have their image's size"]),
    # run: outputs
    (RUN, [C, S, "-o", C], ["overwrite an input"]),
    (RUN, [C, S, "-o", "result.txt"], ["image extension"]),
    (RUN, [C, S, "-o", "{dir.png}"], ["dir.png", "is a folder"]),
    (RUN, [C, S, "-o", "{afile}/out.png"], ["cannot write", "afile", "not a folder"]),
    (RUN, [C, S, "-o", "{corrupt.png}"], ["corrupt.ckpt.npz", "unreadable", "--overwrite"]),   # not nst_jax's
    (RUN, [C, S, "-o", "{busy_out.png}"], ["in use by process", "busy_out.lock"]),
    # sweep
    (SWEEP, ["1", "--grid", "{g_str_k.json}", "--out", "{new}"], ["g_str_k.json", "style_weight must be a number"]),
    (SWEEP, ["1", "--grid", "{g_int_init.json}", "--out", "{new}"], ["init must be a string"]),
    (SWEEP, ["1", "--grid", "{g_float_seed.json}", "--out", "{new}"], ["seed must be an integer"]),
    (SWEEP, ["1", "--grid", "{g_list.json}", "--out", "{new}"], ["must be an object"]),
    (SWEEP, ["1", "--grid", "{g_scalar.json}", "--out", "{new}"], ["non-empty list"]),
    (SWEEP, ["1", "--grid", "{g_unknown.json}", "--out", "{new}"], ["unknown field 'bogus'"]),
    (SWEEP, ["1", "--grid", "{g_bad_init.json}", "--out", "{new}"], ["grid point init-bogus", "--init 'bogus'"]),
    (SWEEP, ["1", "--grid", "{g_layers.json}", "--out", "{new}"], ["relu9_9"]),
    (SWEEP, ["1", "--grid", "{g_broken.toml}", "--out", "{new}"], ["g_broken.toml", "unreadable"]),
    (SWEEP, ["1", "--grid", "{g_missing_image.json}", "--out", "{new}"], ["grid point content-missing_content",
                                                                          "missing_content.jpg", "not found"]),
    (SWEEP, ["1", "--grid", "missing.toml", "--out", "{new}"], ["missing.toml", "not found"]),
    (SWEEP, ["1", "--out", "{afile}"], ["--out", "not a folder"]),
    (SWEEP, ["-1", "--out", "{new}"], ["ITERATIONS", "≥ 0"]),
    (SWEEP, ["1", "--batch", "0", "--out", "{new}"], ["--batch", "≥ 1"]),
    (SWEEP, ["1", "--size", "9000", "--out", "{new}"], ["--size 9000"]),
    (SWEEP, ["1", "--out", "{busy}", "--no-report"], ["in use by process", "sweep.lock"]),
    # report
    (REPORT, ["{noreport}"], ["no sweep.json"]),
    (REPORT, ["{badreport}"], ["sweep.json", "unreadable"]),
    (REPORT, ["plot", "missing.losses.jsonl", "-o", "{new}/p.png"], ["missing.losses.jsonl", "unreadable"]),
    (REPORT, ["plot", "{bad.losses.jsonl}", "-o", "{new}/p.png"], ["bad.losses.jsonl", "unreadable"]),
    (REPORT, ["plot"], ["required"]),
    # dissect
    (DISSECT, ["reduce", "--fractions", "abc", "-o", "{new}"], ["--fractions", "abc"]),
    (DISSECT, ["reduce", "--fractions", "1.5", "-o", "{new}"], ["--fractions"]),
    (DISSECT, ["reduce", "--criteria", "nope", "-o", "{new}"], ["unknown criterion 'nope'"]),
    (DISSECT, ["content", "--layers", "relu9_9", "-o", "{new}"], ["relu9_9"]),
    (DISSECT, ["views", "--size", "abc"], ["--size", "invalid int"]),
    (DISSECT, ["nothing"], ["invalid choice"]),
    # gallery
    (GALLERY, ["statistics", "--statistics", "nope", "-o", "{new}"], ["nope"]),
    (GALLERY, ["classic", "--styles", S], ["--style", "2 arguments"]),
    (GALLERY, ["statistics", "--content", "missing.jpg", "--statistics", "gram", "-o", "{new}"], ["missing.jpg"]),
    # weights
    (CONVERT, ["verify", "{notes.txt}"], ["notes.txt"]),
    (CONVERT, ["info", "{trunc.h5}"], ["trunc.h5", "truncated or corrupt"]),
    (CONVERT, ["convert", "missing.pth", "{new}/w.h5", "--from", "torchvision"], ["missing.pth", "not found"]),
    (CONVERT, ["convert", "{notes.txt}", "{exists.h5}", "--from", "keras"], ["exists.h5", "--force"]),
    (CONVERT, ["convert", "{notes.txt}", "{new}/w.h5", "--from", "nope"], ["invalid choice"]),
]


def _expand(argv, files, tmp_path):
    out = []
    for a in argv:
        a = str(a).replace("{new}", str(tmp_path / "new"))
        if "{" in a:
            name = a[a.index("{") + 1:a.index("}")]
            a = a.replace("{" + name + "}", str(files / name))  # corrupt.png, busy_out.png: outputs
        out.append(a)
    return out


@pytest.mark.parametrize("tool,argv,fragments", CASES, ids=[f"{t.__module__.split('.')[-1]}:{' '.join(map(str, a))[:60]}"
                                                           for t, a, _ in CASES])
def test_bad_input_gives_one_line_and_exit_2(tool, argv, fragments, files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _expand(argv, files, tmp_path)
    if tool is RUN and args:  # small and quick, unless the case sets the option itself
        for flag, value in (("--size", "48"), ("--iterations", "2")):
            if flag not in args:
                args += [flag, value]
        args.append("--quiet")
    before = sorted(p.name for p in files.iterdir())
    line = one_error_line(tool, args, capsys)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "Traceback" not in line
    assert sorted(p.name for p in files.iterdir()) == before  # nothing written beside the inputs
    assert not (tmp_path / "out.png").exists()


def test_the_table_is_large_and_covers_every_tool():
    assert len(CASES) >= 60
    assert {t for t, _, _ in CASES} == {RUN, SWEEP, REPORT, DISSECT, GALLERY, CONVERT}


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400) | st.sampled_from([CONTENT.read_bytes()[:n] for n in (8, 33, 200, 1000)]))
def test_any_bytes_are_an_image_or_one_clean_error(tmp_path_factory, data):
    from nst_jax.files import image
    path = tmp_path_factory.mktemp("bytes") / "x.png"
    path.write_bytes(data)
    try:
        img = image.load_image(path)
    except NSTError as err:
        assert "\n" not in str(err) and str(path) in str(err)
    else:
        assert img.ndim == 3 and img.shape[-1] == 3 and np.isfinite(img).all()


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
                     max_leaves=8)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(["init", "style_weight", "seed", "style_layers", "size", "bogus",
                                        "style_statistic", "content"]), _json, max_size=3) | _json)
def test_any_json_is_a_grid_or_one_clean_error(tmp_path_factory, value):
    from nst_jax.studies.grid import load_grid
    path = tmp_path_factory.mktemp("grid") / "g.json"
    path.write_text(json.dumps(value))
    try:
        grid = load_grid(str(path))
    except NSTError as err:
        assert "\n" not in str(err) and str(path) in str(err)
    else:
        assert isinstance(grid, dict) and all(isinstance(v, list) and v for v in grid.values())


def test_write_errors_are_one_line_and_keep_earlier_files(tmp_path):
    """A write that fails (here: the target replaced by a folder; a read-only folder for non-root users)
    names the path; the file that was there stays intact and no temporary file is left."""
    from nst_jax.files.fileio import atomic_write_bytes
    target = tmp_path / "keep.txt"
    atomic_write_bytes(target, lambda f: f.write(b"first"))

    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")
    with pytest.raises(NSTError, match="cannot write .*keep.txt: no space left on the device"):
        atomic_write_bytes(target, fail)
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(NSTError, match="is a folder"):
        atomic_write_bytes(tmp_path / "dir.png", lambda f: f.write(b"x"))


def test_a_second_process_on_the_same_output_is_refused_and_stale_locks_are_taken(tmp_path):
    from nst_jax.files.fileio import Lock
    lock = tmp_path / "x.lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(dead.stdout)  # a killed process's lock: stale
    with Lock(lock, "output x.png"):
        assert lock.read_text().strip() == str(os.getpid())
        child = subprocess.run([sys.executable, "-c", "from nst_jax.files.fileio import Lock\n"
                                f"with Lock({str(lock)!r}, 'output x.png'): pass"],
                               capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(CONTENT.parents[2])))
        assert child.returncode != 0 and f"in use by process {os.getpid()}" in child.stderr
    assert not lock.exists()


def test_stale_temporary_files_are_removed_when_a_run_starts(tmp_path, embedded):
    from conftest import small_cfg
    from nst_jax.transfer.runs import run as run_transfer
    import tempfile
    fd, stale = tempfile.mkstemp(prefix=".out.ckpt.npz.", suffix=".tmp", dir=tmp_path)  # as a killed write left it
    os.write(fd, b"x" * 1000)
    os.close(fd)
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_text("DATA")
    planted = tmp_path / ".out.png.abcd1234.tmp"      # a link with a temporary file's name: not ours, kept
    planted.symlink_to(victim)
    run_transfer(small_cfg(tmp_path / "out.png", iterations=1), progress=False, loaded_weights=embedded)
    assert not os.path.exists(stale) and not (tmp_path / "out.lock").exists()
    assert planted.is_symlink() and victim.read_text() == "DATA"


def test_large_gram_counts_do_not_overflow():
    """C·M passes 2³¹ at print sizes (64 channels × 8192²); the Gram matrix divides by it as a float."""
    import jax
    import jax.numpy as jnp
    from nst_jax.objective.statistics import gram_matrix
    f = jax.ShapeDtypeStruct((8192 * 8192, 64), jnp.float32)
    out = jax.eval_shape(gram_matrix, f)
    assert out.shape == (64, 64)


