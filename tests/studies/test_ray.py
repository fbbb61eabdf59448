"""Sweeps on Ray (a local cluster started in this process): same images as the local engine, a killed
worker's chunk resumed from its last checkpoint, the same resume semantics, grids over images."""

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from nst_jax.files import image
from nst_jax.studies.sweep import main as sweep_main, sweep
from nst_jax.files.runfiles import RunFiles

from conftest import CONTENT, SAMPLES, STYLE, one_error_line

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nst_jax[cluster]')")
pytestmark = pytest.mark.ray

SMALL = {"content_layers": [["relu3_2"]], "style_layers": [["relu1_1", "relu2_1"]]}
BASE = {"content": str(CONTENT), "styles": (str(STYLE),), "size": 32, "checkpoint_every": 2, "print_every": 0}


@pytest.fixture(scope="module", autouse=True)
def cluster():
    from nst_jax.studies import ray_engine
    ray_engine.connect(None, num_cpus=2)
    yield
    ray.shutdown()


def _finals(out):
    return {d.name: image.load_image(d / "result.png") for d in sorted(out.iterdir()) if (d / "result.png").exists()}


def test_grid_over_images_on_ray_equals_local_and_resumes_the_same_way(tmp_path):
    from PIL import Image
    mirrored = tmp_path / "mirrored.png"  # a second content of the same size: one compiled program per worker
    Image.open(CONTENT).transpose(Image.FLIP_LEFT_RIGHT).save(mirrored)
    IMAGES = {"content": [str(CONTENT), str(mirrored)], "styles": [str(STYLE), str(SAMPLES / "the_scream.jpg")],
              **SMALL}
    import tempfile
    task_folders = lambda: set(Path(tempfile.gettempdir()).glob("nst_jax_task_*"))
    before = task_folders()
    runs = sweep(4, IMAGES, tmp_path / "ray", BASE, engine="ray", show_progress=False, report=True)
    assert task_folders() == before   # each task removed its temporary folder
    assert [n for n, _ in runs] == ["content-chelsea_styles-ihc", "content-chelsea_styles-the_scream",
                                    "content-mirrored_styles-ihc", "content-mirrored_styles-the_scream"]
    sweep(4, IMAGES, tmp_path / "local", BASE, show_progress=False)
    a, b = _finals(tmp_path / "local"), _finals(tmp_path / "ray")
    assert a.keys() == b.keys() and len(a) == 4
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=1e-5)
    files = RunFiles(tmp_path / "ray" / runs[0][0] / "result.png")
    record = files.read_sidecar()
    assert record["config"]["output"] == str(files.image) and record["config"]["content"] == str(CONTENT)
    stamp = files.image.stat().st_mtime_ns
    sweep(4, IMAGES, tmp_path / "ray", BASE, engine="ray", show_progress=False, report=True)  # nothing to do
    assert files.image.stat().st_mtime_ns == stamp
    sweep(6, IMAGES, tmp_path / "ray", BASE, engine="ray", show_progress=False, report=True)  # continues exactly
    sweep(6, IMAGES, tmp_path / "local", BASE, show_progress=False)
    assert [r["iteration"] for r in files.read_log()] == list(range(7))
    for name, img in _finals(tmp_path / "local").items():
        np.testing.assert_allclose(_finals(tmp_path / "ray")[name], img, atol=1e-5)
    page = (tmp_path / "ray" / "index.html").read_text()
    assert "Progress: finished" in page and "http-equiv='refresh'" not in page
    assert "content=mirrored.png" in page and "styles=the_scream.jpg" in page  # image axes in the sheets


def test_a_killed_worker_is_resumed_from_its_last_checkpoint(tmp_path):
    grid = {"init": ["noise", "content"], **SMALL}
    killed = []

    def kill_first(chunk, bundle):
        if not killed and not bundle["done"]:
            killed.append((bundle["pid"], bundle["iteration"]))
            os.kill(bundle["pid"], signal.SIGKILL)

    sweep(8, grid, tmp_path / "ray", BASE, engine="ray", show_progress=False, on_bundle=kill_first)
    sweep(8, grid, tmp_path / "local", BASE, show_progress=False)
    assert killed and killed[0][1] == 2  # killed after its first checkpoint reached the driver
    a, b = _finals(tmp_path / "local"), _finals(tmp_path / "ray")
    assert a.keys() == b.keys() and len(a) == 2
    for name in a:
        np.testing.assert_array_equal(b[name], a[name])
        assert [r["iteration"] for r in RunFiles(tmp_path / "ray" / name / "result.png").read_log()] == list(range(9))


def test_unreachable_address_is_one_line(tmp_path, capsys):
    line = one_error_line(sweep_main, ["1", "--engine", "ray", "--address", "127.0.0.1:1", "--out",
                                       tmp_path / "o", "--size", "32"], capsys)
    assert "--address 127.0.0.1:1" in line and "cannot reach" in line
    assert not (tmp_path / "o").exists()


