"""Shared fixtures: the embedded weights (loaded once), small sample images, torch if present."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for `bench` (the reference lives outside the package)

SAMPLES = ROOT / "nst_jax" / "samples"
CONTENT = SAMPLES / "chelsea.png"
STYLE = SAMPLES / "ihc.png"


@pytest.fixture(scope="session")
def embedded():
    from nst_jax import weights
    return weights.load()


@pytest.fixture(scope="session")
def small_images():
    """(content, style) as float32 (1, 48, 64, 3) / (1, 64, 64, 3) arrays from the sample images."""
    from nst_jax import image
    c = image.load_image(CONTENT)
    s = image.load_image(STYLE)
    return image.resize(c, (48, 64))[None], image.resize(s, (64, 64))[None]


def torch_or_skip():
    return pytest.importorskip("torch")


def run_cli(*args, cwd=None, timeout=600):
    """Run `python -m nst_jax.run …` in a subprocess; returns CompletedProcess (text)."""
    import subprocess
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
