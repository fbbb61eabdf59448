"""The live page (`--web`): its state's values exactly, the Starlette app's routes and events, a CLI run
and a video whose pages update while they run, and (with Chromium) the page in a real browser."""

import io
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the live page needs Starlette: pip install 'nst_jax[studio]'")
pytest.importorskip("uvicorn", reason="the live page needs uvicorn: pip install 'nst_jax[studio]'")

from nst_jax.web.live import LiveState  # noqa: E402

from conftest import CONTENT, STYLE, SMALL_FLAGS, browser_or_skip, call_main, free_port, python_env  # noqa: E402


def test_the_state_weighs_the_losses_counts_the_rate_and_encodes_off_the_step():
    s = LiveState("r.png")
    s.header(["nst_jax: a → b"], 10, 110, (1.0, 100.0, 10.0))
    s.step(11, 1, 5.0, {"content": 1.0, "style": 0.02, "tv": 0.1})
    version, d = s.snapshot()
    assert d["status"] == "running" and d["iteration"] == 11 and d["rate"] is None   # the first step compiles
    assert d["losses"] == [[11, 5.0, 1.0, 2.0, 1.0]]
    time.sleep(0.05)
    s.step(21, 1, 4.0, {"content": 1.0, "style": 0.01, "tv": 0.1})
    d = s.snapshot()[1]
    assert 10 / 0.2 < d["rate"] < 10 / 0.04 and d["eta"] == pytest.approx(89 / d["rate"])
    t0 = time.perf_counter()
    s.image(21, np.full((8, 12, 3), 0.5, np.float32))
    assert time.perf_counter() - t0 < 0.01                      # queued, not encoded here
    s.finish("finished")
    d = s.snapshot()[1]
    assert d["status"] == "finished" and d["image"] == 1 and d["image_iteration"] == 21
    assert s.images["image"][:8] == b"\x89PNG\r\n\x1a\n"
    for i in range(2500):                                       # a long run's history is thinned
        s.step(22 + i, 1, 1.0, {"content": 1.0, "style": 0.0, "tv": 0.0})
    assert len(s.snapshot()[1]["losses"]) <= 2000


def test_the_app_serves_the_page_its_state_images_and_events():
    from starlette.testclient import TestClient
    from nst_jax.web.server import app
    s = LiveState("<script>alert(1)</script>.png")
    client = TestClient(app(s, 8000, poll=0.01), base_url="http://127.0.0.1:8000")
    page = client.get("/")
    assert page.status_code == 200 and "EventSource" in page.text and "<script>alert" not in page.text
    assert "innerHTML" not in page.text                          # every value is set as text
    assert client.get("/image.png").status_code == 404
    s.header(["line"], 0, 5, (1.0, 1.0, 1.0))
    s.image(1, np.zeros((4, 4, 3), np.float32))
    s.finish("finished")
    got = client.get("/image.png")
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert client.get("/state.json").json()["title"] == "<script>alert(1)</script>.png"
    assert client.get("/../x.png").status_code == 404
    with client.stream("GET", "/events") as events:
        lines = [line for line in events.iter_lines() if line.startswith("data: ")]
    assert json.loads(lines[-1][6:])["status"] == "finished"     # the stream ends with the final state


def _poll(port: int, seen: list, stop: threading.Event, thumbnails: dict | None = None) -> None:
    """Read the page's state until `stop`; with `thumbnails`, fetch a sweep's run thumbnails too (their sizes)."""
    from PIL import Image
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/state.json", timeout=1) as r:
                seen.append(json.loads(r.read()))
            for row in seen[-1]["runs"] if thumbnails is not None else ():
                if row["image"]:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{row['thumb']}.png", timeout=1) as r:
                        thumbnails[row["image"]] = Image.open(io.BytesIO(r.read())).size
        except OSError:
            pass
        time.sleep(0.05)


def test_a_cli_run_with_web_updates_its_page_while_it_runs(tmp_path, capsys):
    from nst_jax.run import main
    port, seen, stop = free_port(), [], threading.Event()
    poller = threading.Thread(target=_poll, args=(port, seen, stop), daemon=True)
    poller.start()
    code, out, err = call_main(main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "30", "--print-every", "5",
                                      "-o", tmp_path / "r.png", "--web", port], capsys)
    stop.set()
    poller.join()
    assert code == 0, err
    assert any(f"live page: http://127.0.0.1:{port}/" in line for line in err)
    assert err[-1].startswith(f"live page: http://127.0.0.1:{port}/ closed")   # said once it stops answering
    import socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    running = [d for d in seen if d["status"] == "running"]
    assert len({d["iteration"] for d in running}) >= 3 and len({d["image"] for d in running}) >= 2
    assert seen[-1]["status"] == "finished" and seen[-1]["iteration"] == 30
    assert seen[-1]["header"][0].startswith("nst_jax: chelsea.png")


