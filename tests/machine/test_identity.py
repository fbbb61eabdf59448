"""This machine's identity and the cache folder: the key is stable (order of fields aside) and changes
with every field, the description reads the CPU, its vector flags, the versions and the backend, and the
cache folder follows NST_JAX_CACHE, then XDG_CACHE_HOME, then HOME."""

import hashlib
import json
import re
from pathlib import Path

import pytest

from nst_jax.machine import hardware, identity

INFO = {"cpu": "Some CPU, 2 cores, AVX2", "flags": "avx avx2 fma", "jax": "0.4.35", "jaxlib": "0.4.35",
        "xla_flags": "", "backend": "cpu"}


def test_machine_key_is_sixteen_hex_digits_of_the_sorted_record():
    key = identity.machine_key(INFO)
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert key == hashlib.sha256(json.dumps(INFO, sort_keys=True).encode()).hexdigest()[:16]
    assert identity.machine_key(dict(reversed(list(INFO.items())))) == key   # field order does not matter
    assert identity.machine_key(dict(INFO)) == key                          # the same record, the same key


@pytest.mark.parametrize("field", sorted(INFO))
def test_machine_key_changes_with_each_field(field):
    assert identity.machine_key({**INFO, field: INFO[field] + "x"}) != identity.machine_key(INFO)


def test_machine_key_changes_when_a_field_is_added_or_dropped():
    without = {k: v for k, v in INFO.items() if k != "backend"}
    assert identity.machine_key(without) != identity.machine_key(INFO)


def test_machine_describes_the_cpu_its_vector_flags_the_versions_and_the_backend(monkeypatch):
    import jax
    import jaxlib
    monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=None: {"sse2", "avx2", "fma", "amx_bf16", "ht", "aes"})
    monkeypatch.setattr(hardware, "describe_cpu", lambda cpuinfo=None: "Test CPU, 2 cores, AVX2")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    info = identity.machine()
    assert info == {"cpu": "Test CPU, 2 cores, AVX2", "flags": "amx_bf16 avx2 fma sse2",   # sorted, others dropped
                    "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                    "xla_flags": "--xla_force_host_platform_device_count=2", "backend": jax.default_backend()}
    bare = identity.machine(backend=False)
    assert "backend" not in bare and bare == {k: v for k, v in info.items() if k != "backend"}
    monkeypatch.delenv("XLA_FLAGS")
    assert identity.machine()["xla_flags"] == ""
    assert identity.machine_key(identity.machine()) != identity.machine_key(info)


def test_machine_is_stable_within_a_process():
    assert identity.machine_key(identity.machine()) == identity.machine_key(identity.machine())


def test_cache_folder_prefers_nst_jax_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NST_JAX_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert identity.cache_folder() == tmp_path / "mine"


def test_cache_folder_falls_back_to_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("NST_JAX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert identity.cache_folder() == tmp_path / "xdg" / "nst_jax"
    monkeypatch.setenv("NST_JAX_CACHE", "")            # empty counts as unset
    assert identity.cache_folder() == tmp_path / "xdg" / "nst_jax"


def test_cache_folder_falls_back_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("NST_JAX_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert identity.cache_folder() == tmp_path / "home" / ".cache" / "nst_jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert identity.cache_folder() == tmp_path / "home" / ".cache" / "nst_jax"
    assert isinstance(identity.cache_folder(), Path)
