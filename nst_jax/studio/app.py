"""The studio's Starlette app. Pages and images are read through `StudioFolder` by id only; every
change (uploads, starts, stops) is a POST that must carry the page's own header and origin, so another
site open in the same browser cannot start or stop anything; when the studio listens beyond this
machine, every request must also carry its token (a query parameter once, then a cookie).
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import zipfile
from pathlib import Path

from nst_jax.errors import NSTError
from nst_jax.studio import request as requests
from nst_jax.studio import uploads, view
from nst_jax.studio.folder import StudioFolder
from nst_jax.studio.jobs import Runner
from nst_jax.web.server import PLOT

PAGE = Path(__file__).with_name("studio.html")
HEADER = "x-nst-jax-studio"   # a header a plain cross-site form or image cannot send
COOKIE = "nst_jax_studio"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def app(folder: StudioFolder, runner: Runner, token: str | None = None, max_upload: int = uploads.MAX_BYTES,
        poll: float = 0.3, closing=lambda: False):
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    no_store = {"Cache-Control": "no-store"}

    def refuse(message: str, status: int = 400):
        return JSONResponse({"ok": False, "message": message}, status_code=status)

    async def page(request):
        response = HTMLResponse(PAGE.read_text(), headers=no_store)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    async def plot_js(request):
        return Response(PLOT.read_text(), media_type="text/javascript")

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
        data, size = bytearray(), 0
        async for chunk in request.stream():   # read to the end (a browser takes an early answer as a failure)
            size += len(chunk)
            if size <= max_upload:
                data += chunk
        if size > max_upload:
            return refuse(f"refused: {size / 2**20:.1f} MB is over the studio's limit of {max_upload / 2**20:.0f} MB", 413)
        try:
            got = await asyncio.to_thread(uploads.accept, folder, request.query_params.get("name", ""),
                                          bytes(data), max_upload)
        except NSTError as err:
            return refuse(str(err))
        return JSONResponse({"ok": True, "upload": got})

    async def start(request):
        try:
            asked = requests.parse(folder, await request.json())
        except ValueError:
            return refuse("the request is not JSON")
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
        if files is None or not files.image.is_file():
            return Response("no image yet", status_code=404)
        return FileResponse(files.image, media_type="image/png", headers=no_store)

    async def live_image(request):
        live = runner.live.get(request.path_params["id"])
        data = live.images.get("image") if live is not None else None
        if data is None:
            return Response("no image yet", status_code=404)
        return Response(data, media_type="image/png", headers=no_store)

    async def upload_image(request):
        path = folder.upload_path(request.path_params["id"])
        return Response("no such upload", status_code=404) if path is None else FileResponse(path)

    async def download(request):
        run_id = request.path_params["id"]
        files = folder.run_files(run_id)
        if files is None or not files.image.is_file() or not files.sidecar.is_file():
            return Response("no result yet", status_code=404)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            for path in (files.image, files.sidecar, files.image.parent / "studio.json"):
                if path.is_file() and not path.is_symlink():
                    z.write(path, f"nst_jax-{run_id}/{path.name}")
        return Response(buffer.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="nst_jax-{run_id}.zip"'})

    routes = [Route("/", page), Route("/plot.js", plot_js), Route("/api/state", state), Route("/events", events),
              Route("/api/upload", upload, methods=["POST"]), Route("/api/runs", start, methods=["POST"]),
              Route("/api/runs/{id:str}/stop", run_action(runner.stop), methods=["POST"]),
              Route("/api/runs/{id:str}/continue", run_action(runner.submit), methods=["POST"]),
              Route("/runs/{id:str}/result.png", result), Route("/runs/{id:str}/live.png", live_image),
              Route("/runs/{id:str}/download", download), Route("/uploads/{id:str}", upload_image)]
    return Guard(Starlette(routes=routes), token)


class Guard:
    """ASGI middleware: POSTs need the page's header and, if the browser names one, the page's own origin;
    with a token, every request needs it (as ?token= or the cookie the page sets)."""

    def __init__(self, inner, token: str | None):
        self.inner, self.token = inner, token

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            why = self.refusal(scope)
            if why is not None:
                from starlette.responses import JSONResponse
                await JSONResponse({"ok": False, "message": why}, status_code=403)(scope, receive, send)
                return
        await self.inner(scope, receive, send)

    def refusal(self, scope) -> str | None:
        from starlette.requests import Request
        r = Request(scope)
        if self.token is None and r.url.hostname not in LOOPBACK:   # a page of another name (DNS rebinding)
            return "refused: this studio answers only to 127.0.0.1 and localhost"
        if self.token is not None:
            given = r.query_params.get("token") or r.cookies.get(COOKIE) or ""
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                return "this studio needs its token: open the address it printed"
        if r.method != "GET":
            origin = r.headers.get("origin")
            if r.headers.get(HEADER) != "1" or (origin is not None and origin.split("://")[-1] != r.headers.get("host")):
                return "refused: not sent by the studio's page"
        return None
