"""One run spanning several processes — GPU nodes of a cluster, or processes on one machine.

Every process runs the same program on its own devices (`jax.distributed`); the image is split across
all of them along its height (`sharding`). Process 0 is the writer: it reads and writes the run's
files (image, sidecar, log, checkpoint). The others write into a private temporary folder that they
remove at the end, and take from process 0 whatever it decided from its files — where the run starts
and the state it starts from — so all processes step in lockstep. Reading a split array back to the
host gathers it from every process (a collective: all processes make the same calls in the same order,
which the shared loop guarantees).
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import numpy as np

from nst_jax.base.errors import NSTError


def initialize(coordinator: str, processes: int, process_id: int) -> None:
    """Join the run's processes (before anything touches a device). On CPU the collectives go through
    Gloo (TCP), so processes on one machine or several can test what GPU nodes do over NCCL."""
    if processes < 1 or not 0 <= process_id < processes:
        raise NSTError(f"--process-id must be in 0…{processes - 1} for --processes {processes}, got {process_id}")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NSTError(f"--coordinator {coordinator!r}: expected HOST:PORT, e.g. node0:12345")
    if process_id != 0:
        wait_for_coordinator(host, int(port), coordinator)
    print(f"nst_jax: process {process_id} of {processes} joining the run at {coordinator} (up to "
          f"{JOIN_TIMEOUT_S} s for every process to arrive)", file=sys.stderr, flush=True)
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator, num_processes=processes, process_id=process_id,
                                   initialization_timeout=JOIN_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - a bad address or an unreachable coordinator
        raise NSTError(f"could not join the run at --coordinator {coordinator} as process {process_id} of "
                       f"{processes}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


JOIN_TIMEOUT_S = 300      # how long the processes wait for each other
REACH_TIMEOUT_S = 60      # how long a process other than 0 waits for process 0's address to answer


def wait_for_coordinator(host: str, port: int, coordinator: str, timeout: float | None = None) -> None:
    """Return once process 0's address accepts a connection; NSTError after `timeout` seconds (default
    REACH_TIMEOUT_S; XLA's own client would wait its whole timeout in silence and then abort the process)."""
    import socket
    import time
    timeout = REACH_TIMEOUT_S if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise NSTError(f"--coordinator {coordinator}: nothing answers there after {timeout:.0f} s ({err.strerror or err}); "
                               f"start process 0 first, with the same --coordinator") from None
            time.sleep(0.5)


def count() -> int:
    return jax.process_count()


def is_writer() -> bool:
    return jax.process_index() == 0


def to_host(a) -> np.ndarray:
    """A device array as a host array — gathered from every process when it is split across them."""
    if isinstance(a, jax.Array) and not (a.is_fully_addressable or a.is_fully_replicated):
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)


def from_writer(read, placeholder: Any) -> Any:
    """What `read()` gives on process 0 (which reads the run's files), on every process; the others pass
    `placeholder`, a tree of the same shapes."""
    return agree(read() if is_writer() else placeholder)


def agree(tree: Any) -> Any:
    """Process 0's value of a pytree of arrays, on every process (itself when there is one process).
    Every process passes a tree of the same shapes."""
    if count() == 1:
        return tree
    from jax.experimental import multihost_utils
    return jax.tree.map(np.asarray, multihost_utils.broadcast_one_to_all(tree))
