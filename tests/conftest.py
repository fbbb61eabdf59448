"""Shared fixtures: the embedded weights (loaded once), small sample images, one small run
configuration that every file uses (so its compiled programs are reused across files), and helpers
to call the command-line mains in-process."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for `bench` (the reference lives outside the package)

# runs leave every convolution to XLA without measuring (test_convforms measures, in caches of its own),
# and nothing goes to the user's cache (`convforms`)
os.environ["NST_JAX_TUNE"] = "off"
_MADE = [tempfile.mkdtemp(prefix="nst_jax_test_cache_")]
os.environ["NST_JAX_CACHE"] = _MADE[0]
# XLA's compiled programs are kept for the session, so that the many small runs of the same program (in
# this process, in the parallel test processes that inherit it and in the command-line subprocesses)
# compile it once; what a run computes and how often it traces (`compiles`) stay the same
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _MADE.append(tempfile.mkdtemp(prefix="nst_jax_test_xla_"))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _MADE[-1]
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# removed when the process that made them ends (the parallel test processes inherit them and end first)
atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _MADE])

SAMPLES = ROOT / "nst_jax" / "samples"
CONTENT = SAMPLES / "chelsea.png"
STYLE = SAMPLES / "ihc.png"


@pytest.fixture(scope="session")
def embedded():
    from nst_jax.model import weights
    return weights.load()


@pytest.fixture(scope="session")
def small_images():
    """(content, style) as float32 (1, 48, 64, 3) / (1, 64, 64, 3) arrays from the sample images."""
    from nst_jax.files import image
    c = image.load_image(CONTENT)
    s = image.load_image(STYLE)
    return image.resize(c, (48, 64))[None], image.resize(s, (64, 64))[None]


TORCH_REASON = ("torch is not installed: the live PyTorch parity tests need it "
                "(add its CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)")


def torch_or_skip():
    """torch, or skip the test with a reason that says how to run it."""
    return pytest.importorskip("torch", reason=TORCH_REASON)


def kill_when(proc, path: Path, timeout: float = 300) -> int:
    """kill -9 the child `proc` as soon as `path` exists (or it has ended, or `timeout` s have passed);
    its return code (−9 when it was killed)."""
    import signal
    import time
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def run_cli(*args, cwd=None, timeout=600):
    """Run `python -m nst_jax.run …` in a subprocess; returns CompletedProcess (text)."""
    import subprocess
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


# One small configuration for every end-to-end test: 48 px, three style layers, one content layer.
SMALL = dict(size=48, style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu3_2",),
             print_every=0, checkpoint_every=0, checkpoint_minutes=0)
SMALL_FLAGS = ["--size", "48", "--style-layers", "relu1_1,relu2_1,relu3_1", "--content-layers", "relu3_2"]


def small_cfg(output, **kw):
    """A validated small Config on the sample images writing `output`; keywords override."""
    from nst_jax.transfer.config import with_preset
    values = dict(SMALL, content=str(CONTENT), styles=(str(STYLE),), output=str(output), iterations=6)
    values.update(kw)
    return with_preset(values.pop("preset", "default"), **values)


def call_main(main, argv, capsys):
    """Run a command-line `main(argv)` in-process; returns (exit code, stdout, stderr lines)."""
    try:
        code = main(list(map(str, argv)))
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def one_error_line(main, argv, capsys) -> str:
    """Assert `main(argv)` fails with exit 2 and exactly one `error: …` line; return that line."""
    code, _, lines = call_main(main, argv, capsys)
    assert code == 2, (code, lines)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# the test files that took 44 s or more each (162 s down to 44 s, in roughly that order) on a 2-core AMD EPYC,
# 2026-12-03; every other file took under 40 s
SLOWEST_FIRST = ("test_print_size.py", "test_studio.py", "test_paper.py", "test_layers.py", "test_ray.py",
                 "test_solvers.py", "test_dissect.py", "test_run.py")


def pytest_collection_modifyitems(session, config, items):
    """Start the local Ray cluster of the `ray` tests before any test has run JAX: `ray.init` starts the
    cluster's processes with fork() and a pre-exec hook, and a fork after JAX has started its threads may
    deadlock (JAX warns). The command-line tools join Ray before they compute anything. With two test
    processes each starts one, as which of them runs the `ray` tests is settled only after collection.

    The slowest files come first (`SLOWEST_FIRST`), so that the two test processes end together rather than
    one of them starting a long file when the other has nothing left."""
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: a file's tests keep their order
    if not any(item.get_closest_marker("ray") for item in items):
        return
    try:
        import ray  # noqa: F401
    except ImportError:
        return
    from nst_jax.studies import ray_engine
    ray_engine.connect(None, num_cpus=2)


def browser_or_skip():
    """A headless Chromium (`bench.browser`), or the test is skipped with the reason there is none."""
    from bench import browser
    why = browser.missing()
    if why:
        pytest.skip(why)
    return browser.chromium()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_env() -> dict:
    """The environment of a `python -m nst_jax…` subprocess that imports this checkout."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(ROOT)}


# A solver state without a solver, for the loop, start and file tests
HASH = "0123456789abcdef"


class FakeState(NamedTuple):
    x: Any
    value: Any
    parts: dict
    iteration: Any
    evaluations: Any


def fake_state(value=100.0) -> FakeState:
    import jax.numpy as jnp
    return FakeState(jnp.full((1, 4, 4, 3), 0.5), jnp.float32(value),
                     {"content": jnp.float32(value), "style": jnp.float32(0.0), "tv": jnp.float32(0.0)},
                     jnp.int32(0), jnp.int32(1))
