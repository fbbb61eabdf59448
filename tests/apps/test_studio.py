"""The studio: its folder, uploads and requests exactly; its guard and routes through Starlette's client;
its queue running real runs (stop and continue equal an uninterrupted run; state read back after a
restart); and (with Chromium) the whole page in a real browser."""

import io
import json
import os
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the studio needs Starlette: pip install 'nst_jax[studio]'")

from nst_jax.base.errors import NSTError  # noqa: E402
from nst_jax.apps.studio import jobs, request, uploads  # noqa: E402
from nst_jax.apps.studio.folder import StudioFolder  # noqa: E402

from conftest import CONTENT, STYLE  # noqa: E402


def _tree(root) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _png(h=20, w=30) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_folder_is_made_reopened_and_refused_when_it_is_not_the_studios(tmp_path):
    folder = StudioFolder(tmp_path / "s").prepare()
    assert (tmp_path / "s" / "nst_jax-studio.json").is_file() and folder.uploads.is_dir() and folder.runs.is_dir()
    StudioFolder(tmp_path / "s").prepare()                          # its own folder reopens
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(NSTError, match="holds other files"):
        StudioFolder(tmp_path / "mine").prepare()
    assert _tree(tmp_path / "mine") == {"thesis.tex"}
    os.symlink(tmp_path / "s", tmp_path / "link")
    with pytest.raises(NSTError, match="symbolic link"):
        StudioFolder(tmp_path / "link").prepare()
    assert folder.run_folder("../../etc") is None and folder.upload_path("../x") is None


def test_uploads_are_checked_by_the_cli_loader_named_by_digest_and_refused_without_writing(tmp_path):
    folder = StudioFolder(tmp_path / "s").prepare()
    before = _tree(tmp_path)
    for name, data, words in [("../../x", _png(), "a path, markup"), ("<script>alert(1)</script>.png", _png(), "markup"),
                              (".hidden.png", _png(), "a path"), ("notes.png", b"not an image at all", "not an image"),
                              ("big.png", b"\0" * 2000, "over the studio's limit"), ("empty.png", b"", "empty")]:
        with pytest.raises(NSTError, match=words):
            uploads.accept(folder, name, data, max_bytes=1000 if name == "big.png" else uploads.MAX_BYTES)
    assert _tree(tmp_path) == before                                 # nothing written anywhere
    got = uploads.accept(folder, "my cat (1).png", _png())
    assert got["name"] == "my cat (1).png" and (got["height"], got["width"]) == (20, 30)
    assert sorted(p.name for p in folder.uploads.iterdir()) == [got["id"] + ".json", got["id"] + ".png"]
    assert uploads.accept(folder, "again.png", _png())["id"] == got["id"]   # the same bytes: one file, first name
    (folder.uploads / f"{got['id']}.json").write_text('{"name": 3}')        # edited: no longer an upload
    assert folder.upload_path(got["id"]) is None and folder.list_uploads() == []


def test_a_request_is_checked_and_its_id_is_the_digest_of_what_it_asks(tmp_path):
    folder = StudioFolder(tmp_path / "s").prepare()
    c = uploads.accept(folder, "c.png", CONTENT.read_bytes())["id"]
    s = uploads.accept(folder, "s.png", STYLE.read_bytes())["id"]
    body = {"content": c, "styles": [s], "options": {"style_weight": "1000", "size": 64, "iterations": 20}}
    a = request.parse(folder, body)
    assert a == request.parse(folder, json.loads(json.dumps(body)))
    assert a.options == {**request.DEFAULTS, "style_weight": 1000.0, "size": 64, "iterations": 20}
    assert request.parse(folder, {**body, "options": {**body["options"], "seed": 1}}).id != a.id
    cfg = request.config(folder, a)
    assert cfg.size == 64 and cfg.style_weight == 1000.0 and cfg.output == str(folder.runs / a.id / "result.png")
    for bad, words in [({**body, "content": "../../etc/passwd"}, "content image"), ({**body, "styles": []}, "style"),
                       ({**body, "styles": ["0" * 16]}, "not one of the uploads"),
                       ({**body, "options": {"size": 8}}, "size: from 16"), ({**body, "options": {"size": 64.5}}, "size"),
                       ({**body, "options": {"init": "/etc/passwd"}}, "init: one of"),
                       ({**body, "options": {"style_weight": "lots"}}, "not a number"),
                       ({**body, "options": {"output": "/tmp/x.png"}}, "unknown option")]:
        with pytest.raises(NSTError, match=words):
            request.parse(folder, bad)


