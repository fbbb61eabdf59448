"""The studio's Starlette app, behind `web.guard.Guard`: it answers only to the addresses it listens on
(port included); every change (uploads, starts, stops) is a POST that must carry the page's own header
and origin, so another site open in the same browser cannot start or stop anything; when the studio
listens beyond this machine, every request must also carry its token (a query parameter once, then a
cookie). Pages and images are read through `StudioFolder` by id only and sent by `guard.send_file`
(never through a link); POST bodies are bounded and parsed by `untrusted.parse_json`.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

from nst_jax.files import untrusted
from nst_jax.base.errors import NSTError
from nst_jax.apps.studio import request as requests
from nst_jax.apps.studio import uploads, view
from nst_jax.apps.studio.folder import StudioFolder
from nst_jax.apps.studio.jobs import Runner
from nst_jax.web.guard import COOKIE, Guard, read_inside, send_file

PAGE = Path(__file__).with_name("studio.html")
SCRIPT = Path(__file__).with_name("studio.js")   # the page's script, its loss plot included
HEADER = "x-nst-jax-studio"   # a header a plain cross-site form or image cannot send
MAX_REQUEST = 2**20           # a run's request is a few hundred bytes


async def read_body(request, limit: int) -> tuple[bytes, int]:
    """The first `limit` bytes of a request's body and its whole size, read to the end (a browser takes
    an early answer as a failure) without keeping more than `limit`."""
    data, size = bytearray(), 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            data += chunk
    return bytes(data), size


def app(folder: StudioFolder, runner: Runner, token: str | None = None, max_upload: int = uploads.MAX_BYTES,
        poll: float = 0.3, closing=lambda: False, *, port: int, host: str | None = None):
    """The studio served on `port` (and `host` with its token, beyond this machine)."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    no_store = {"Cache-Control": "no-store"}

    def refuse(message: str, status: int = 400):
        return JSONResponse({"ok": False, "message": message}, status_code=status)

    async def page(request):
        response = HTMLResponse(PAGE.read_text(), headers=no_store)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    async def script(request):
        return Response(SCRIPT.read_text(), media_type="text/javascript", headers=no_store)

    async def state(request):
        return JSONResponse({**view.studio_state(folder, runner, max_upload), "choices": view.choices()})

    async def events(request):
        async def stream():
            seen = None
            while not closing() and not await request.is_disconnected():
                text = json.dumps(await asyncio.to_thread(view.studio_state, folder, runner, max_upload))
                if text != seen:
                    seen = text
                    yield f"data: {text}\n\n"
                await asyncio.sleep(poll)
        return StreamingResponse(stream(), media_type="text/event-stream", headers=no_store)

    async def upload(request):
        data, size = await read_body(request, max_upload)
        if size > max_upload:
            return refuse(f"refused: {size / 2**20:.1f} MB is over the studio's limit of "
                          f"{max_upload / 2**20:.0f} MB", 413)
        try:
            got = await asyncio.to_thread(uploads.accept, folder, request.query_params.get("name", ""),
                                          data, max_upload)
        except NSTError as err:
            return refuse(str(err))
        return JSONResponse({"ok": True, "upload": got})

    async def start(request):
        data, size = await read_body(request, MAX_REQUEST)
        if size > MAX_REQUEST:
            return refuse(f"refused: a request of {size} bytes; a run's request is under {MAX_REQUEST} bytes", 413)
        try:
            asked = requests.parse(folder, untrusted.parse_json(data, "the request"))
        except NSTError as err:
            return refuse(str(err))
        folder.write_request(asked.id, asked.record())
        return JSONResponse({"ok": True, "id": asked.id, "message": runner.submit(asked.id)})

    def run_action(act):
        async def handle(request):
            run_id = request.path_params["id"]
            if folder.read_request(run_id) is None:
                return refuse("no such run", 404)
            return JSONResponse({"ok": True, "id": run_id, "message": act(run_id)})
        return handle

    async def result(request):
        files = folder.run_files(request.path_params["id"])
        if files is None:
            return Response("no image yet", status_code=404)
        return send_file(folder.root, files.image, "image/png", no_store, "no image yet")

    async def live_image(request):
        live = runner.live.get(request.path_params["id"])
        data = live.images.get("image") if live is not None else None
        if data is None:
            return Response("no image yet", status_code=404)
        return Response(data, media_type="image/png", headers=no_store)

    async def upload_image(request):
        path = folder.upload_path(request.path_params["id"])
        return Response("no such upload", status_code=404) if path is None else send_file(folder.root, path)

    async def download(request):
        run_id = request.path_params["id"]
        files = folder.run_files(run_id)
        paths = () if files is None else (files.image, files.sidecar, files.image.parent / "studio.json")
        found = {path.name: read_inside(folder.root, path) for path in paths}
        if files is None or found[files.image.name] is None or found[files.sidecar.name] is None:
            return Response("no result yet", status_code=404)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            for name, data in found.items():
                if data is not None:
                    z.writestr(f"nst_jax-{run_id}/{name}", data)
        return Response(buffer.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="nst_jax-{run_id}.zip"'})

    routes = [Route("/", page), Route("/studio.js", script), Route("/api/state", state), Route("/events", events),
              Route("/api/upload", upload, methods=["POST"]), Route("/api/runs", start, methods=["POST"]),
              Route("/api/runs/{id:str}/stop", run_action(runner.stop), methods=["POST"]),
              Route("/api/runs/{id:str}/continue", run_action(runner.submit), methods=["POST"]),
              Route("/runs/{id:str}/result.png", result), Route("/runs/{id:str}/live.png", live_image),
              Route("/runs/{id:str}/download", download), Route("/uploads/{id:str}", upload_image)]
    return Guard(Starlette(routes=routes), port, host, token, HEADER)

