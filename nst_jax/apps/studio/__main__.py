"""`nst-jax studio [FOLDER]`: the studio, served by uvicorn on 127.0.0.1 (see the package's
docstring). `--host` listens beyond this machine; then every request needs the printed token. One studio
serves a folder at a time (it holds the folder's lock)."""

from __future__ import annotations

import contextlib
import secrets
import sys

from nst_jax.base.errors import ArgumentParser, NSTError, cli, exit_with
from nst_jax.apps.studio import uploads
from nst_jax.web.guard import LOOPBACK, WILDCARD, canonical, host_port

DEFAULT_PORT = 8765


def build_parser():
    p = ArgumentParser(prog="nst-jax studio",
                       description="A local web studio for nst_jax: upload images, set the options, start, stop, "
                                   "continue and compare runs, each an ordinary run in FOLDER/runs/.")
    p.add_argument("folder", nargs="?", default="nst_jax-studio",
                   help="where uploads and runs are kept (default: nst_jax-studio); a new or empty folder, or one "
                        "the studio made")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine "
                   "only); any other address requires the token the studio prints")
    p.add_argument("--token", default=None, help="the token with --host (default: a random one)")
    p.add_argument("--max-upload", type=float, default=uploads.MAX_BYTES / 2**20, metavar="MB",
                   help=f"largest upload in MB (default {uploads.MAX_BYTES // 2**20})")
    return p


@cli()
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from nst_jax.machine import command
    command.prepare()   # before anything allocates or compiles
    from nst_jax.web.server import bound_socket, modules
    modules()
    if not 0 < args.max_upload <= 1024:
        raise NSTError("--max-upload: from above 0 to 1024 MB")
    wide = canonical(args.host) not in LOOPBACK
    token = (args.token or secrets.token_urlsafe(18)) if wide else None
    if args.token and not wide:
        raise NSTError("--token goes with --host (on 127.0.0.1 no token is needed)")
    from nst_jax.apps.studio.folder import StudioFolder
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(bound_socket(args.host, args.port, "--port"))
        folder = StudioFolder(args.folder).prepare()
        stack.enter_context(folder.lock())   # one studio per folder
        stopped = serve(args, folder, sock, token)
    print(f"studio: closed{f'; run {stopped} was stopped and continues when you press continue' if stopped else ''}",
          file=sys.stderr)
    return 0


def serve(args, folder, sock, token: str | None) -> str | None:
    """Serve the studio on `sock` until Ctrl-C; returns the id of the run that was stopped, if any."""
    import uvicorn
    from nst_jax.apps.studio.app import app
    from nst_jax.apps.studio.jobs import Runner
    address, port = sock.getsockname()[:2]
    if token and canonical(args.host) not in WILDCARD:
        address = args.host   # the name it was started for: the one its guard answers to
    runner = Runner(folder)
    asgi = app(folder, runner, token, int(args.max_upload * 2**20), closing=lambda: server.should_exit,
               port=port, host=args.host if token else None)
    url = f"http://{host_port(address, port)}/" + (f"?token={token}" if token else "")
    if token:
        print(f"studio: listening on {host_port(address, port)}, reachable from other machines; every request needs "
              f"the token, so open {url}", file=sys.stderr, flush=True)
    print(f"studio: {url} (folder {folder.root})", file=sys.stderr, flush=True)
    # a page's open event stream would hold a graceful shutdown forever: it gets 2 s
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="off", log_config=None,
                                           access_log=False, timeout_graceful_shutdown=2))
    try:
        server.run(sockets=[sock])   # until Ctrl-C (uvicorn raises it again once it has shut down)
    except KeyboardInterrupt:
        pass
    finally:
        stopped = runner.close()
    return stopped


if __name__ == "__main__":
    exit_with(main)