def test_a_run_is_named_by_its_images_k_size_and_the_options_it_changes():
    from nst_jax.apps.studio.view import run_name
    options = {**request.DEFAULTS, "style_weight": 100.0, "size": 256}
    assert run_name("chelsea.png", ["starry_night.jpg"], options) == "chelsea ← starry_night, k = 100, 256 px"
    assert run_name("my cat (1).png", ["starry_night.jpg", "wave"], {**options, "style_weight": 2.5e4, "seed": 1,
                                                                      "style_statistic": "mean_std", "iterations": 9}) \
        == "my cat (1) ← starry_night + wave, k = 25000, 256 px, statistic mean_std, seed 1"


def test_a_runs_sentence_says_what_is_true_now():
    from nst_jax.apps.studio.view import run_says
    live = {"status": "running", "iteration": 49, "target": 80, "eta": 3.34}
    assert run_says("queued", 0, 80, ahead=0) == "queued, next"
    assert run_says("queued", 0, 80, ahead=2) == "queued, 2 runs before it"
    assert run_says("running", 0, 80, live=None) == "running, starting (reading the images, compiling)"
    assert run_says("running", 0, 80, live={**live, "status": "starting"}).startswith("running, starting")
    assert run_says("running", 0, 80, live=live) == "running, iteration 49 / 80, ETA 3.3 s"
    assert run_says("running", 0, 80, live={**live, "eta": None}) == "running, iteration 49 / 80"
    assert run_says("stopping", 0, 80, live=live) == "stopping after the current step (iteration 49 / 80)"
    assert run_says("stopped", 30, 80) == "stopped at iteration 30 / 80; Continue goes on from there"
    assert run_says("finished", 80, 80, seconds=125.0) == "finished, 80 iterations in 2 min 05 s"
    assert run_says("failed", 3, 80, note="out of memory") == "failed: out of memory"
    assert run_says("new", 0, 80) == "not started; Continue starts it"
    assert run_says("unreadable", 0, 0) == "unreadable: its files do not check"


def test_the_state_names_each_run_and_says_running_for_the_running_one_queued_for_the_next(tmp_path):
    import time
    from nst_jax.apps.studio import view
    from nst_jax.web.live import LiveState
    folder = StudioFolder(tmp_path / "s").prepare()
    c = uploads.accept(folder, "chelsea.png", CONTENT.read_bytes())["id"]
    s = uploads.accept(folder, "ihc.png", STYLE.read_bytes())["id"]
    asked = [request.parse(folder, {"content": c, "styles": [s], "options": {"size": 64, "iterations": 30, "seed": i}})
             for i in (0, 1)]
    for a in asked:
        folder.write_request(a.id, a.record())
    runner = jobs.Runner(folder, start=False)
    runner.current, live = asked[0].id, LiveState(asked[0].id)
    runner.live[asked[0].id] = live
    runner.queue.append(asked[1].id)
    live.header(["nst_jax: chelsea.png → …"], 0, 30, (1.0, 100.0, 1.0))
    parts = {"content": 1.0, "style": 2.0, "tv": 3.0}
    live.step(1, 1, 204.0, parts)
    time.sleep(0.05)
    live.step(5, 1, 204.0, parts)
    state = view.studio_state(folder, runner, 100)
    runs = {r["id"]: r for r in state["runs"]}
    first, second = runs[asked[0].id], runs[asked[1].id]
    assert (first["name"], second["name"]) == ("chelsea ← ihc, k = 100, 64 px", "chelsea ← ihc, k = 100, 64 px, seed 1")
    assert first["status"] == "running" and re.fullmatch(r"running, iteration 5 / 30, ETA \d+\.\d s", first["says"])
    assert second["says"] == "queued, 1 run before it" and first["content_id"] == c
    assert state["live_id"] == asked[0].id and state["live"]["losses"][-1] == [5, 204.0, 1.0, 200.0, 3.0]
    runner.current = None                          # ended: its plot stays the page's (the last run of the session)
    assert view.studio_state(folder, runner, 100)["live_id"] == asked[0].id


