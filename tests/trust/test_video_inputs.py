"""`python -m nst_jax.video` checks every input before any work: frames too thin for the optical flow, a
frame rate an mp4 cannot be written at, a style or --init that is not an image are one error line and
exit 2 before a flow is computed or a frame stylised; and a refused command leaves no file or folder it
made (only what was there before), also when it was refused in a stopped video's work folder."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av", reason="video needs PyAV: pip install 'nst_jax[video]'")
pytest.importorskip("cv2", reason="video needs OpenCV: pip install 'nst_jax[video]'")

from conftest import STYLE, one_error_line  # noqa: E402
from nst_jax.files import image  # noqa: E402
from nst_jax.base.errors import NSTError  # noqa: E402
from nst_jax.apps.video.__main__ import main, parse  # noqa: E402
from nst_jax.apps.video.driver import identity  # noqa: E402
from nst_jax.apps.video.files import flow_key  # noqa: E402
from nst_jax.apps.video.frames import read_clip, write_mp4  # noqa: E402

TINY = ["--size", "32", "--iterations", "2", "--quiet", "--content-layers", "relu3_2", "--style-layers",
        "relu1_2,relu2_1"]


def _video(path: Path, h: int, w: int, n: int = 2) -> Path:
    rng = np.random.default_rng(0)
    write_mp4(path, [image.resize(rng.random((8, 8, 3)).astype(np.float32), (h, w)) for _ in range(n)], Fraction(12))
    return path


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size if p.is_file() else -1 for p in root.rglob("*")}


def _refused(tmp_path: Path, argv: list, capsys) -> str:
    """The one error line of `argv` (output in a folder that does not exist yet); nothing left behind."""
    before = _tree(tmp_path)
    line = one_error_line(main, [*map(str, argv), *TINY, "-o", str(tmp_path / "new" / "out" / "v.mp4")], capsys)
    assert _tree(tmp_path) == before, line
    return line


@pytest.fixture
def clip(tmp_path) -> Path:
    return _video(tmp_path / "clip.mp4", 48, 64)


def test_frames_too_thin_for_the_optical_flow_are_refused_up_front(tmp_path, capsys):
    """At --size 32 a 2000×10 video's frames are 32×2 px; OpenCV's DIS raises below 12 px and ends the
    process (SIGSEGV) on e.g. 40×12 frames."""
    thin = _video(tmp_path / "thin.mp4", 10, 2000)
    line = _refused(tmp_path, [thin, STYLE], capsys)
    assert "thin.mp4" in line and "32×2 px" in line and "at least 16 px on each side" in line
    line = _refused(tmp_path, [_video(tmp_path / "flat.mp4", 40, 64), STYLE, "--flow-preset", "fast"], capsys)
    assert "at least 32 px" in line and "--flow-preset medium" in line


@pytest.mark.parametrize("fps", ["1e308", "inf", "nan", "0", "-3", "5000", "0.0001"])
def test_a_frame_rate_an_mp4_cannot_have_is_refused_before_any_frame(clip, tmp_path, fps, capsys):
    line = _refused(tmp_path, [clip, STYLE, "--fps", fps], capsys)
    assert line.startswith("error: --fps") and "between 0.001 and 1000 fps" in line


def test_a_clip_whose_rate_at_every_is_too_low_is_refused_before_any_frame(clip, tmp_path, capsys):
    line = _refused(tmp_path, [clip, STYLE, "--every", "100000", "--frames", "1"], capsys)
    assert "clip.mp4: its frame rate at --every 100000" in line and "0.00012 fps" in line


def test_a_style_or_init_that_is_not_an_image_is_refused_before_the_flows(clip, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not an image")
    line = _refused(tmp_path, [clip, STYLE, tmp_path / "notes.png"], capsys)
    assert "notes.png: not an image file" in line
    line = _refused(tmp_path, [clip, STYLE, "--init", tmp_path / "notes.png"], capsys)
    assert "notes.png: not an image file" in line
    line = _refused(tmp_path, [clip, STYLE, "--style-scale", "0.02"], capsys)   # 1×1 px: too small for relu2_1
    assert "too small for layer" in line


def test_a_refusal_after_work_began_removes_only_what_the_command_made(clip, tmp_path, capsys, monkeypatch):
    """Refused after the work folder, its marker, lock and input frames were written (the flows cannot be
    had): they go, and so do the output folders made; nothing that was there before."""
    from nst_jax.apps.video import flowcache

    def no_flows(*args, **kwargs):
        raise NSTError("no flows here")
    monkeypatch.setattr(flowcache, "load_pairs", no_flows)
    before = _tree(tmp_path)
    line = one_error_line(main, [clip, STYLE, *TINY, "-o", tmp_path / "new" / "out" / "v.mp4"], capsys)
    assert line == "error: no flows here" and _tree(tmp_path) == before


def test_a_refusal_in_a_stopped_videos_work_folder_removes_only_what_the_command_made(clip, tmp_path, capsys):
    """A stopped video's work folder (its marker) where a file sits in the place of the flow cache's folder
    for these frames: refused after the input frames were written. They go; the marker and the file stay.
    A folder of that name without the marker is the user's: refused up front and kept."""
    frames = read_clip(str(clip), 32).frames
    pngs = []
    for i, f in enumerate(frames):
        pngs.append(tmp_path / f"f{i}.png")
        pngs[-1].write_bytes(image.png_bytes(f))
    out, work = tmp_path / "made" / "v.mp4", tmp_path / "made" / "v.work"
    (work / "flows").mkdir(parents=True)
    cfg, opts, _ = parse([str(clip), str(STYLE), *TINY, "-o", str(out)])
    (work / "nst_jax-video.json").write_text(json.dumps({"video": "v.mp4", "identity": identity(cfg, read_clip(
        str(clip), 32), opts)}))
    planted = work / "flows" / flow_key(pngs, "medium")
    planted.write_text("mine")
    before = _tree(tmp_path)
    line = one_error_line(main, [clip, STYLE, *TINY, "-o", out], capsys)
    assert str(planted) in line and "is a file where nst_jax keeps a folder" in line
    assert _tree(tmp_path) == before and planted.read_text() == "mine"
    shutil.rmtree(work)
    work.mkdir()                                             # the user's own folder of that name: kept
    line = one_error_line(main, [clip, STYLE, *TINY, "-o", out], capsys)
    assert "v.work exists and was not written by nst_jax.video" in line
    assert sorted(_tree(tmp_path / "made")) == ["v.work"]
