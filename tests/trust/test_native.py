"""What nst_jax loads as code from its cache is checked first: the fused kernel's library (`nst_jax.fused`)
only when its bytes match the SHA-256 recorded when it was built, else built again (a truncated library
would end the process with SIGBUS, another one would run other code); a compiled program kept by JAX's
cache (`nst_jax.compiler`) only under the key it was written for, else compiled again. In child processes:
a crash signal, a loaded library and JAX's cache folder are per process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CONTENT, ROOT, SMALL_FLAGS, STYLE
from nst_jax.machine import identity

_SHOW = "from nst_jax.model import fused; why = fused.why_unavailable(); print(why if why else fused.library().path)"


def _child(code: str | list, cache: Path, timeout: float = 300, **extra) -> subprocess.CompletedProcess:
    """`python -c code` (or `python *code`) with its own cache folder and JAX's cache left to nst_jax."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "NST_JAX_COMPILE_CACHE")}
    env.update(PYTHONPATH=str(ROOT), NST_JAX_CACHE=str(cache), **extra)
    args = ["-c", code] if isinstance(code, str) else code
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A cache folder with the kernel built in it (by a child process), copied for each test."""
    if shutil.which(os.environ.get("CXX") or "g++") is None:
        pytest.skip("no C++ compiler to build the fused kernel with (install g++)")
    cache = tmp_path_factory.mktemp("built")
    child = _child(_SHOW, cache)
    if child.returncode != 0 or not child.stdout.strip().endswith(".so"):
        pytest.skip(f"the fused kernel cannot be built here: {child.stdout.strip()} {child.stderr[-300:]}")
    return cache


@pytest.fixture
def cache(built, tmp_path) -> tuple[Path, Path]:
    """(the cache folder, the library in it): a fresh copy of `built`."""
    copy = tmp_path / "cache"
    shutil.copytree(built, copy)
    return copy, next(copy.glob("native/*/winograd_f4-*.so"))


def _loaded_afresh(cache: Path, library: Path) -> None:
    """A new process gets the kernel, rebuilt in place: an ELF file whose SHA-256 is its record's."""
    child = _child(_SHOW, cache)
    assert child.returncode == 0, (child.returncode, child.stderr[-2000:])   # 135 was SIGBUS
    assert child.stdout.split() == [str(library)], child.stdout
    record = json.loads(library.with_name(library.name + ".sha256.json").read_text())
    data = library.read_bytes()
    assert data[:4] == b"\x7fELF" and record == {"sha256": hashlib.sha256(data).hexdigest()}


