"""The one guard of nst_jax's HTTP surfaces (the live page of a run, sweep or video, and the studio),
and the one way they send a file.

`Guard` (ASGI middleware) answers a request only when its Host header names an address the server was
started for, port included: the loopback names (127.0.0.1, localhost, [::1]) and, with the studio's
`--host`, that address too. So a page of another name that resolves to this machine (DNS rebinding)
gets 403, not the user's paths and images. A browser's Origin header must name one of the same
addresses. A request that changes anything (not GET or HEAD) must carry the page's own header, which a
plain cross-site form or image cannot send; with a token, every request must carry it too.

`send_file` opens a file below a folder without following any symbolic link on the way (each component
opened with O_NOFOLLOW from the folder down), so a link planted in a run or upload folder is never
served.
"""

from __future__ import annotations

import ipaddress
import mimetypes
import os
import secrets
import socket
from pathlib import Path

from nst_jax.base.errors import NSTError
from nst_jax.files import untrusted

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
COOKIE = "nst_jax_studio"     # where the page keeps the token once it was given as ?token=
SAFE = ("GET", "HEAD")
CHUNK = 1 << 16


def canonical(host: str) -> str:
    """A host name or address as a browser writes it in a Host header (lower case; IPv6 compressed)."""
    host = host.strip().strip("[]").lower()
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


def host_port(host: str, port: int) -> str:
    """`host:port` as it appears in a URL and a Host header (an IPv6 address in brackets)."""
    host = canonical(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def own_names() -> set[str]:
    """This machine's names and addresses: what other machines use to reach a server on a wildcard address."""
    names = set()
    try:
        names |= {socket.gethostname(), socket.getfqdn()}
        names |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    return {canonical(n) for n in names if n}


def allowed_hosts(port: int, host: str | None = None) -> frozenset[str]:
    """The Host headers a server on `port` answers to: the loopback names and `host` (a wildcard address:
    this machine's names), each with the port (and without it on port 80, as browsers write it)."""
    names = {canonical(n) for n in LOOPBACK}
    if host is not None:
        names.add(canonical(host))
        if canonical(host) in WILDCARD:
            names |= own_names()
    hosts = {host_port(n, port) for n in names}
    if port == 80:
        hosts |= {h.rsplit(":", 1)[0] for h in hosts}
    return frozenset(hosts)


class Guard:
    """ASGI middleware in front of an app served on `port` (and `host`, beyond loopback): see the module."""

    def __init__(self, inner, port: int, host: str | None = None, token: str | None = None,
                 header: str | None = None):
        self.inner, self.token, self.header = inner, token, header
        self.hosts = allowed_hosts(port, host)
        self.origins = frozenset(f"http://{h}" for h in self.hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            why = self.refusal(scope)
            if why is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                from starlette.responses import JSONResponse
                await JSONResponse({"ok": False, "message": why}, status_code=403)(scope, receive, send)
                return
        await self.inner(scope, receive, send)

    def refusal(self, scope) -> str | None:
        """Why a request is refused, or None."""
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", ())]
        hosts = [v.lower() for k, v in headers if k == "host"]
        if len(hosts) != 1 or hosts[0] not in self.hosts:
            return f"refused: this page answers only to {', '.join(sorted(self.hosts))}"
        if any(v.lower() not in self.origins for k, v in headers if k == "origin"):
            return "refused: a request from another site"
        if self.token is not None:
            from starlette.requests import HTTPConnection
            r = HTTPConnection(scope)
            given = r.query_params.get("token") or r.cookies.get(COOKIE) or ""
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                return "this studio needs its token: open the address it printed"
        if scope["type"] == "http" and scope.get("method") not in SAFE:
            if self.header is None or [v for k, v in headers if k == self.header] != ["1"]:
                return "refused: not sent by the page"
        return None


def open_inside(folder: str | os.PathLike, path: str | os.PathLike):
    """`path` (below `folder`) opened for reading in binary, or None when it is missing, not a regular file,
    not below `folder`, or reached through a symbolic link: every component from `folder` down is opened
    with O_NOFOLLOW relative to the one before, so no link (nor a swap to one) leads outside."""
    try:
        parts = Path(path).relative_to(folder).parts
    except ValueError:
        return None
    if not parts or any(p in ("", ".", "..") for p in parts):
        return None
    nofollow = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = None
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        for part in parts[:-1]:
            below = os.open(part, nofollow | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
        found = os.open(parts[-1], nofollow | os.O_NONBLOCK, dir_fd=fd)   # a named pipe does not block
    except OSError:
        return None
    finally:
        if fd is not None:
            os.close(fd)
    try:
        return untrusted.regular_file(found, str(path))
    except NSTError:
        return None


def read_inside(folder: str | os.PathLike, path: str | os.PathLike) -> bytes | None:
    """The bytes of `open_inside(folder, path)`, or None."""
    f = open_inside(folder, path)
    if f is None:
        return None
    with f:
        return f.read()


def send_file(folder: str | os.PathLike, path: str | os.PathLike, media_type: str | None = None,
              headers: dict | None = None, missing: str = "not found"):
    """A response streaming `open_inside(folder, path)` (its size as it was opened), or 404 `missing`."""
    from starlette.responses import Response, StreamingResponse
    f = open_inside(folder, path)
    if f is None:
        return Response(missing, status_code=404)
    size = os.fstat(f.fileno()).st_size

    def chunks():
        with f:
            left = size
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
    media_type = media_type or mimetypes.guess_type(Path(path).name)[0] or "application/octet-stream"
    return StreamingResponse(chunks(), media_type=media_type,
                             headers={**(headers or {}), "Content-Length": str(size)})
