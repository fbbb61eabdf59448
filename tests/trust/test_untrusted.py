"""Files nst_jax reads back are untrusted input: every edited or corrupt sidecar, checkpoint, manifest, log,
timing file or weights file gives one `error:` line naming the file and the field, and nothing is lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nst_jax.model import convert
from nst_jax.studies import paper, report
from nst_jax.base.errors import NSTError
from nst_jax.run import main as run_main
from nst_jax.files.runfiles import RunFiles

from conftest import CONTENT, SMALL_FLAGS, STYLE, call_main, one_error_line


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 3-iteration run whose checkpoint was kept, and a one-run sweep folder, to corrupt copies of."""
    d = tmp_path_factory.mktemp("untrusted")
    code = run_main([str(CONTENT), str(STYLE), *SMALL_FLAGS, "--iterations", "3", "--quiet", "--keep-checkpoint",
                     "-o", str(d / "run" / "out.png")])
    assert code == 0
    from nst_jax.studies.sweep import sweep
    sweep(1, {"init": ["content", "noise"], "content_layers": [["relu3_2"]], "style_layers": [["relu1_1"]]},
          d / "sweep", {"content": str(CONTENT), "styles": (str(STYLE),), "size": 32, "checkpoint_every": 0},
          show_progress=False)
    return d


def _copy(finished, tmp_path, what):
    shutil.copytree(finished / what, tmp_path / what)
    return tmp_path / what


def _edit_checkpoint(files: RunFiles, **changes):
    with np.load(files.checkpoint) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta.update(changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(files.checkpoint, **arrays)


@pytest.mark.parametrize("change, fragment", [
    ({"iteration": "abc"}, "'iteration' must be an integer ≥ 0"),
    ({"iteration": [1, 2]}, "'iteration' must be an integer ≥ 0"),
    ({"iteration": -3}, "'iteration' must be an integer ≥ 0"),
    ({"offset": "x"}, "'offset' must be an integer ≥ 0"),
    ({"offset": 99}, "'offset' (99) is past its 'iteration'"),
    ({"seconds": "x"}, "'seconds' must be a finite number ≥ 0"),
    ({"light": "yes"}, "'light' must be true or false"),
    ({"config_hash": None}, "'config_hash' must be 16 hexadecimal digits"),
])
def test_checkpoint_metadata_of_the_wrong_kind(finished, tmp_path, capsys, change, fragment):
    files = RunFiles(_copy(finished, tmp_path, "run") / "out.png")
    _edit_checkpoint(files, **change)
    log_before = files.log.read_text()
    line = one_error_line(run_main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "6", "-o", files.image], capsys)
    assert fragment in line and str(files.checkpoint) in line
    assert files.log.read_text() == log_before   # nothing lost


def test_a_checkpoint_holding_nan_is_refused_not_resumed_to_black(finished, tmp_path, capsys):
    files = RunFiles(_copy(finished, tmp_path, "run") / "out.png")
    with np.load(files.checkpoint) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["leaf000"] = np.full_like(arrays["leaf000"], np.nan) if arrays["leaf000"].dtype.kind == "f" else arrays["leaf000"]
    for k in sorted(arrays):
        if k != "meta" and arrays[k].dtype.kind == "f" and arrays[k].size > 100:
            arrays[k] = np.full_like(arrays[k], np.nan)
            break
    np.savez(files.checkpoint, **arrays)
    line = one_error_line(run_main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "6", "-o", files.image], capsys)
    assert "not finite" in line and str(files.checkpoint) in line


@pytest.mark.parametrize("change, fragment", [
    ({"iteration": "999"}, "'iteration' must be an integer ≥ 0"),
    ({"iteration": None}, "'iteration' must be an integer ≥ 0"),
    ({"iteration": [3]}, "'iteration' must be an integer ≥ 0"),
    ({"loss": "big"}, "'loss' must be a finite number"),
    ({"parts": None}, "'parts' must be an object"),
    ({"settings_hash": "../x"}, "'settings_hash' must be 16 hexadecimal digits"),
    ({"converged": {"tol": "x", "window": 2}}, "'converged' must be an object with a tol"),
])
def test_sidecars_of_the_wrong_kind(finished, tmp_path, capsys, change, fragment):
    files = RunFiles(_copy(finished, tmp_path, "run") / "out.png")
    record = json.loads(files.sidecar.read_text())
    record.update(change)
    files.sidecar.write_text(json.dumps(record))
    line = one_error_line(run_main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "6", "-o", files.image], capsys)
    assert fragment in line and str(files.sidecar) in line


def test_a_sidecar_missing_a_field_or_not_an_object(finished, tmp_path, capsys):
    files = RunFiles(_copy(finished, tmp_path, "run") / "out.png")
    record = json.loads(files.sidecar.read_text())
    del record["parts"]
    files.sidecar.write_text(json.dumps(record))
    argv = [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "6", "-o", files.image]
    assert "'parts' is missing" in one_error_line(run_main, argv, capsys)
    files.sidecar.write_text("[1, 2]")     # names no output: not nst_jax's, so the run refuses to replace it
    with pytest.raises(NSTError, match="expected a JSON object, got list"):
        files.read_sidecar()
    assert "--overwrite" in one_error_line(run_main, argv, capsys)