def test_a_truncated_kernel_library_is_built_again_never_loaded(cache):
    cache, library = cache
    whole = library.stat().st_size
    with open(library, "r+b") as f:       # as a full disk or a killed copy leaves it
        f.truncate(whole // 2)
    _loaded_afresh(cache, library)
    assert library.stat().st_size == whole


_FOREIGN = r"""
#include <cstdio>
#include <cstdlib>
extern "C" {
__attribute__((constructor)) static void ran() { const char* p = std::getenv("NST_FOREIGN_RAN");
                                                 if (p) { FILE* f = std::fopen(p, "w"); if (f) std::fclose(f); } }
int nst_winograd_f4_panel() { return 2; }
int nst_winograd_f4_lanes() { return 1; }
void NstWinogradF4() {}
}
"""


@pytest.mark.parametrize("record", ["kept", "removed"])
def test_another_library_copied_over_the_kernel_is_never_loaded(cache, tmp_path, record):
    """A valid library with the kernel's symbols, whose code would run as soon as it is loaded; with the
    kernel's record beside it, or none (as a build by hand would leave it)."""
    cache, library = cache
    if record == "removed":
        library.with_name(library.name + ".sha256.json").unlink()
    source = tmp_path / "foreign.cc"
    source.write_text(_FOREIGN)
    cxx = os.environ.get("CXX") or "g++"
    made = subprocess.run([cxx, "-shared", "-fPIC", str(source), "-o", str(tmp_path / "f.so")], capture_output=True,
                          text=True)
    assert made.returncode == 0, made.stderr
    shutil.copyfile(tmp_path / "f.so", library)
    ran = tmp_path / "ran"
    assert _child(f"import ctypes; ctypes.CDLL({str(tmp_path / 'f.so')!r})", cache, NST_FOREIGN_RAN=str(ran)
                  ).returncode == 0 and ran.exists()          # the check below is able to fail
    ran.unlink()
    child = _child(_SHOW + "; print(fused.library().panel)", cache, NST_FOREIGN_RAN=str(ran))
    assert child.returncode == 0 and not ran.exists(), child.stderr[-2000:]
    assert child.stdout.split()[0] == str(library) and int(child.stdout.split()[1]) != 2
    _loaded_afresh(cache, library)


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


@pytest.mark.parametrize("damage", ["record missing", "record deep", "record huge", "record a named pipe",
                                    "record not an object", "library a named pipe"])
def test_a_damaged_digest_record_or_library_that_is_no_file_means_built_again(cache, damage):
    """Neither is read past what it can be (a named pipe would block the load for ever; a record nested
    2000 deep would end JSON's parser in a RecursionError)."""
    cache, library = cache
    record = library.with_name(library.name + ".sha256.json")
    if damage == "record missing":
        record.unlink()
    if damage == "record deep":
        record.write_text("[" * 2000 + "]" * 2000)
    if damage == "record not an object":
        record.write_text(json.dumps([hashlib.sha256(library.read_bytes()).hexdigest()]))
    if damage == "record huge":
        record.write_text(json.dumps({"sha256": hashlib.sha256(library.read_bytes()).hexdigest(), "x": "0" * 2**20}))
    if damage == "record a named pipe":
        _fifo(record)
    if damage == "library a named pipe":
        _fifo(library)
    _loaded_afresh(cache, library)


def test_a_kernel_that_cannot_be_built_again_is_not_offered_with_one_line_and_never_loaded(cache):
    """Damaged, with its record's place taken by a folder: the kernel is not built again nor loaded, and
    why is one line; the planner then chooses among the other forms."""
    cache, library = cache
    record = library.with_name(library.name + ".sha256.json")
    with open(library, "r+b") as f:
        f.truncate(library.stat().st_size // 2)
    record.unlink()
    record.mkdir()
    child = _child(_SHOW + "; print(fused.fits(64, 64))", cache)
    assert child.returncode == 0, child.stderr[-2000:]
    why, fits = child.stdout.strip().splitlines()
    assert "cannot write" in why and str(record) in why and fits == "False"


def _run(tmp_path: Path, name: str, size: int, cache: Path) -> None:
    args = [str(CONTENT), str(STYLE), *SMALL_FLAGS, "--size", str(size), "--iterations", "3", "--quiet",
            "-o", str(tmp_path / f"{name}.png")]
    keep_all = ("import sys, jax; from nst_jax import run; from nst_jax.machine import compiler; compiler.keep_compiled_programs(); "
                "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0); sys.exit(run.main(sys.argv[1:]))")
    child = _child(["-c", keep_all, *args], cache, timeout=240, NST_JAX_TUNE="off")   # kept however fast
    assert child.returncode == 0, child.stderr[-3000:]


def test_a_compiled_program_copied_over_another_is_compiled_again_with_the_same_numbers(tmp_path):
    """JAX's cache finds a program by its file name alone: a program kept for 40 px copied over the 48 px
    one would run on 48 px images (an error deep in the loop on every run). It is dropped and compiled
    again, and the run ends on the same image; so is a damaged one; a named pipe in its place is not read."""
    from nst_jax.files import image
    cache = tmp_path / "cache"
    folder = cache / "compiled" / identity.machine_key(identity.machine(backend=False))
    _run(tmp_path, "first", 48, cache)
    entry, = folder.glob("jit_counted_step-*-cache")
    _run(tmp_path, "other", 40, cache)
    other, = set(folder.glob("jit_counted_step-*-cache")) - {entry}
    kept = entry.read_bytes()
    shutil.copyfile(other, entry)
    _run(tmp_path, "planted", 48, cache)
    assert entry.read_bytes() != other.read_bytes()                       # compiled and kept again
    first = image.load_image(tmp_path / "first.png")
    np.testing.assert_array_equal(image.load_image(tmp_path / "planted.png"), first)
    entry.write_bytes(kept[: len(kept) // 2])
    _run(tmp_path, "damaged", 48, cache)
    np.testing.assert_array_equal(image.load_image(tmp_path / "damaged.png"), first)
    assert len(entry.read_bytes()) > len(kept) // 2
    _fifo(entry)                                     # read, it would block the run for ever: passed over
    _run(tmp_path, "pipe", 48, cache)
    np.testing.assert_array_equal(image.load_image(tmp_path / "pipe.png"), first)