_DRIVER = """
import os, time
from nst_jax.studies import ray_engine
ray_engine.connect(None, num_cpus=1)
print("READY", flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_killed_driver_leaves_no_ray_process(tmp_path):
    import subprocess
    import sys
    import time
    from conftest import ROOT
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert driver.stdout.readline().strip() == "READY"
    time.sleep(2)  # the agents start after the cluster
    from nst_jax.studies.watchdog import alive, descendants, process_table
    started = descendants(driver.pid, process_table())
    assert len(started) >= 4  # gcs, raylet, agents, the watchdog
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 40
    while time.time() < deadline and any(alive(p, s) for p, s in started.items()):
        time.sleep(0.5)
    assert not [p for p, s in started.items() if alive(p, s)]


def test_a_video_on_ray_computes_its_flows_and_first_pass_there_with_the_same_frames(tmp_path):
    """--engine ray: the flows and the independent first pass of the multi-pass method as Ray tasks;
    the frames equal a local run's."""
    pytest.importorskip("av", reason="video needs PyAV: pip install 'nst_jax[video]'")
    pytest.importorskip("cv2", reason="video needs OpenCV: pip install 'nst_jax[video]'")
    from fractions import Fraction
    from nst_jax.transfer.config import with_preset
    from nst_jax.apps.video import sample
    from nst_jax.apps.video.driver import Options, run_video
    from nst_jax.apps.video.files import VideoFiles
    from nst_jax.apps.video.frames import Clip, frame_size
    from nst_jax.apps.video.methods import Method
    frames = [image.resize(f, frame_size(f.shape[:2], 32)) for f in sample.frames(sample.PAN_ZOOM, 3)]
    clip = Clip(frames, Fraction(12), "pan_zoom", [0, 1, 2])
    cfg = with_preset("default", content="clip", styles=(str(STYLE),), size=32, iterations=3, print_every=0,
                      checkpoint_every=2, content_layers=("relu3_2",), style_layers=("relu1_1", "relu2_1"))
    lines = []
    method = Method("multipass", passes=3)
    ray_rec = run_video(cfg, clip, str(tmp_path / "ray" / "v.mp4"),
                        Options(method, 2, engine="ray", keep_work=True), say=lines.append)
    assert any("on Ray" in line for line in lines) and any("3 independent runs as Ray tasks" in line for line in lines)
    local_rec = run_video(cfg, clip, str(tmp_path / "local" / "v.mp4"), Options(method, 2, keep_work=True),
                          say=lambda line: None)
    assert ray_rec["flow"]["computed"] == local_rec["flow"]["computed"] == 4
    for i in range(3):
        a = image.load_image(VideoFiles(tmp_path / "ray" / "v.mp4").frame(i))
        b = image.load_image(VideoFiles(tmp_path / "local" / "v.mp4").frame(i))
        np.testing.assert_allclose(a, b, atol=1.5 / 255)
    for name in ("ray", "local"):
        flows = sorted((tmp_path / name / "v.work" / "flows").glob("*/*.npy"))
        assert len(flows) == 4
    np.testing.assert_array_equal(*[np.load(sorted((tmp_path / n / "v.work" / "flows").glob("*/0001-0002.npy"))[0])
                                    for n in ("ray", "local")])


def test_several_clips_on_ray_run_at_once_with_the_same_frames_as_one_by_one(tmp_path, capsys):
    pytest.importorskip("av", reason="video needs PyAV: pip install 'nst_jax[video]'")
    pytest.importorskip("cv2", reason="video needs OpenCV: pip install 'nst_jax[video]'")
    from fractions import Fraction
    from nst_jax.apps.video import sample
    from nst_jax.apps.video.__main__ import main
    from nst_jax.apps.video.frames import write_mp4
    from conftest import call_main
    for name, motion in (("a", sample.PAN_ZOOM), ("b", sample.DRIFT)):
        write_mp4(tmp_path / f"{name}.mp4", sample.frames(motion, 2), Fraction(12))
    argv = [tmp_path / "a.mp4", STYLE, "--clips", tmp_path / "b.mp4", "--size", "32", "--iterations", "3",
            "--frame-iterations", "2", "--content-layers", "relu3_2", "--style-layers", "relu1_1,relu2_1",
            "--print-every", "0", "--checkpoint-every", "2"]
    code, _, err = call_main(main, [*argv, "-o", tmp_path / "ray", "--engine", "ray"], capsys)
    assert code == 0, err
    code, _, err = call_main(main, [*argv, "-o", tmp_path / "local"], capsys)
    assert code == 0, err
    for name in ("a", "b"):
        for i in (1, 2):
            a = image.load_image(tmp_path / "ray" / f"{name}.frames" / f"{i:04d}.png")
            b = image.load_image(tmp_path / "local" / f"{name}.frames" / f"{i:04d}.png")
            np.testing.assert_allclose(a, b, atol=1.5 / 255)