def test_a_failed_run_asked_again_no_longer_reads_as_failed_once_it_is_taken_up(tmp_path, monkeypatch):
    from nst_jax.transfer import runs as transfer
    from nst_jax.model import weights
    folder = StudioFolder(tmp_path / "s").prepare()
    c = uploads.accept(folder, "chelsea.png", CONTENT.read_bytes())["id"]
    s = uploads.accept(folder, "ihc.png", STYLE.read_bytes())["id"]
    a = request.parse(folder, {"content": c, "styles": [s], "options": {"size": 64, "iterations": 30}})
    folder.write_request(a.id, a.record())
    folder.run_files(a.id).write_error("the loss is NaN or inf at the initial image")
    assert jobs.status(folder, a.id)[0] == "failed"

    def stopped_at_once(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(transfer, "run", stopped_at_once)
    monkeypatch.setattr(weights, "load", lambda path: {})
    jobs.Runner(folder, start=False)._run(a.id)
    assert jobs.status(folder, a.id)[0] == "new" and folder.run_files(a.id).read_error() is None


def _client(folder, runner, token=None, max_upload=uploads.MAX_BYTES):
    from starlette.testclient import TestClient
    from nst_jax.apps.studio.app import app
    return TestClient(app(folder, runner, token, max_upload, port=8765), base_url="http://127.0.0.1:8765")


H = {"X-NST-JAX-Studio": "1"}


def test_the_guard_refuses_other_sites_other_hosts_and_requests_without_the_token(tmp_path):
    folder = StudioFolder(tmp_path / "s").prepare()
    runner = jobs.Runner(folder, start=False)
    client = _client(folder, runner)
    assert client.get("/").status_code == 200 and "innerHTML" not in client.get("/").text
    assert "innerHTML" not in client.get("/studio.js").text and "textContent" in client.get("/studio.js").text
    assert client.post("/api/upload?name=a.png", content=_png()).status_code == 403              # no page header
    assert client.post("/api/upload?name=a.png", content=_png(),
                       headers={**H, "Origin": "http://evil.example"}).status_code == 403   # another site
    assert client.get("/api/state", headers={"Host": "evil.example:8765"}).status_code == 403   # DNS rebinding
    assert client.post("/api/upload?name=a.png", content=_png(), headers=H).json()["ok"]
    wide = _client(folder, runner, token="sesame")
    assert wide.get("/api/state").status_code == 403
    assert wide.get("/?token=sesame").status_code == 200                                      # sets the cookie
    assert wide.get("/api/state").status_code == 200 and wide.cookies.get("nst_jax_studio") == "sesame"


def test_the_routes_refuse_paths_and_oversize_uploads_and_serve_only_by_id(tmp_path):
    folder = StudioFolder(tmp_path / "s").prepare()
    runner = jobs.Runner(folder, start=False)
    client = _client(folder, runner, max_upload=4000)
    before = _tree(tmp_path)
    for name, data, code in [("../../x", _png(), 400), ("<script>.png", _png(), 400), ("big.png", b"\0" * 5000, 413)]:
        got = client.post(f"/api/upload?name={name}", content=data, headers=H)
        assert got.status_code == code and got.json()["message"].startswith("refused")
    assert _tree(tmp_path) == before
    for path in ["/runs/..%2F..%2Fx/result.png", "/uploads/..%2F..%2Fnst_jax-studio.json", "/runs/abc/download",
                 "/uploads/0123456789abcdef"]:
        assert client.get(path).status_code == 404
    assert client.post("/api/runs/../stop", headers=H).status_code in (404, 405)
    message = client.post("/api/runs", content=b"{not json", headers=H).json()["message"]
    assert message.startswith("the request: ") and "not valid JSON" in message


def _iteration(runner, run_id) -> int:
    live = runner.live.get(run_id)
    return live.snapshot()[1]["iteration"] if live is not None else 0


def _wait(runner, seconds=300):
    import time
    deadline = time.time() + seconds
    while not runner.idle() and time.time() < deadline:
        time.sleep(0.05)
    assert runner.idle()


def test_the_queue_runs_one_at_a_time_stop_and_continue_equal_an_uninterrupted_run_and_restarts_read_back(tmp_path):
    import time
    folder = StudioFolder(tmp_path / "s").prepare()
    runner = jobs.Runner(folder)
    client = _client(folder, runner)
    c = client.post("/api/upload?name=chelsea.png", content=CONTENT.read_bytes(), headers=H).json()["upload"]["id"]
    s = client.post("/api/upload?name=ihc.png", content=STYLE.read_bytes(), headers=H).json()["upload"]["id"]
    ask = {"content": c, "styles": [s], "options": {"size": 32, "iterations": 30}}
    # seed changes nothing for a run from the content image with Gram matrices: the same run in two folders
    whole = client.post("/api/runs", json={**ask, "options": {**ask["options"], "seed": 1}}, headers=H).json()
    part = client.post("/api/runs", json=ask, headers=H).json()
    assert whole["message"] == "queued" and part["message"] == "queued"
    assert client.post("/api/runs", json=ask, headers=H).json()["message"] == "queued already"   # a second tab
    while _iteration(runner, part["id"]) < 5:
        time.sleep(0.005)
    assert client.post(f"/api/runs/{part['id']}/stop", headers=H).json()["message"].startswith("stopping")
    _wait(runner)
    stopped, sidecar = jobs.status(folder, part["id"])
    assert stopped == "stopped" and 5 <= sidecar["iteration"] < 30 and sidecar["interrupted"]
    assert jobs.status(folder, whole["id"])[0] == "finished"
    assert client.post(f"/api/runs/{part['id']}/continue", headers=H).json()["message"] == "queued"
    _wait(runner)
    assert jobs.status(folder, part["id"])[0] == "finished"
    a, b = (np.asarray(Image.open(folder.runs / r["id"] / "result.png")) for r in (whole, part))
    assert np.array_equal(a, b)                                      # stop + continue = uninterrupted, bit for bit
    assert client.post("/api/runs", json=ask, headers=H).json()["message"] == "finished already"
    zipped = zipfile.ZipFile(io.BytesIO(client.get(f"/runs/{part['id']}/download").content))
    assert sorted(n.split("/")[1] for n in zipped.namelist()) == ["result.json", "result.png", "studio.json"]
    # a restart: a new runner and app over the same folder see the same runs, read from their files
    state = _client(folder, jobs.Runner(folder, start=False)).get("/api/state").json()
    assert {r["id"]: r["status"] for r in state["runs"]} == {whole["id"]: "finished", part["id"]: "finished"}
    assert {r["content"] for r in state["runs"]} == {"chelsea.png"} and state["runs"][0]["options"]["iterations"] == 30
    (folder.runs / part["id"] / "studio.json").write_text("[1, 2")      # an edited record: shown, never a traceback
    assert jobs.status(folder, part["id"])[0] == "unreadable"
    assert _client(folder, jobs.Runner(folder, start=False)).get("/api/state").status_code == 200


def test_the_command_line_refuses_a_foreign_folder_a_busy_port_and_a_token_without_host(tmp_path, capsys):
    import socket
    from conftest import one_error_line
    from nst_jax.apps.studio.__main__ import main
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("keep")
    assert "holds other files" in one_error_line(main, [tmp_path / "mine", "--port", "0"], capsys)
    assert "--token goes with --host" in one_error_line(main, [tmp_path / "s", "--token", "x"], capsys)
    assert "--max-upload" in one_error_line(main, [tmp_path / "s", "--max-upload", "0"], capsys)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert "cannot listen" in one_error_line(main, [tmp_path / "s", "--port", port], capsys)
    assert not (tmp_path / "s").exists()                    # refused before anything was written


def test_a_wider_host_says_so_and_every_request_needs_the_token(tmp_path):
    import urllib.error
    import urllib.request
    studio = Studio(tmp_path / "s", "--host", "0.0.0.0", "--token", "sesame", ready="?token=sesame")
    try:
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(studio.url + "api/state", timeout=5)
        with urllib.request.urlopen(studio.url + "api/state?token=sesame", timeout=5) as r:
            assert json.loads(r.read())["runs"] == []
    finally:
        err = studio.close()
    assert "reachable from other machines" in err and "?token=sesame" in err


class Studio:
    """`python -m nst_jax.studio FOLDER` in a subprocess, as a user starts it."""

    def __init__(self, folder, *flags, ready=""):
        import subprocess
        import sys
        from bench.browser import wait_for
        from conftest import free_port, python_env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen([sys.executable, "-m", "nst_jax", "studio", str(folder), "--port", str(self.port),
                                      *flags], env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_for(self.url + "api/state" + ready), self.proc.stderr.read()[-2000:]

    def close(self) -> str:
        import signal
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=120)
        return err


def _message(browser, words):
    from bench.browser import until
    return until(lambda: words in browser.find_element("id", "message").text and browser.find_element("id", "message").text)


def _card(browser, run_id):
    return browser.find_element("css selector", f'.card[data-id="{run_id}"]')


def _start(browser, seed, iterations):
    """Start a run from the form; its id (the message line speaks of it, by name)."""
    from bench.browser import fill, until
    fill(browser, {"opt-size": 64, "opt-iterations": iterations, "opt-seed": seed})
    browser.execute_script("const m = document.getElementById('message'); m.textContent = ''; "
                           "m.removeAttribute('data-run')")
    browser.find_element("id", "start").click()
    return until(lambda: browser.find_element("id", "message").get_attribute("data-run"))


def _says(browser, run_id, words):
    """Wait until the message line speaks of `run_id` and says `words`; its text."""
    from bench.browser import until
    message = browser.find_element("id", "message")
    return until(lambda: message.get_attribute("data-run") == run_id and words in message.text and message.text,
                 what=f"the message line to say {words!r}")


def _check_the_run_in_view(browser, name):
    """The run in view: named, with a before/after view of content and result, and a loss plot with ticks and
    named lines."""
    assert browser.find_element("id", "view-name").text == name
    content = browser.find_element("id", "content-image").get_attribute("src")
    assert "/uploads/" in content and "/runs/" in browser.find_element("id", "result-image").get_attribute("src")
    assert browser.find_element("id", "cut").is_displayed() and browser.find_element("id", "viewer").get_attribute(
        "class") == "slider"
    clip = browser.execute_script("return document.getElementById('content-image').style.clipPath")
    assert clip == "inset(0px 50% 0px 0px)"                                          # content left, result right
    browser.find_element("css selector", '#view-tools button[data-mode="side"]').click()
    assert browser.find_element("id", "viewer").get_attribute("class") == "side"
    browser.find_element("css selector", '#view-tools button[data-mode="slider"]').click()
    ticks = [t.text for t in browser.find_elements("css selector", "#plot text.ytick")]
    assert len(ticks) > 2 and all(ticks), ticks
    assert len(browser.find_elements("css selector", "#plot text.xtick")) > 2
    labels = {t.get_attribute("data-name"): t.text for t in browser.find_elements("css selector", "#plot .line-label")}
    assert set(labels) == {"total", "content", "style", "tv"}, labels
    assert all(text.startswith(line + " ") for line, text in labels.items()), labels
    assert not browser.find_element("id", "live-header").is_displayed()              # the header: collapsed
    assert browser.execute_script("return document.getElementById('live-header').textContent").startswith("nst_jax: ")


def test_the_studio_in_a_real_browser(tmp_path):
    from bench.browser import until as _until
    from conftest import browser_or_skip
    browser = browser_or_skip()
    folder = tmp_path / "studio"
    studio = Studio(folder, "--max-upload", "1")
    outside = tmp_path / "files"
    outside.mkdir()
    (outside / "notes.png").write_text("not an image")
    (outside / "big.png").write_bytes(os.urandom(1_500_000))
    (outside / "<script>alert(1)<b>.png").write_bytes(_png())
    try:
        browser.get(studio.url)
        browser.find_element("id", "content-file").send_keys(str(CONTENT))
        _message(browser, "uploaded chelsea.png")
        browser.find_element("id", "style-files").send_keys(str(STYLE))
        _message(browser, "uploaded ihc.png")
        # refused, each with its message on the page, and nothing written
        before = _tree(tmp_path)
        for name, words in (("notes.png", "not an image"), ("big.png", "over the studio's limit"),
                            ("<script>alert(1)<b>.png", "markup")):
            browser.find_element("id", "style-files").send_keys(str(outside / name))
            assert name in _message(browser, words)
        browser.execute_script("uploadFiles([new File([new Uint8Array([137, 80, 78, 71])], '../../x')], 'style')")
        assert _message(browser, "a path").startswith("../../x: refused")
        assert _tree(tmp_path) == before and not (tmp_path / "x").exists()
        assert not browser.find_elements("css selector", "#message b, #message script")    # shown as text
        # a run started from the page finishes, and its image appears on the page
        whole, name = _start(browser, 1, 60), "chelsea ← ihc, k = 100, 64 px, seed 1"
        assert _says(browser, whole, "").startswith(name + " — ")                      # named, not by its id
        assert _start(browser, 1, 60) == whole                                           # a second click
        _says(browser, whole, "(asked before: the same run)")
        _until(lambda: browser.execute_script("return document.getElementById('result-image').naturalWidth") > 0)
        _until(lambda: _card(browser, whole).get_attribute("data-status") == "finished")
        _says(browser, whole, "finished, 60 iterations in ")
        card = _card(browser, whole)
        shown = card.find_element("css selector", ".name").text, card.find_element("css selector", ".status").text
        assert shown[0] == name and whole not in " ".join(shown)
        assert whole in card.get_attribute("title")                                      # the id: small print
        _check_the_run_in_view(browser, name)
        _until(lambda: browser.execute_script(
            f"return document.querySelector('.card[data-id=\"{whole}\"] img.result').naturalWidth") == 64)
        # stop, then continue: the same image as the uninterrupted run
        part = _start(browser, 0, 60)
        message = browser.find_element("id", "message")
        _until(lambda: _card(browser, part).get_attribute("data-status") == "running"      # says running, not queued
               and int(browser.find_element("id", "live-iteration").text or 0) >= 10
               and re.search(r" — running, iteration \d+ / 60", message.text) and "queued" not in message.text,
               every=0.02, what="the message line to say running")
        _card(browser, part).find_element("css selector", ".stop").click()
        _until(lambda: _card(browser, part).get_attribute("data-status") == "stopped")
        _says(browser, part, "stopped at iteration ")
        stopped_at = json.loads((folder / "runs" / part / "result.json").read_text())["iteration"]
        assert 10 <= stopped_at < 60
        _card(browser, part).find_element("css selector", ".continue").click()
        _until(lambda: _card(browser, part).get_attribute("data-status") == "finished")
        a, b = (np.asarray(Image.open(folder / "runs" / r / "result.png")) for r in (whole, part))
        assert np.array_equal(a, b)
        # compare the two side by side, with their settings
        for run_id in (whole, part):
            _card(browser, run_id).find_element("css selector", ".pick").click()
        browser.find_element("id", "compare-button").click()
        figures = browser.find_elements("css selector", "#compare figure")
        assert len(figures) == 2 and "seed\n1" in figures[0].text.replace(" ", "\n") + figures[1].text.replace(" ", "\n")
    finally:
        err = studio.close()
    assert "Traceback" not in err, err[-3000:]
    # after a restart the runs are still there, read back from their files
    studio = Studio(folder)
    try:
        browser.get(studio.url)
        _until(lambda: len(browser.find_elements("css selector", ".card")) == 2)
        assert {c.get_attribute("data-status") for c in browser.find_elements("css selector", ".card")} == {"finished"}
    finally:
        browser.quit()
        studio.close()