def test_a_sweep_page_shows_each_runs_state_and_thumbnail(tmp_path, capsys):
    from nst_jax.studies.sweep import main
    grid = tmp_path / "g.json"
    grid.write_text(json.dumps({"init": ["content", "noise"], "content_layers": [["relu3_2"]],
                                "style_layers": [["relu1_1", "relu2_1"]]}))
    port, seen, stop, thumbnails = free_port(), [], threading.Event(), {}
    poller = threading.Thread(target=_poll, args=(port, seen, stop, thumbnails), daemon=True)
    poller.start()
    code, _, err = call_main(main, ["12", "--grid", grid, "--out", tmp_path / "o", "--size", "32", "--style", STYLE,
                                    "--no-report", "--web", port], capsys)
    stop.set()
    poller.join()
    assert code == 0, err
    states = {tuple(r["status"] for r in d["runs"]) for d in seen}
    assert ("done", "done") in states and any("running" in s for s in states), states   # seen while it ran
    final = seen[-1]
    assert final["status"] == "finished" and final["iteration"] == final["target"] == 24
    assert [r["name"] for r in final["runs"]] == ["init-content", "init-noise"]
    assert all(r["image"].startswith("result.png@") for r in final["runs"])   # each run's thumbnail is its result
    assert thumbnails and all(size == (32, 21) for size in thumbnails.values()), thumbnails


def test_a_video_page_shows_the_frames_done_so_far(tmp_path, capsys):
    pytest.importorskip("av", reason="video needs PyAV: pip install 'nst_jax[video]'")
    pytest.importorskip("cv2", reason="video needs OpenCV: pip install 'nst_jax[video]'")
    from fractions import Fraction
    from nst_jax.apps.video import sample
    from nst_jax.apps.video.__main__ import main
    from nst_jax.apps.video.frames import write_mp4
    write_mp4(tmp_path / "c.mp4", sample.frames(sample.PAN_ZOOM, 3), Fraction(12))
    port, seen, stop = free_port(), [], threading.Event()
    poller = threading.Thread(target=_poll, args=(port, seen, stop), daemon=True)
    poller.start()
    code, _, err = call_main(main, [tmp_path / "c.mp4", STYLE, "--size", "32", "--content-layers", "relu3_2",
                                    "--style-layers", "relu1_2,relu2_1", "--iterations", "4", "--frame-iterations",
                                    "3", "--print-every", "1", "-o", tmp_path / "v.mp4", "--web", port], capsys)
    stop.set()
    poller.join()
    assert code == 0, err
    assert [len(d["frames"]) for d in seen][-1] == 3 and any(len(d["frames"]) == 1 for d in seen)
    assert seen[-1]["status"] == "finished"


def test_the_live_page_of_a_cli_run_updates_in_a_real_browser(tmp_path):
    browser = browser_or_skip()
    port = free_port()
    run = subprocess.Popen([sys.executable, "-m", "nst_jax.run", str(CONTENT), str(STYLE), *SMALL_FLAGS,
                            "--size", "64", "--iterations", "80", "--print-every", "5", "-o", str(tmp_path / "r.png"),
                            "--web", str(port), "--quiet"], env=python_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from bench.browser import wait_for
        assert wait_for(f"http://127.0.0.1:{port}/state.json")
        deadline = time.time() + 120
        browser.get(f"http://127.0.0.1:{port}/")
        iterations, images = set(), set()
        while time.time() < deadline:
            status = browser.find_element("id", "status").text
            iterations.add(int(browser.find_element("id", "iteration").text or 0))
            images.add(browser.find_element("id", "image").get_attribute("src"))
            if status == "finished":
                break
            time.sleep(0.05)
        assert status == "finished" and max(iterations) == 80
        assert len([i for i in iterations if 0 < i < 80]) >= 3          # it moved while the run went on
        assert len({src for src in images if src}) >= 2
        assert browser.execute_script("return document.getElementById('image').naturalWidth") > 0
        assert browser.find_elements("css selector", "#plot polyline")   # the loss plot is drawn
        assert "nst_jax: chelsea.png" in browser.find_element("id", "header").text
    finally:
        browser.quit()
        run.wait(timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_a_port_in_use_is_one_error_line(tmp_path, capsys):
    from conftest import one_error_line
    from nst_jax.run import main
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = one_error_line(main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "1", "-o", tmp_path / "r.png",
                                     "--web", port], capsys)
    assert f"--web {port}" in line and "cannot listen" in line
    line = one_error_line(main, [CONTENT, STYLE, *SMALL_FLAGS, "-o", tmp_path / "r.png", "--web", "70000"], capsys)
    assert "--web 70000" in line
