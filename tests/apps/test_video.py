"""Video (Ruder et al.): warping and consistency weights exactly on small arrays; the flow and the
warping against the sample clip's known motion; the temporal loss; the schedule of each method; a
three-frame video end to end (a playable mp4, one compile), resumed exactly after kill -9, its working
files in one folder beside it until it is done; bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av", reason="video needs PyAV: pip install 'nst_jax[video]'")
pytest.importorskip("cv2", reason="video needs OpenCV: pip install 'nst_jax[video]'")

import jax.numpy as jnp  # noqa: E402

from nst_jax.files import image  # noqa: E402
from nst_jax.objective import losses
from nst_jax.apps.video import flow, methods, sample, temporal  # noqa: E402
from nst_jax.apps.video.files import VideoFiles  # noqa: E402
from nst_jax.apps.video.frames import count_frames, read_clip, write_mp4  # noqa: E402

from conftest import ROOT, STYLE, call_main, one_error_line  # noqa: E402

TINY = ["--size", "32", "--content-layers", "relu3_2", "--style-layers", "relu1_2,relu2_1", "--print-every", "0"]


def _texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.random((h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    return image.resize(small, (h, w))


# ------------------------------------------------------------------------ exact, on small arrays

def test_warping_with_a_known_flow_reproduces_a_shifted_image():
    img = _texture(24, 32)
    shift = np.zeros((24, 32, 2), np.float32)
    shift[..., 0], shift[..., 1] = 3.0, -2.0           # each pixel p of the result shows img at p + (3, −2)
    warped = flow.warp(img, shift)
    np.testing.assert_allclose(warped[2:, :-3], img[:-2, 3:], atol=1e-6)
    half = flow.warp(img, np.full((24, 32, 2), 0.5, np.float32))   # bilinear: the mean of four neighbours
    np.testing.assert_allclose(half[:-1, :-1], (img[:-1, :-1] + img[1:, :-1] + img[:-1, 1:] + img[1:, 1:]) / 4,
                               atol=1e-5)


def _moving_square(h=32, w=40, x0=10, side=8, dx=6):
    """Flows of a square moving right by dx over a still background: forward (a → b), backward (b → a)."""
    fwd, bwd = np.zeros((h, w, 2), np.float32), np.zeros((h, w, 2), np.float32)
    fwd[12:12 + side, x0:x0 + side, 0] = dx
    bwd[12:12 + side, x0 + dx:x0 + dx + side, 0] = -dx
    return fwd, bwd


def test_consistency_weights_are_zero_where_a_region_is_disoccluded():
    fwd, bwd = _moving_square()
    c = flow.consistency(fwd, bwd)
    assert c.shape == (32, 40) and set(np.unique(c)) == {0.0, 1.0}
    assert np.all(c[12:20, 10:16] == 0)          # where the square was and the background now shows
    assert np.all(c[2:8, 2:38] == 1) and np.all(c[25:, :] == 1)   # the still background, far from it
    assert np.all(c[13:19, 17:23] == 1)          # inside the square, where it moved consistently
    assert c[12:20, 15:18].min() == 0            # its trailing edge is a motion boundary
    outside = flow.consistency(np.zeros((8, 8, 2), np.float32), np.full((8, 8, 2), -3.0, np.float32))
    assert np.all(outside[:3, :] == 0) and np.all(outside[:, :3] == 0)  # comes from outside the frame


def test_temporal_loss_is_zero_for_a_perfectly_warped_frame_and_follows_its_formula():
    x = jnp.asarray(_texture(8, 12)[None])
    c = np.ones((8, 12, 1), np.float32)
    perfect = jnp.asarray(np.concatenate([np.asarray(x[0]), c], -1)[None])
    assert float(losses.temporal_loss(x, perfect)) == 0.0
    other = np.asarray(x[0]) + 0.1
    c[:, :6] = 0
    held = jnp.asarray(np.concatenate([other, c], -1)[None])
    expected = np.mean(c * (25.5 ** 2) * np.ones_like(other))   # only the trusted half counts
    assert float(losses.temporal_loss(x, held)) == pytest.approx(expected, rel=1e-5)
    two = jnp.concatenate([held, perfect], axis=0)               # slots add
    assert float(losses.temporal_loss(x, two)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="temporal_loss"):
        losses.temporal_loss(x, held[..., :3])


def test_long_term_weights_keep_each_pixel_for_its_most_recent_view_only():
    c1 = np.array([[1, 0, 0, 1]], np.float32)
    c2 = np.array([[1, 1, 0, 0]], np.float32)
    c4 = np.array([[1, 1, 1, 0]], np.float32)
    out = temporal.long_term_weights([c1, c2, c4])
    np.testing.assert_array_equal(out[0], c1)
    np.testing.assert_array_equal(out[1], [[0, 1, 0, 0]])
    np.testing.assert_array_equal(out[2], [[0, 0, 1, 0]])


def test_targets_and_the_multipass_blend():
    a, b = _texture(8, 8, 1), _texture(8, 8, 2)
    still = flow.Pair(np.zeros((8, 8, 2), np.float32), np.ones((8, 8), np.float32))
    t = temporal.targets([(a, still)], 3, (8, 8))
    assert t.shape == (3, 8, 8, 4) and t.dtype == np.float32
    np.testing.assert_allclose(t[0, ..., :3], a, atol=1e-6)
    assert np.all(t[0, ..., 3] == 1) and np.all(t[1:] == 0)     # unused slots weigh nothing
    half = flow.Pair(still.flow, np.concatenate([np.ones((8, 4)), np.zeros((8, 4))], 1).astype(np.float32))
    mixed = temporal.blend(a, b, half, 0.5)
    np.testing.assert_allclose(mixed[:, :4], 0.5 * a[:, :4] + 0.5 * b[:, :4], atol=1e-6)
    np.testing.assert_allclose(mixed[:, 4:], a[:, 4:], atol=1e-6)   # untrusted: the frame's own result


def test_the_schedule_of_each_method():
    m = methods.Method
    ind = methods.schedule(m("independent"), 3, 10, 5)
    assert [[(s.frame, s.iterations, s.init, s.earlier) for s in p] for p in ind] == \
        [[(0, 10, "config", ()), (1, 10, "config", ()), (2, 10, "config", ())]]
    short = methods.schedule(m("short"), 3, 10, 5)[0]
    assert [(s.init, s.earlier, s.iterations) for s in short] == [("config", (), 10), ("warp", (0,), 5),
                                                                  ("warp", (1,), 5)]
    long = methods.schedule(m("long", long_term=(1, 2)), 4, 10, 5)[0]
    assert [s.earlier for s in long] == [(), (0,), (1, 0), (2, 1)]
    multi = methods.schedule(m("multipass", passes=3), 3, 10, 5)
    assert [[(s.frame, s.init, s.earlier) for s in p] for p in multi[1:]] == [
        [(0, "own", ()), (1, "blend", (0,)), (2, "blend", (1,))],
        [(2, "own", ()), (1, "blend", (2,)), (0, "blend", (1,))]]
    assert all(s.independent for s in multi[0]) and [s.independent for s in multi[1]] == [True, False, False]
    assert methods.pairs(m("multipass", passes=3), multi, 3) == [(0, 1), (1, 0), (1, 2), (2, 1)]


# ------------------------------------------------------------------------ against the known motion

def test_flow_and_warping_match_the_sample_clips_known_motion():
    from scipy.ndimage import binary_dilation
    for motion in (sample.PAN_ZOOM, sample.DRIFT):
        frames = sample.frames(motion, 3)
        for t in range(2):
            truth, disc = sample.true_flow(motion, t)
            away = ~binary_dilation(disc, iterations=6)
            away[:8], away[-8:], away[:, :8], away[:, -8:] = False, False, False, False
            computed = flow.dis_flow(frames[t], frames[t + 1])
            error = np.linalg.norm(computed - truth, axis=-1)
            assert error[away].mean() < 0.3, error[away].mean()           # sub-pixel on the background
            assert np.linalg.norm(computed[disc].mean(0) - motion.disc_v) < 1.0   # the moving part
            p = flow.pair(frames[t], frames[t + 1])
            assert p.weights[away].mean() > 0.9
            warped = flow.warp(frames[t], p.flow)
            trusted = p.weights > 0.5
            assert np.abs(warped - frames[t + 1]).mean(-1)[trusted].mean() < 0.02
    # the disc uncovers background behind it: those pixels of the next frame are not trusted
    m = sample.PAN_ZOOM
    frames = sample.frames(m, 2)
    p = flow.pair(frames[0], frames[1])
    before, after = sample._disc(m, 0) > 0.5, sample._disc(m, 1) > 0.5
    uncovered = before & ~binary_dilation(after, iterations=2)
    assert uncovered.sum() > 30 and p.weights[uncovered].mean() < 0.35


# ------------------------------------------------------------------------ frames in and out

def test_frames_from_a_video_a_gif_and_a_folder(tmp_path):
    frames = sample.frames(sample.PAN_ZOOM, 6)
    write_mp4(tmp_path / "clip.mp4", frames, Fraction(12))
    assert count_frames(tmp_path / "clip.mp4") == 6
    clip = read_clip(str(tmp_path / "clip.mp4"), 64, start=1, count=2, every=2)
    assert clip.numbers == [1, 3] and clip.fps == 6 and clip.frames[0].shape == (42, 64, 3)
    assert np.abs(clip.frames[0] - image.resize(frames[1], (42, 64))).mean() < 0.03   # H.264 at crf 16
    from PIL import Image
    gif = [Image.fromarray(image.to_uint8(f)) for f in frames[:4]]
    gif[0].save(tmp_path / "clip.gif", save_all=True, append_images=gif[1:], duration=100, loop=0)
    g = read_clip(str(tmp_path / "clip.gif"), 48)
    assert len(g.frames) == 4 and g.fps == 10 and g.frames[0].shape == (32, 48, 3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames[:3]):   # natural order: 2 before 10
        image.save_image(folder / f"f{[2, 10, 1][i]}.png", f)
    d = read_clip(str(folder), 32, fps=8)
    assert d.fps == 8 and len(d.frames) == 3
    np.testing.assert_allclose(d.frames[0], image.resize(image.load_image(folder / "f1.png"), (20, 32)), atol=1e-6)


# ------------------------------------------------------------------------ end to end

def _clip_file(tmp_path, n=3):
    path = tmp_path / "clip.mp4"
    write_mp4(path, sample.frames(sample.PAN_ZOOM, n), Fraction(12))
    return path


def test_a_three_frame_video_end_to_end_compiles_once_and_reruns_as_nothing_to_do(tmp_path, capsys):
    from nst_jax.transfer import steps
    from nst_jax.apps.video.__main__ import main
    clip = _clip_file(tmp_path)
    out = tmp_path / "out" / "styled.mp4"
    before = steps.compiled_solver.cache_info().currsize
    traced = sum(v.traces[0] for v in _solvers())
    code, stdout, err = call_main(main, [clip, STYLE, "-o", out, *TINY, "--iterations", "4",
                                         "--frame-iterations", "3"], capsys)
    assert code == 0, err
    assert count_frames(out) == 3 and "3 frames at 12 fps" in stdout
    files = VideoFiles(out)
    record = json.loads(files.sidecar.read_text())
    assert record["frames"] == 3 and [r["iteration"] for r in record["runs"]] == [4, 3, 3]
    assert record["flow"]["computed"] == 2 and record["consistency"]["mean warping error"] > 0
    assert sorted(p.name for p in files.frames.iterdir()) == ["0001.png", "0002.png", "0003.png"]
    assert steps.compiled_solver.cache_info().currsize - before <= 1          # one program for every frame
    assert sum(v.traces[0] for v in _solvers()) - traced == 1                 # its step traced once
    assert any("frame 3/3" in line and "ETA" in line for line in err)
    assert sorted(os.listdir(out.parent)) == ["styled.frames", "styled.json", "styled.mp4"]   # no work folder
    stamps = [p.stat().st_mtime_ns for p in (out, files.sidecar, files.frames / "0003.png")]
    code, stdout, err = call_main(main, [clip, STYLE, "-o", out, *TINY, "--iterations", "4", "--frame-iterations",
                                         "3", "--print-every", "5"], capsys)
    assert code == 0 and stdout.startswith(f"{out} was already done: 3 frames")
    assert err == [f"video: {out} is already done (the same frames, styles and settings); --restart makes it again"]
    assert [p.stat().st_mtime_ns for p in (out, files.sidecar, files.frames / "0003.png")] == stamps
    assert sorted(os.listdir(out.parent)) == ["styled.frames", "styled.json", "styled.mp4"]   # nothing run again


def test_a_video_keeps_its_working_files_in_one_folder_named_in_its_header_until_it_is_done(
        tmp_path, capsys, monkeypatch):
    """Run from a working folder and stopped after its first frame: beside the output there is only the
    work folder the header named; the same command continues there, and the finished video leaves its
    .mp4, sidecar and frames, nothing else, in the working folder or beside the input."""
    from nst_jax.apps.video import progress
    from nst_jax.apps.video.__main__ import main
    clip = _clip_file(tmp_path)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    argv = [clip, STYLE, "-o", "v.mp4", *TINY, "--iterations", "3", "--frame-iterations", "2"]
    end = progress.VideoProgress.end

    def stop_after_the_first_run(self, *args):
        end(self, *args)
        raise KeyboardInterrupt
    monkeypatch.setattr(progress.VideoProgress, "end", stop_after_the_first_run)
    code, _, err = call_main(main, argv, capsys)
    assert code == 130 and err[-1].startswith("interrupted:") and "work folder" in err[-1]
    assert err[0] == f"video: 3 frames of {clip} at 32×20 px, 12 fps, short method → v.mp4"
    assert err[1].startswith("  working files: v.work/ (frame runs, checkpoints, flows), removed when the video")
    assert os.listdir(".") == ["v.work"]
    assert sorted(os.listdir("v.work")) == ["flows", "input", "nst_jax-video.json", "p1"]   # the lock released
    assert os.listdir("v.work/p1") == ["0001"]
    monkeypatch.setattr(progress.VideoProgress, "end", end)
    code, stdout, err = call_main(main, argv, capsys)
    assert code == 0 and stdout.startswith("wrote v.mp4: 3 frames"), err
    assert any(line.startswith("video: frame 1/3 already done") for line in err)   # continued, not redone
    assert [r["iteration"] for r in json.loads(open("v.json").read())["runs"]] == [3, 2, 2]
    assert sorted(os.listdir(".")) == ["v.frames", "v.json", "v.mp4"]
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "cwd"] and count_frames("v.mp4") == 3
    code, stdout, err = call_main(main, [*argv, "--frames", "2"], capsys)   # other frames: made again
    assert code == 0 and stdout.startswith("wrote v.mp4: 2 frames"), err
    assert sorted(os.listdir(".")) == ["v.frames", "v.json", "v.mp4"] and count_frames("v.mp4") == 2
    assert sorted(os.listdir("v.frames")) == ["0001.png", "0002.png"]             # the third frame's is gone


def _solvers():
    from nst_jax.transfer import steps
    import gc
    return [o for o in gc.get_objects() if isinstance(o, steps.Compiled)]


def test_kill_9_in_the_middle_then_rerun_gives_the_same_frames(tmp_path, capsys):
    from nst_jax.apps.video.__main__ import main
    clip = _clip_file(tmp_path)
    argv = [str(clip), str(STYLE), *TINY, "--iterations", "6", "--frame-iterations", "30", "--checkpoint-every", "2"]
    code, _, err = call_main(main, [*argv, "-o", tmp_path / "whole" / "v.mp4"], capsys)
    assert code == 0, err
    killed = VideoFiles(tmp_path / "killed" / "v.mp4")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "nst_jax", "video", *argv, "-o", str(killed.video), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    second = killed.work / "p1" / "0002" / "frame.ckpt.npz"
    deadline = time.time() + 300
    while not second.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert second.exists() and not (killed.work / "p1" / "0003").exists()   # killed inside frame 2
    assert os.listdir(killed.root) == ["v.work"]                             # stopped: its work folder only
    code, _, err = call_main(main, [*argv, "-o", killed.video, "--keep-work"], capsys)
    assert code == 0, err
    assert sorted(os.listdir(killed.root)) == ["v.frames", "v.json", "v.mp4", "v.work"]
    whole = VideoFiles(tmp_path / "whole" / "v.mp4")
    for i in range(3):   # the same pixels (the PNG's text chunk holds each run's own timing)
        np.testing.assert_array_equal(image.load_image(killed.frames / f"{i + 1:04d}.png"),
                                      image.load_image(whole.frames / f"{i + 1:04d}.png"))
    log = [json.loads(line)["iteration"] for line in
           (killed.work / "p1" / "0002" / "frame.losses.jsonl").read_text().splitlines()]
    assert log == list(range(31))                                            # no gap, no repeat


def test_multipass_and_long_term_run_and_write_their_passes(tmp_path, capsys):
    from nst_jax.apps.video.__main__ import main
    clip = _clip_file(tmp_path)
    out = tmp_path / "mp.mp4"
    code, _, err = call_main(main, [clip, STYLE, "-o", out, *TINY, "--iterations", "3", "--frame-iterations", "2",
                                    "--method", "multipass", "--passes", "3"], capsys)
    assert code == 0, err
    record = json.loads(VideoFiles(out).sidecar.read_text())
    assert [(r["pass"], r["frame"], r["init"]) for r in record["runs"]][3:] == [
        (2, 1, "own"), (2, 2, "blend"), (2, 3, "blend"), (3, 3, "own"), (3, 2, "blend"), (3, 1, "blend")]
    assert count_frames(out) == 3
    out = tmp_path / "long.mp4"
    code, _, err = call_main(main, [clip, STYLE, "-o", out, *TINY, "--iterations", "3", "--frame-iterations", "2",
                                    "--method", "long", "--long-term", "1,2", "--keep-work"], capsys)
    assert code == 0, err
    held = np.load(VideoFiles(out).work / "p1" / "0003" / "temporal.npy")
    assert held.shape == (2, 20, 32, 4) and held[1, ..., 3].max() <= 1
    assert np.all(held[0, ..., 3] + held[1, ..., 3] <= 1)                  # each pixel held to one frame


def _bad_cases(tmp_path):
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "empty").mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    image.save_image(mixed / "1.png", np.zeros((20, 30, 3), np.float32))
    image.save_image(mixed / "2.png", np.zeros((20, 32, 3), np.float32))
    clip = _clip_file(tmp_path)
    (tmp_path / "afile").write_text("x")
    return [([tmp_path / "notes.txt", STYLE], ["notes.txt", "not a video"]),
            ([tmp_path / "empty", STYLE], ["no frames"]),
            ([mixed, STYLE], ["2.png", "one size"]),
            ([clip, STYLE, "--frames", "5"], ["--frames 5", "3 frames"]),
            ([clip, STYLE, "--start", "7"], ["--start 7", "past the end"]),
            ([clip, STYLE, "-o", tmp_path / "afile" / "v.mp4"], ["cannot write"]),
            ([clip, STYLE, "-o", tmp_path / "v.avi"], [".mp4"]),
            ([tmp_path / "missing.mp4", STYLE], ["missing.mp4", "not found"]),
            ([clip, STYLE, "--method", "long", "--long-term", "0"], ["--long-term"])]


def test_bad_input_gives_one_error_line_and_exit_2(tmp_path, capsys):
    from nst_jax.apps.video.__main__ import main
    for argv, fragments in _bad_cases(tmp_path):
        line = one_error_line(main, [*argv, *TINY, "--iterations", "1", "-o", tmp_path / "o" / "v.mp4"]
                              if "-o" not in argv else [*argv, *TINY, "--iterations", "1"], capsys)
        for fragment in fragments:
            assert fragment in line, (fragment, line)


def test_a_planted_link_and_edited_files_are_refused_or_recomputed(tmp_path, capsys):
    from nst_jax.apps.video.__main__ import main
    clip = _clip_file(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "o").mkdir()
    os.symlink(elsewhere, tmp_path / "o" / "v.work")      # planted before any run: not this video's
    line = one_error_line(main, [clip, STYLE, *TINY, "--iterations", "1", "-o", tmp_path / "o" / "v.mp4"], capsys)
    assert "v.work exists and was not written by nst_jax.video" in line and not list(elsewhere.iterdir())
    os.unlink(tmp_path / "o" / "v.work")
    argv = [clip, STYLE, *TINY, "--iterations", "1", "-o", tmp_path / "o" / "v.mp4", "--keep-work"]
    assert call_main(main, argv, capsys)[0] == 0
    import shutil
    shutil.rmtree(tmp_path / "o" / "v.work" / "p1")
    os.symlink(elsewhere, tmp_path / "o" / "v.work" / "p1")   # planted in a folder of the video's own
    line = one_error_line(main, [*argv, "--restart", "--quiet"], capsys)
    assert "symbolic link" in line and not list(elsewhere.iterdir())
    out = tmp_path / "p" / "v.mp4"
    argv = [clip, STYLE, *TINY, "--iterations", "2", "--frame-iterations", "1", "-o", out, "--keep-work"]
    assert call_main(main, argv, capsys)[0] == 0
    cached = next((VideoFiles(out).work / "flows").glob("*/0001-0002.npy"))
    good = cached.read_bytes()
    cached.write_bytes(b"garbage")                       # an edited cache is computed again, not trusted
    code, _, err = call_main(main, [*argv, "--restart"], capsys)
    assert code == 0 and any("computing 1 of 2" in line for line in err) and cached.read_bytes() == good
    held = VideoFiles(out).work / "p1" / "0002" / "temporal.npy"
    np.save(held, np.full((1, 20, 32, 4), 7.0, np.float32))
    from nst_jax.run import main as run_main
    line = one_error_line(run_main, [VideoFiles(out).work / "input" / "0002.png", STYLE, *TINY, "--temporal", held,
                                     "--iterations", "1", "-o", tmp_path / "r.png"], capsys)
    assert "--temporal" in line and "[0, 1]" in line


def test_later_frames_stop_by_their_own_rule_and_clips_share_one_command(tmp_path, capsys):
    from nst_jax.apps.video.__main__ import main
    clip = _clip_file(tmp_path)
    other = tmp_path / "other.mp4"
    write_mp4(other, sample.frames(sample.DRIFT, 2), Fraction(12))
    out = tmp_path / "videos"
    code, stdout, err = call_main(main, [clip, STYLE, "--clips", other, "-o", out, *TINY, "--iterations", "5",
                                         "--frame-iterations", "40", "--frame-tol", "0.5", "--tol-window", "2"],
                                  capsys)
    assert code == 0, err
    assert count_frames(out / "clip.mp4") == 3 and count_frames(out / "other.mp4") == 2
    assert "wrote" in stdout and "other.mp4" in stdout and any(line.startswith("[other]") for line in err)
    runs = json.loads(VideoFiles(out / "clip.mp4").sidecar.read_text())["runs"]
    assert runs[0]["iteration"] == 5 and all(r["iteration"] < 40 for r in runs[1:])   # they stopped early
    assert sorted(os.listdir(out)) == ["clip.frames", "clip.json", "clip.mp4", "other.frames", "other.json",
                                       "other.mp4"]                           # no work folder left
    line = one_error_line(main, [clip, STYLE, "--clips", tmp_path / "x" / "clip.mp4", "-o", out, *TINY], capsys)
    assert "named clip" in line
    line = one_error_line(main, [clip, STYLE, "--clips", other, "-o", tmp_path / "v.mp4", *TINY], capsys)
    assert "names a folder" in line


def test_nothing_the_user_had_is_overwritten(tmp_path, capsys):
    from nst_jax.apps.video.__main__ import main
    clip = _clip_file(tmp_path)
    line = one_error_line(main, [clip, STYLE, *TINY, "-o", clip], capsys)
    assert "overwrite the input" in line
    (tmp_path / "mine.json").write_text('{"my": "notes"}')
    line = one_error_line(main, [clip, STYLE, *TINY, "-o", tmp_path / "mine.mp4"], capsys)
    assert "mine.json exists and was not written by nst_jax.video" in line
    frames = tmp_path / "shots.frames"
    frames.mkdir()
    image.save_image(frames / "0001.png", np.zeros((20, 32, 3), np.float32))
    line = one_error_line(main, [frames, STYLE, *TINY, "-o", tmp_path / "shots.mp4"], capsys)
    assert "overwrite the input" in line
    assert (tmp_path / "mine.json").read_text() == '{"my": "notes"}' and len(list(frames.iterdir())) == 1


def test_the_video_bench_writes_its_table_and_pictures(tmp_path):
    import argparse
    from bench.video import markdown, rows_for
    from bench.video_figures import write_previews
    from nst_jax.apps.video.frames import Clip
    args = argparse.Namespace(size=32, frames=3, iterations=4, frame_iterations=2, passes=2, tol=1e-3,
                              temporal_weight=1000.0)
    frames = sample.frames(sample.PAN_ZOOM, 3)
    rows = []
    for k, (label, how) in enumerate(rows_for(args)):
        folder = tmp_path / f"run{k}"
        folder.mkdir()
        for i, f in enumerate(frames):
            image.save_image(folder / f"{i + 1:04d}.png", np.clip(f + 0.05 * k, 0, 1))
        rows.append({"label": label, "error": 1.0 + k, "per frame": [1.0 + k, 2.0], "style": 3e5, "content": 6e5,
                     "seconds": 2.5, "iterations": 50.0, "frames_dir": str(folder)})
    assert [r["label"].split(" ")[0] for r in rows] == ["independent", "short-term", "short-term,", "long-term",
                                                        "multi-pass"]
    write_previews(Clip(frames, Fraction(12), "pan_zoom", [0, 1, 2]), rows, tmp_path / "docs")
    assert {p.name for p in (tmp_path / "docs").iterdir()} == {"preview.gif", "preview.jpg", "warping_error.png"}
    table = markdown({"pan_zoom": {"methods": rows, "input": 2.5}}, args, "AMD EPYC, 2 cores", "0.1 0.2 0.3")
    assert "Machine: AMD EPYC, 2 cores" in table and "| multi-pass (2 passes) | 5.00 |" in table


def test_a_videos_identity_counts_what_a_runs_settings_hash_leaves_out():
    """--iterations, --tol and --tol-window change a video's frames though no run's settings hash names them:
    a rerun with any of them changed is not 'already done'."""
    import dataclasses
    from nst_jax.apps.video.driver import Options, identity
    from nst_jax.apps.video.frames import Clip
    from nst_jax.transfer.config import with_preset
    frames = [np.full((8, 12, 3), v, np.float32) for v in (0.2, 0.4)]
    clip = Clip(frames, Fraction(12), "clip", [0, 1])
    cfg = with_preset("default", content="clip", styles=(str(STYLE),), size=12, iterations=3)
    first = identity(cfg, clip, Options())
    assert identity(cfg, clip, Options()) == first
    for change in ({"iterations": 4}, {"tol": 1e-3}, {"tol_window": 7}):
        assert identity(dataclasses.replace(cfg, **change), clip, Options()) != first, change
