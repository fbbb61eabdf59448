"""Files nst_jax reads back go through one reader (`nst_jax.untrusted`): deeply nested JSON or TOML, .npy
headers asking for huge arrays and named pipes are one `error:` line (or, for a cache, measured again) in
every reader, never a RecursionError, a MemoryError or a hang. Caches are optional: one that cannot be
written is said and the run goes on. Names with line breaks stay on the one error line."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from nst_jax.files import checkpoints, untrusted
from nst_jax.apps import tune
from nst_jax.model import convforms
from nst_jax.studies import grid, report, sweep
from nst_jax.base.errors import NSTError
from nst_jax.studies.paper.common import Timer
from nst_jax.run import main as run_main
from nst_jax.files.runfiles import RunFiles
from nst_jax.apps.video import files as video_files

from conftest import CONTENT, STYLE, call_main, one_error_line

DEEP = "[" * 2000 + "]" * 2000          # 4 KB; json's and tomllib's own parsers recurse on it
T = ["--size", "32", "--iterations", "2", "--quiet"]
LAYERS = ("relu1_1", "relu2_1")


@pytest.fixture(autouse=True)
def no_hang():
    """A reader that blocks (on a named pipe) fails the test instead of hanging the suite."""
    def stuck(signum, frame):
        raise AssertionError("a reader blocked for 60 s")
    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _huge_npy(path: Path, shape=(10**6, 10**6, 3, 4), dtype="<f4") -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return path


# --------------------------------------------------------------------------------- the reader itself

def test_the_reader_keeps_records_and_refuses_depth_size_and_pipes(tmp_path):
    assert untrusted.parse_json('{"a": [1, {"b": 2}]}', "x") == {"a": [1, {"b": 2}]}
    assert untrusted.parse_json("[" * 64 + "]" * 64, "x") is not None          # the limit itself passes
    for text in ("[" * 65 + "]" * 65, DEEP):
        with pytest.raises(NSTError, match="nested more than 64 deep"):
            untrusted.parse_json(text, "x")
    with pytest.raises(NSTError, match="nested more than 64 deep"):
        untrusted.parse_toml("a = " + DEEP, "x")
    with pytest.raises(NSTError, match="over 3 bytes"):
        untrusted.parse_json("[1, 2]", "x", limit=3)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NSTError, match="not a regular file"):
        untrusted.read_json(tmp_path / "pipe", "record")
    with pytest.raises(NSTError, match="not a regular file"):
        untrusted.read_json(tmp_path, "record")


def test_an_npy_header_is_checked_before_its_array_is_allocated(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "a.npy", a)
    got = untrusted.load_npy(tmp_path / "a.npy", "array", lambda dtype, shape: None)
    assert np.array_equal(got, a) and got.flags.writeable
    with pytest.raises(NSTError, match="header claims 48000000000000 bytes"):
        untrusted.load_npy(_huge_npy(tmp_path / "h.npy"), "array", lambda dtype, shape: None)
    with pytest.raises(NSTError, match="expected float64"):
        untrusted.load_npy(tmp_path / "a.npy", "array", lambda d, s: None if d == np.float64 else "expected float64")
    (tmp_path / "short.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-4])   # the data cut short
    with pytest.raises(NSTError, match="does not hold"):
        untrusted.load_npy(tmp_path / "short.npy", "array", lambda dtype, shape: None)


# ------------------------------------------------------------------------------- every reader: deep JSON

def test_deep_grids_are_one_line(tmp_path, capsys):
    (tmp_path / "g.json").write_text(DEEP)
    (tmp_path / "g.toml").write_text("init = " + DEEP)
    for name in ("g.json", "g.toml"):
        with pytest.raises(NSTError, match="nested more than 64 deep"):
            grid.load_grid(str(tmp_path / name))
        line = one_error_line(sweep.main, ["1", "--grid", tmp_path / name, "--out", tmp_path / "new"], capsys)
        assert name in line and "nested" in line
    assert not (tmp_path / "new").exists()


def test_deep_sidecars_logs_manifests_and_timing_files_are_one_line(tmp_path, capsys):
    files = RunFiles(tmp_path / "out.png")
    files.sidecar.write_text(DEEP)
    with pytest.raises(NSTError, match="sidecar .*nested more than 64 deep.*--restart"):
        files.read_sidecar()
    (tmp_path / "deep.losses.jsonl").write_text('{"iteration": 1}\n' + DEEP + "\n")
    line = one_error_line(report.main, ["plot", tmp_path / "deep.losses.jsonl", "-o", tmp_path / "p.png"], capsys)
    assert "line 2" in line and "nested" in line and not (tmp_path / "p.png").exists()
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text(DEEP)
    line = one_error_line(report.main, [tmp_path / "sweep"], capsys)
    assert "sweep.json" in line and "nested" in line
    (tmp_path / "timing.json").write_text(DEEP)
    with pytest.raises(NSTError, match="timing.json.*nested"):
        Timer(tmp_path / "timing.json")


def test_a_deep_video_record_is_not_taken_as_the_videos_own(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not read here")
    out = video_files.VideoFiles(clip)
    out.sidecar.write_text(DEEP)
    assert out.ours() is False


def test_a_deep_or_planted_checkpoint_is_one_line_without_allocating(tmp_path):
    path = tmp_path / "c.ckpt.npz"
    np.savez(path, meta=np.frombuffer(DEEP.encode(), np.uint8))
    assert checkpoints.read_meta(path) is None
    import jax
    template = {"x": jax.ShapeDtypeStruct((1, 8, 8, 3), np.float32)}
    with pytest.raises(NSTError, match="nested more than 64 deep"):
        checkpoints.load(path, template, "0" * 16)
    # a leaf whose header asks for a huge array: refused from its header, before the config check's leaves
    from types import SimpleNamespace
    checkpoints.save(path, SimpleNamespace(x=np.zeros((1, 8, 8, 3), np.float32)), config_hash="0" * 16,
                     solver="lbfgs", iteration=1, offset=0, target=2, seconds=0.0, light=True)
    with np.load(path) as data:
        meta = data["meta"]
    import zipfile
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("meta.npy", _npy_bytes(meta))
        z.writestr("leaf000.npy", _huge_npy(tmp_path / "leaf.npy").read_bytes())
    with pytest.raises(NSTError, match=r"\(leaf000\): state shapes differ from this run's"):
        checkpoints.load_light(path, (1, 8, 8, 3), "0" * 16)


def _npy_bytes(a: np.ndarray) -> bytes:
    import io
    buffer = io.BytesIO()
    np.save(buffer, a)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------- caches: optional

def _fake_measure(shape, forms):
    return convforms.Choice("xla", {f: 1.0 for f in forms}, {f: 0.0 for f in forms})


@pytest.mark.parametrize("plant", ["deep", "pipe", "folder"])
def test_a_forms_cache_that_is_deep_a_pipe_or_a_folder_is_measured_again_and_the_run_goes_on(tmp_path, plant,
                                                                                             monkeypatch):
    monkeypatch.delenv("NST_JAX_TUNE", raising=False)
    path = tmp_path / "conv-forms.json"
    {"deep": lambda: path.write_text(DEEP), "pipe": lambda: os.mkfifo(path), "folder": path.mkdir}[plant]()
    said = []
    forms = convforms.choose_forms(LAYERS, 32, 32, path=path, measure_fn=_fake_measure, say=said.append, fused=False)
    assert forms.source == "measured" and forms.by_layer
    assert any("not using" in s for s in said) or plant == "folder"
    if plant == "folder":   # it cannot be written back either: said, not fatal
        assert any("could not write the cache" in s for s in said), said
    else:                   # replaced by a cache that reads back
        assert convforms.choose_forms(LAYERS, 32, 32, path=path, measure_fn=None, fused=False).source == "cache"


def test_tune_show_and_forget_survive_a_deep_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NST_JAX_CACHE", str(tmp_path))
    path = convforms.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEEP)
    code, out, err = call_main(tune.main, ["--show"], capsys)
    assert code == 0 and "nested more than 64 deep" in out and not err
    code, out, err = call_main(tune.main, ["--forget"], capsys)
    assert code == 0 and "removed" in out and json.loads(path.read_text())["machines"] == {}


# ------------------------------------------------------------------------------- arrays given as input

def test_a_temporal_file_asking_for_a_huge_array_is_one_line(tmp_path, capsys):
    line = one_error_line(run_main, [CONTENT, STYLE, *T, "--temporal", _huge_npy(tmp_path / "t.npy"),
                                     "-o", tmp_path / "out.png"], capsys)
    assert "--temporal" in line and "t.npy" in line
    assert not (tmp_path / "out.png").exists()


def test_a_planted_flow_cache_entry_is_computed_again(tmp_path):
    assert video_files.read_pair_file(_huge_npy(tmp_path / "p.npy"), (8, 8)) is None
    np.save(tmp_path / "ok.npy", np.zeros((8, 8, 3), np.float32))
    assert video_files.read_pair_file(tmp_path / "ok.npy", (8, 8)) is not None
    os.mkfifo(tmp_path / "pipe.npy")
    assert video_files.read_pair_file(tmp_path / "pipe.npy", (8, 8)) is None


def test_a_grid_that_is_a_named_pipe_is_refused_not_waited_on(tmp_path, capsys):
    os.mkfifo(tmp_path / "g.json")
    line = one_error_line(sweep.main, ["1", "--grid", tmp_path / "g.json", "--out", tmp_path / "new"], capsys)
    assert "not a regular file" in line


# ---------------------------------------------------------------------------------------- messages

def test_a_name_with_line_breaks_stays_on_the_one_error_line(tmp_path, capsys):
    fake = "missing\nerror: fake.png"
    line = one_error_line(run_main, [fake, STYLE, *T, "-o", tmp_path / "out.png"], capsys)
    assert "missing\\nerror: fake.png" in line
    line = one_error_line(run_main, [CONTENT, STYLE, *T, "-o", tmp_path / "out.png", "--size", "1\r2"], capsys)
    assert "\\r" in line


@pytest.mark.parametrize("damage", ["encrypted", "compression"])
def test_a_checkpoint_whose_archive_the_zip_reader_cannot_open_is_one_line(tmp_path, damage):
    """Flags zipfile raises other exceptions for (RuntimeError, NotImplementedError) are damage too."""
    import struct
    from types import SimpleNamespace
    path = tmp_path / "c.ckpt.npz"
    checkpoints.save(path, SimpleNamespace(x=np.zeros((1, 8, 8, 3), np.float32)), config_hash="0" * 16,
                     solver="lbfgs", iteration=1, offset=0, target=2, seconds=0.0, light=True)
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    while central != -1:                                     # every member's central directory entry
        if damage == "encrypted":
            data[central + 8] |= 1                           # general purpose flag: encrypted
        else:
            data[central + 10:central + 12] = struct.pack("<H", 99)   # an unknown compression method
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))
    assert checkpoints.read_meta(path) is None
    with pytest.raises(NSTError, match="unreadable"):
        checkpoints.load_light(path, (1, 8, 8, 3), "0" * 16)


def test_gzip_is_expanded_only_within_the_limit_and_only_whole(tmp_path):
    import gzip
    from nst_jax.files import untrusted
    assert untrusted.gunzip(gzip.compress(b"abc" * 1000), "log") == b"abc" * 1000
    with pytest.raises(NSTError, match="expands past 1024 bytes"):
        untrusted.gunzip(gzip.compress(b"\0" * 10**6), "log", limit=1024)
    with pytest.raises(NSTError, match="not gzip"):
        untrusted.gunzip(b"plain text", "log")
    with pytest.raises(NSTError, match="cut short"):
        untrusted.gunzip(gzip.compress(b"abc" * 1000)[:20], "log")


def test_a_link_is_refused_where_links_are_not_taken(tmp_path):
    from nst_jax.files import untrusted
    (tmp_path / "real").write_bytes(b"{}")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert untrusted.read_bytes(tmp_path / "link", "record") == b"{}"
    with pytest.raises(NSTError, match="a symbolic link"):
        untrusted.read_bytes(tmp_path / "link", "record", links=False)