@pytest.mark.parametrize("change, fragment", [
    ({"grid": [1, 2]}, "'grid' must be an object of field names and non-empty lists"),
    ({"grid": {"init": []}}, "'grid' must be an object of field names and non-empty lists"),
    ({"runs": ["a"]}, "'runs' must be an object of names and relative paths"),
    ({"runs": {"a": "/etc/passwd"}}, "'runs' must be an object of names and relative paths"),
    ({"runs": {"a": "../../elsewhere/result.png"}}, "'runs' must be an object of names and relative paths"),
    ({"iterations": None}, "'iterations' must be an integer ≥ 0"),
])
def test_sweep_manifests_of_the_wrong_kind(finished, tmp_path, capsys, change, fragment):
    out = _copy(finished, tmp_path, "sweep")
    manifest = json.loads((out / "sweep.json").read_text())
    manifest.update(change)
    (out / "sweep.json").write_text(json.dumps(manifest))
    line = one_error_line(report.main, [out], capsys)
    assert fragment in line and "sweep.json" in line and line.endswith("rerun the sweep to rewrite it")
    manifest = json.loads((finished / "sweep" / "sweep.json").read_text())
    manifest.pop("iterations")
    (out / "sweep.json").write_text(json.dumps(manifest))
    assert "'iterations' is missing" in one_error_line(report.main, [out], capsys)


def test_a_result_that_is_not_an_image_and_a_bare_number_in_a_log(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path, "sweep")
    run = next(p for p in out.iterdir() if (p / "result.png").exists())
    (run / "result.png").write_bytes(b"not a png at all")
    line = one_error_line(report.main, [out], capsys)
    assert "result.png" in line and "unreadable" in line
    (tmp_path / "b").mkdir()
    out2 = _copy(finished, tmp_path / "b", "sweep")
    run2 = next(p for p in out2.iterdir() if (p / "result.losses.jsonl").exists())
    with open(run2 / "result.losses.jsonl", "a") as f:
        f.write("5\n")
    line = one_error_line(report.main, [out2], capsys)
    assert "result.losses.jsonl, line" in line and "expected a JSON object" in line


def test_report_plot_outputs(finished, tmp_path, capsys):
    log = finished / "run" / "out.losses.jsonl"
    assert "give a .png, .pdf, .svg file name" in one_error_line(report.main, ["plot", log, "-o", tmp_path / "c.txt"],
                                                                  capsys)
    (tmp_path / "C.png").write_bytes(b"x")
    line = one_error_line(report.main, ["plot", log, "-o", tmp_path / "C.png" / "x.png"], capsys)
    assert "cannot write" in line and "is a file, not a folder" in line


def test_paper_output_and_timing_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    line = one_error_line(paper.main, ["--out", tmp_path / "afile" / "sub", "--scale", "toy"], capsys)
    assert "afile" in line
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "timing.json").write_text("{broken")
    line = one_error_line(paper.main, ["--out", tmp_path / "p", "--scale", "toy", "--only", "gram"], capsys)
    assert "timing.json" in line and "unreadable" in line
    (tmp_path / "p" / "timing.json").write_text('{"gram": "long"}')
    assert "timing.json" in one_error_line(paper.main, ["--out", tmp_path / "p", "--scale", "toy", "--only", "gram"],
                                           capsys)


def test_paper_on_an_unreachable_ray_cluster_writes_nothing(tmp_path, capsys):
    line = one_error_line(paper.main, ["--out", tmp_path / "p", "--engine", "ray", "--address", "127.0.0.1:1"], capsys)
    assert "127.0.0.1:1" in line and not (tmp_path / "p").exists()


def _weights_copy(tmp_path, mutate) -> Path:
    import h5py
    from nst_jax.model import weights
    path = tmp_path / "w.h5"
    shutil.copy(weights.default_path(), path)
    with h5py.File(path, "r+") as f:
        mutate(f)
        groups = {layer: {k: np.asarray(ds[()]) for k, ds in f[layer].items()} if isinstance(f[layer], h5py.Group)
                  else {} for layer in weights.CONV_NAMES}
        f.attrs["payload_sha256"] = weights.payload_digest(groups)   # a valid checksum over the edit
    return path


def _dataset_for_group(f):
    del f["conv1_1"]
    f["conv1_1"] = np.zeros(3)


def _string_kernel(f):
    del f["conv1_1"]["bias"]
    f["conv1_1"]["bias"] = np.array([b"x"] * 64)


@pytest.mark.parametrize("mutate, fragment", [(_dataset_for_group, "'conv1_1' is not a layer group"),
                                              (_string_kernel, "conv1_1/bias holds |S1 values, not numbers")])
@pytest.mark.parametrize("command", ["info", "verify"])
def test_weights_files_whose_layers_are_not_what_they_should_be(tmp_path, capsys, mutate, fragment, command):
    path = _weights_copy(tmp_path, mutate)
    line = one_error_line(convert.main, [command, path], capsys)
    assert fragment in line and str(path) in line
