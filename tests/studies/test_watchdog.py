"""`nst_jax.watchdog`: once its process is gone, the processes that process started are ended too."""

import os
import subprocess
import sys
import time

import pytest

from nst_jax.studies.watchdog import alive, descendants, process_table

from conftest import ROOT

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")


def test_descendants_and_start_times():
    parent = subprocess.Popen(["bash", "-c", "sleep 30 & sleep 30"])
    time.sleep(0.5)
    try:
        found = descendants(parent.pid, process_table())
        assert len(found) == 2 and all(alive(pid, start) for pid, start in found.items())
        assert not alive(next(iter(found)), "0")   # another start time: another process
        assert descendants(os.getpid(), process_table()).keys() >= {parent.pid, *found}
    finally:
        for pid in descendants(parent.pid, process_table()):
            os.kill(pid, 9)
        parent.kill()
        parent.wait()


def test_the_orphans_of_a_killed_process_are_ended():
    parent = subprocess.Popen(["bash", "-c", "sleep 60 & sleep 60"])
    time.sleep(0.5)
    children = descendants(parent.pid, process_table())
    dog = subprocess.Popen([sys.executable, "-m", "nst_jax.studies.watchdog", str(parent.pid)],
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    time.sleep(1.5)
    parent.kill()
    parent.wait()
    assert any(alive(pid, start) for pid, start in children.items())   # orphaned, still running
    assert dog.wait(timeout=30) == 0
    assert not any(alive(pid, start) for pid, start in children.items())
