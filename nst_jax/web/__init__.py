"""What nst_jax serves over HTTP: the live page (`--web`) of a run, a sweep or a video, and the one guard
every server goes through (`guard`: the hosts a page answers to, and files sent without following
links). The live page shows a run's current image, its weighted losses as a plot, its header, iteration,
rate and ETA, pushed to the browser as server-sent events while the run goes on (`live`: the state and
its image encoder, off the run's hot path; `server`: the Starlette app served by uvicorn on
127.0.0.1). Needs the `studio` extra: pip install 'nst_jax[studio]'.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path


@contextlib.contextmanager
def watching(port: int | None, title: str):
    """A `live.LiveState` served on 127.0.0.1:port for the block (None: no page, yields None); its final
    status (finished, interrupted or failed) is set when the block ends, so the page shows it, and once the
    server has closed the user is told so (the address no longer answers)."""
    if port is None:
        yield None
        return
    from nst_jax.web.live import LiveState
    from nst_jax.web.server import LiveServer
    state = LiveState(Path(title).name)
    server = LiveServer(state, port)
    try:
        with server:
            print(f"live page: {server.url}", file=sys.stderr, flush=True)
            try:
                yield state
            except KeyboardInterrupt:
                state.finish("interrupted", "stopped; run the same command to continue")
                raise
            except BaseException as err:
                state.finish("failed", str(err).splitlines()[0] if str(err) else type(err).__name__)
                raise
            state.finish("finished")
    finally:
        print(f"live page: {server.url} closed (it showed the run's final state; the result and its files stay)",
              file=sys.stderr, flush=True)
