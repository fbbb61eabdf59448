"""The HTTP surfaces (the live page of a run and the studio) go through one guard (`nst_jax.web.guard`):
every route answers only to the loopback names (and the studio's --host) at its own port and to no
foreign Origin; no file route follows a symbolic link; uploads are capped in pixels before anything is
decoded, and decoded a few at a time; a studio holds its folder's lock; POST bodies and the folder's
records are read as untrusted JSON; the studio prints the address it really listens on."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the pages need Starlette: pip install 'nst_jax[studio]'")
pytest.importorskip("uvicorn", reason="the pages need uvicorn: pip install 'nst_jax[studio]'")

from nst_jax.base.errors import NSTError  # noqa: E402
from nst_jax.apps.studio import jobs, uploads  # noqa: E402
from nst_jax.apps.studio.folder import StudioFolder  # noqa: E402
from nst_jax.web import guard  # noqa: E402
from nst_jax.web.live import LiveState  # noqa: E402

from conftest import free_port, one_error_line, python_env  # noqa: E402

PORT = 8765
H = {"X-NST-JAX-Studio": "1"}
RUN, UPLOAD = "0123456789ab", "0123456789abcdef"
LIVE_ROUTES = [("GET", "/"), ("GET", "/plot.js"), ("GET", "/events"), ("GET", "/state.json"),
               ("GET", "/{name:str}.png")]
STUDIO_ROUTES = [("GET", "/"), ("GET", "/studio.js"), ("GET", "/api/state"), ("GET", "/events"),
                 ("POST", "/api/upload"), ("POST", "/api/runs"), ("POST", "/api/runs/{id:str}/stop"),
                 ("POST", "/api/runs/{id:str}/continue"), ("GET", "/runs/{id:str}/result.png"),
                 ("GET", "/runs/{id:str}/live.png"), ("GET", "/runs/{id:str}/download"), ("GET", "/uploads/{id:str}")]
ROUTES = [("live", m, p) for m, p in LIVE_ROUTES] + [("studio", m, p) for m, p in STUDIO_ROUTES]


def _png(h=20, w=30, seed=0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _client(kind, tmp_path):
    """A TestClient of the live page (its run finished, so /events ends) or of a studio (closing, so its
    /events ends) served on PORT."""
    from starlette.testclient import TestClient
    if kind == "live":
        from nst_jax.web.server import app
        state = LiveState("r.png")
        state.finish("finished")
        asgi = app(state, PORT, poll=0.01)
    else:
        from nst_jax.apps.studio.app import app
        folder = StudioFolder(tmp_path / "s").prepare()
        asgi = app(folder, jobs.Runner(folder, start=False), poll=0.01, closing=lambda: True, port=PORT)
    return TestClient(asgi, base_url=f"http://127.0.0.1:{PORT}")


def _ask(client, method, path, headers):
    path = path.replace("{name:str}", "image").replace("{id:str}", UPLOAD if path.startswith("/uploads") else RUN)
    return client.request(method, path, headers={**H, **headers})


@pytest.mark.parametrize("kind, routes", [("live", LIVE_ROUTES), ("studio", STUDIO_ROUTES)])
def test_the_route_lists_here_are_every_route_of_each_server(kind, routes, tmp_path):
    served = {(m, r.path) for r in _client(kind, tmp_path).app.inner.routes for m in r.methods if m != "HEAD"}
    assert served == set(routes)


@pytest.mark.parametrize("kind, method, path", ROUTES)
def test_every_route_answers_only_to_its_own_hosts_at_its_own_port(kind, method, path, tmp_path):
    client = _client(kind, tmp_path)
    for host in ("evil.example", f"evil.example:{PORT}", f"127.0.0.1:{PORT + 1}", f"localhost:{PORT + 1}",
                 "127.0.0.1", f"localhost.:{PORT}", f"127.0.0.2:{PORT}", f"[::2]:{PORT}"):
        got = _ask(client, method, path, {"Host": host})
        assert got.status_code == 403 and got.json()["message"].startswith("refused: this page answers only"), host
    for host in (f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}", f"LOCALHOST:{PORT}"):
        assert _ask(client, method, path, {"Host": host}).status_code != 403, host


@pytest.mark.parametrize("kind, method, path", ROUTES)
def test_every_route_refuses_a_foreign_origin(kind, method, path, tmp_path):
    client = _client(kind, tmp_path)
    for origin in ("http://evil.example", f"http://evil.example:{PORT}", f"http://127.0.0.1:{PORT + 1}",
                   f"https://127.0.0.1:{PORT}", "null"):
        got = _ask(client, method, path, {"Origin": origin})
        assert got.status_code == 403 and got.json()["message"] == "refused: a request from another site", origin
    for origin in (f"http://127.0.0.1:{PORT}", f"http://localhost:{PORT}"):
        assert _ask(client, method, path, {"Origin": origin}).status_code != 403, origin


def test_the_studio_needs_the_page_header_for_a_change_and_its_token_beyond_loopback(tmp_path):
    from starlette.testclient import TestClient
    from nst_jax.apps.studio.app import app
    folder = StudioFolder(tmp_path / "s").prepare()
    runner = jobs.Runner(folder, start=False)
    client = TestClient(app(folder, runner, port=PORT), base_url=f"http://127.0.0.1:{PORT}")
    assert client.post("/api/upload?name=a.png", content=_png()).json()["message"] == "refused: not sent by the page"
    wide = TestClient(app(folder, runner, "sesame", port=PORT, host="192.0.2.7"),
                      base_url=f"http://192.0.2.7:{PORT}")
    assert wide.get("/api/state").status_code == 403                          # the --host name, without the token
    assert wide.get("/api/state?token=sesame").status_code == 200
    assert wide.get("/api/state?token=sesame", headers={"Host": f"192.0.2.7:{PORT + 1}"}).status_code == 403
    assert wide.get("/api/state?token=sesame", headers={"Host": f"evil.example:{PORT}"}).status_code == 403


def test_port_80_also_answers_to_the_bare_name_as_browsers_write_it():
    hosts = guard.allowed_hosts(80, "::1")
    assert {"127.0.0.1", "localhost", "[::1]", "localhost:80", "[::1]:80"} <= hosts
    assert "127.0.0.1" not in guard.allowed_hosts(8765) and "[::1]:8765" in guard.allowed_hosts(8765)


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_the_live_server_refuses_dns_rebinding_and_a_request_without_a_host(tmp_path):
    from nst_jax.web.server import LiveServer
    state = LiveState("secret-name.png")
    state.image(1, np.zeros((4, 4, 3), np.float32))
    with LiveServer(state) as server:
        rebound = urllib.request.Request(server.url + "state.json", headers={"Host": f"evil.example:{server.port}"})
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(rebound, timeout=10)
        no_host = _raw(server.port, b"GET /image.png HTTP/1.0\r\n\r\n")
        assert no_host.startswith(b"HTTP/1.1 403") and b"PNG" not in no_host
        two_hosts = _raw(server.port, f"GET /state.json HTTP/1.0\r\nHost: 127.0.0.1:{server.port}\r\n"
                                      f"Host: evil.example\r\n\r\n".encode())
        assert not two_hosts.startswith(b"HTTP/1.1 200") and b"secret-name" not in two_hosts
        with urllib.request.urlopen(server.url + "state.json", timeout=10) as r:
            assert json.loads(r.read())["title"] == "secret-name.png"


# ---------------------------------------------------------------- no links served

def _studio_with_files(tmp_path):
    """A studio folder with one upload and one finished run (image, sidecar, request), its client, and a
    folder outside it holding a secret of each name."""
    from starlette.testclient import TestClient
    from nst_jax.apps.studio.app import app
    folder = StudioFolder(tmp_path / "s").prepare()
    upload = uploads.accept(folder, "a.png", _png())["id"]
    run = folder.runs / RUN
    run.mkdir()
    for name, data in (("result.png", _png(8, 8, 1)), ("result.json", b"{}"), ("studio.json", b"{}")):
        (run / name).write_bytes(data)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("result.png", "result.json", "studio.json", f"{upload}.png", f"{upload}.json"):
        (outside / name).write_bytes(b"SECRET " + name.encode())
    client = TestClient(app(folder, jobs.Runner(folder, start=False), port=PORT), base_url=f"http://127.0.0.1:{PORT}")
    return folder, upload, outside, client


def _swap_for_link(path, target):
    import shutil
    if path.is_dir():   # the outside folder gets what the route looks for, holding secrets (records kept readable)
        shutil.copytree(path, target, dirs_exist_ok=True)
        for copied in target.rglob("*.png"):
            copied.write_bytes(b"SECRET " + copied.name.encode())
        shutil.rmtree(path)
    else:
        path.unlink()
    os.symlink(target, path)


FILE_ROUTES = [("/runs/{run}/result.png", "runs/{run}/result.png"), ("/runs/{run}/result.png", "runs"),
               ("/runs/{run}/download", "runs/{run}/result.png"), ("/runs/{run}/download", "runs/{run}/result.json"),
               ("/runs/{run}/download", "runs"), ("/uploads/{upload}", "uploads/{upload}.png"),
               ("/uploads/{upload}", "uploads")]


@pytest.mark.parametrize("route, link", FILE_ROUTES)
def test_no_file_route_serves_through_a_symbolic_link(route, link, tmp_path):
    folder, upload, outside, client = _studio_with_files(tmp_path)
    url = route.format(run=RUN, upload=upload)
    assert client.get(url).status_code == 200                 # served while it is the studio's own file
    path = folder.root / link.format(run=RUN, upload=upload)
    _swap_for_link(path, outside if path.is_dir() else outside / path.name)
    got = client.get(url)
    assert got.status_code == 404 and b"SECRET" not in got.content


def test_a_linked_request_record_is_left_out_of_the_download(tmp_path):
    folder, _, outside, client = _studio_with_files(tmp_path)
    _swap_for_link(folder.runs / RUN / "studio.json", outside / "studio.json")
    got = client.get(f"/runs/{RUN}/download")
    names = zipfile.ZipFile(io.BytesIO(got.content)).namelist()
    assert got.status_code == 200 and sorted(n.split("/")[1] for n in names) == ["result.json", "result.png"]
    assert b"SECRET" not in got.content


def test_open_inside_refuses_pipes_folders_and_paths_out_of_the_folder(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "ok.txt").write_text("ok")
    (tmp_path / "secret.txt").write_text("secret")
    os.mkfifo(tmp_path / "f" / "pipe")
    with guard.open_inside(tmp_path / "f", tmp_path / "f" / "ok.txt") as f:
        assert f.read() == b"ok"
    for path in (tmp_path / "f" / "pipe", tmp_path / "f", tmp_path / "f" / ".." / "secret.txt", tmp_path / "secret.txt",
                 tmp_path / "f" / "missing"):
        assert guard.open_inside(tmp_path / "f", path) is None, path


# ---------------------------------------------------------------- uploads capped in pixels

def _huge_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (9400, 9400)).save(buffer, "PNG")    # 88 megapixels in a few kB: gigabytes once decoded
    return buffer.getvalue()


def _claiming_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_an_upload_over_the_pixel_cap_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    folder = StudioFolder(tmp_path / "s").prepare()
    before = sorted(folder.uploads.iterdir())

    def never(path):
        raise AssertionError("decoded")
    monkeypatch.setattr(uploads, "load_image", never)
    for data in (_huge_png(), _claiming_png(60000, 60000)):
        assert len(data) < uploads.MAX_BYTES
        with pytest.raises(NSTError, match="over the studio's limit of 40 megapixels"):
            uploads.accept(folder, "big.png", data)
    assert sorted(folder.uploads.iterdir()) == before
    from starlette.testclient import TestClient
    from nst_jax.apps.studio.app import app
    client = TestClient(app(folder, jobs.Runner(folder, start=False), port=PORT), base_url=f"http://127.0.0.1:{PORT}")
    got = client.post("/api/upload?name=big.png", content=_huge_png(), headers=H)
    assert got.status_code == 400 and got.json()["message"].startswith("refused: 9400×9400 pixels is over")


def test_uploads_are_decoded_at_most_two_at_a_time(tmp_path, monkeypatch):
    folder = StudioFolder(tmp_path / "s").prepare()
    lock, now, most = threading.Lock(), [0], [0]

    def slow(path):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.1)
        with lock:
            now[0] -= 1
        return np.zeros((20, 30, 3), np.float32)
    monkeypatch.setattr(uploads, "load_image", slow)
    got = []
    threads = [threading.Thread(target=lambda i=i: got.append(uploads.accept(folder, f"{i}.png", _png(seed=i))))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({g["id"] for g in got}) == 6 and most[0] == 2


# ---------------------------------------------------------------- JSON from the page and the folder

def test_a_deeply_nested_post_body_is_a_400_with_a_message(tmp_path):
    client = _client("studio", tmp_path)
    got = client.post("/api/runs", content=b"[" * 2000 + b"]" * 2000, headers=H)
    message = got.json()["message"]
    assert got.status_code == 400 and message.startswith("the request: ") and "nested more than" in message
    got = client.post("/api/runs", content=b" " * (2**20 + 1), headers=H)
    assert got.status_code == 413 and got.json()["message"].startswith("refused")


def test_deeply_nested_records_in_the_folder_are_broken_runs_and_the_state_still_answers(tmp_path):
    folder, upload, _, client = _studio_with_files(tmp_path)
    deep = "[" * 2000 + "]" * 2000
    (folder.runs / RUN / "studio.json").write_text(deep)
    other = folder.runs / "ba9876543210"
    other.mkdir()
    (other / "studio.json").write_text(json.dumps({"content": upload, "styles": [upload], "options": {},
                                                   "created": 1.0}))
    (other / "result.json").write_text(deep)
    (folder.uploads / f"{upload}.json").write_text(deep)
    got = client.get("/api/state")
    assert got.status_code == 200
    state = got.json()
    assert state["uploads"] == [] and {r["id"]: r["status"] for r in state["runs"]}[RUN] == "unreadable"
    assert other.name in {r["id"] for r in state["runs"]}


# ---------------------------------------------------------------- the studio process

class Studio:
    """`python -m nst_jax.studio FOLDER --host HOST --port PORT` in a subprocess."""

    def __init__(self, folder, host="127.0.0.1"):
        from bench.browser import wait_for
        self.port = free_port()
        self.url = f"http://{guard.host_port(host, self.port)}/"
        self.proc = subprocess.Popen([sys.executable, "-m", "nst_jax", "studio", str(folder), "--host", host,
                                      "--port", str(self.port)], env=python_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        if not wait_for(self.url + "api/state", 120):
            self.proc.kill()
            pytest.fail(self.proc.communicate()[1][-2000:])

    def close(self) -> str:
        import signal
        self.proc.send_signal(signal.SIGINT)
        return self.proc.communicate(timeout=120)[1]


def test_a_second_studio_on_the_same_folder_is_one_error_line(tmp_path, capsys):
    from nst_jax.apps.studio.__main__ import main
    first = Studio(tmp_path / "s")
    try:
        line = one_error_line(main, [tmp_path / "s", "--port", "0"], capsys)
    finally:
        err = first.close()
    assert f"in use by process {first.proc.pid}" in line and "studio folder" in line, line
    assert first.proc.returncode == 0 and "Traceback" not in err
    with StudioFolder(tmp_path / "s").lock():              # released when the first one closed
        pass


def test_a_studio_on_ipv6_loopback_prints_the_address_it_listens_on(tmp_path):
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError as err:
        pytest.skip(f"no IPv6 loopback here ({err.strerror or err})")
    studio = Studio(tmp_path / "s", host="::1")
    try:
        with pytest.raises(OSError):                        # not on 127.0.0.1: that address would not open
            urllib.request.urlopen(f"http://127.0.0.1:{studio.port}/api/state", timeout=5)
    finally:
        err = studio.close()
    assert f"studio: http://[::1]:{studio.port}/ " in err and "127.0.0.1" not in err, err


def test_the_guard_of_an_asgi_app_refuses_a_websocket_from_another_host():
    sent = []

    async def inner(scope, receive, send):
        raise AssertionError("reached the app")

    async def send(message):
        sent.append(message)
    scope = {"type": "websocket", "path": "/", "headers": [(b"host", b"evil.example:8765")], "query_string": b""}
    asyncio.run(guard.Guard(inner, 8765)(scope, None, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]
