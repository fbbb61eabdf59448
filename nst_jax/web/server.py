"""The live page's server: a Starlette app (the page, its events, its images) served by uvicorn in a
thread of the running process, on 127.0.0.1 only, behind `guard.Guard` (it answers only to the loopback
names at its port). The page gets every change as a server-sent event (no reloading); once the run has
ended it has its final state and keeps showing it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

from nst_jax.base.errors import NSTError
from nst_jax.web.guard import Guard, host_port
from nst_jax.web.live import FINAL, LiveState

PAGE = Path(__file__).with_name("live.html")
PLOT = Path(__file__).with_name("plot.js")
HOST = "127.0.0.1"


def modules():
    try:
        import starlette  # noqa: F401 - checked here, imported by `app`
        import uvicorn
    except ImportError:
        raise NSTError("--web needs Starlette and uvicorn: pip install 'nst_jax[studio]'") from None
    return uvicorn


def app(state: LiveState, port: int, poll: float = 0.25):
    """The ASGI app of one live state served on `port`: / (the page), /events (server-sent events: the
    state, at most every `poll` seconds, so a fast run does not spend its time on the page), /state.json
    and the images (/image.png, /frame<N>.png)."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def page(request):
        return HTMLResponse(PAGE.read_text(), headers={"Cache-Control": "no-store"})

    async def plot_js(request):
        return Response(PLOT.read_text(), media_type="text/javascript")

    async def snapshot(request):
        return JSONResponse(state.snapshot()[1])

    async def events(request):
        async def stream():
            seen = -1
            while True:
                version, data = state.snapshot()
                if version != seen:
                    seen = version
                    yield f"data: {json.dumps(data)}\n\n"
                    if data["status"] in FINAL:
                        return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(poll)
        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def picture(request):
        name = request.path_params["name"]
        data = state.images.get(name)
        if data is None:
            return Response("no such image yet", status_code=404)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    return Guard(Starlette(routes=[Route("/", page), Route("/plot.js", plot_js), Route("/events", events),
                                   Route("/state.json", snapshot), Route("/{name:str}.png", picture)]), port)


class LiveServer:
    """uvicorn serving `app(state, port)` on 127.0.0.1:port (0: a free one) in a daemon thread."""

    def __init__(self, state: LiveState, port: int = 0):
        uvicorn = modules()
        self.socket = bound_socket(HOST, port, "--web")
        self.port = self.socket.getsockname()[1]
        self.state = state
        # log_config None: uvicorn leaves the process's logging as it is (its dictConfig would replace handlers)
        config = uvicorn.Config(app(state, self.port), log_level="warning", lifespan="off", log_config=None,
                                access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="nst_jax-live-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{host_port(HOST, self.port)}/"

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(1.5)   # a page still connected gets the final event and fetches the final image
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.socket.close()


def bound_socket(host: str, port: int, flag: str) -> socket.socket:
    """A listening socket on host:port (0: a free port) for uvicorn; NSTError naming `flag` if it cannot be."""
    if not 0 <= port < 65536:
        raise NSTError(f"{flag} {port}: a port from 1 to 65535 (0: any free one)")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family)
    except OSError as err:
        raise NSTError(f"{flag} {port}: cannot listen on {host}:{port} ({err.strerror or err})") from None
