"""`python -m nst_jax.studies.watchdog PID`: once process PID is gone, end the processes it had started.

A sweep that starts a local Ray cluster and is then killed (SIGKILL, a scheduler's timeout) leaves part
of that cluster behind: Ray's own reaper stops most of it, not its agents. The watchdog, started in a
session of its own, remembers every descendant of PID while PID lives — each with its start time, so
that a reused pid is never mistaken for one — and when PID has gone it ends those still alive
(SIGTERM, then SIGKILL). Linux only: it reads /proc.
"""

from __future__ import annotations

import os
import signal
import sys
import time


def process_table() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, start time)} of every process, from /proc."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            procs[int(name)] = (int(fields[1]), fields[19])
    return procs


def descendants(root: int, procs: dict[int, tuple[int, str]]) -> dict[int, str]:
    """{pid: start time} of every descendant of `root`."""
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in procs.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def alive(pid: int, start: str, procs: dict[int, tuple[int, str]] | None = None) -> bool:
    procs = process_table() if procs is None else procs
    return pid in procs and procs[pid][1] == start


def watch(driver: int, poll_s: float = 1.0, grace_s: float = 3.0) -> None:
    seen: dict[int, str] = {}
    while True:
        procs = process_table()
        if driver not in procs:
            break
        seen.update(descendants(driver, procs))
        seen.pop(os.getpid(), None)  # the watchdog is the driver's child too
        time.sleep(poll_s)
    time.sleep(grace_s)  # Ray's reaper first
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = process_table()
        left = [pid for pid, start in seen.items() if alive(pid, start, procs)]
        for pid in left:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        if not left:
            return
        time.sleep(grace_s)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
