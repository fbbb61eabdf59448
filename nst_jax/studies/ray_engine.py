"""The sweep's Ray engine: each chunk of runs (one run, or one compatible batch) is a Ray task.

Nothing assumes a shared file system. The driver owns the output folder: it sends a task the bytes of
its input images and of the files its runs already have (checkpoints, logs, results), the task runs
`transfer.run_many` once in a temporary folder of its worker, and each time the run has written its
checkpoints (every --checkpoint-every iterations) and at the end it yields the files that changed (a
Ray streaming generator); the driver writes them with the same atomic writes and layout as a local sweep. Paths inside sidecars
are the driver's (the task rewrites its own); the settings hash depends on file contents, not paths,
so a run continues on any worker — or locally — from the driver's files.

Faults: if a worker dies (a killed process, a lost node), the driver resubmits the chunk with the files
it holds — that is, from the last checkpoint it received — up to three attempts; since resuming is
exact, the final images equal an uninterrupted sweep's. A run that fails for its own reasons (NaN, an
unreadable image) is reported and not retried. Ray is the scheduler: one task per chunk with
`num_cpus`/`num_gpus`, so a GPU cluster runs one task per GPU.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import queue
import shlex
import socket
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from nst_jax.files import untrusted
from nst_jax.transfer.config import Config
from nst_jax.transfer.identity import INPUT_FIELDS, input_files
from nst_jax.base.errors import NSTError

MAX_ATTEMPTS = 3


# ------------------------------------------------------------------------------------------ driver

def connect(address: str | None, num_cpus: int | None = None) -> dict:
    """Join the Ray cluster at `address` ('auto', 'host:port' or 'ray://host:port'), or start a local
    one (address None); NSTError in one line when that fails. Returns the cluster's resources."""
    try:
        import ray
    except ImportError:
        raise NSTError("--engine ray needs Ray: pip install 'nst_jax[cluster]'") from None
    if address not in (None, "auto", "local"):
        hostport = address.split("://", 1)[-1]
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as err:
            raise NSTError(f"--address {address}: cannot reach a Ray cluster there ({err})") from None
    if ray.is_initialized():
        return ray.cluster_resources()
    try:
        if address in (None, "local"):
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, logging_level="ERROR",
                     object_store_memory=min(2 * 1024 ** 3, int(0.1 * os.sysconf("SC_PAGE_SIZE")
                                                                  * os.sysconf("SC_PHYS_PAGES"))))
            _start_watchdog()
        else:
            ray.init(address=address, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise NSTError(f"--address {address}: cannot join a Ray cluster ({str(err).splitlines()[0]})") from None
    return ray.cluster_resources()


def _start_watchdog() -> None:
    """Start `nst_jax.studies.watchdog` for this process (Linux only: it reads /proc), in a session of its own,
    with a plain exec (no fork of this process, which may run JAX's threads): a killed sweep's local
    cluster is ended with it."""
    import subprocess
    if not os.path.isdir("/proc"):
        return
    subprocess.Popen([sys.executable, "-m", "nst_jax.studies.watchdog", str(os.getpid())], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def payload(chunk: list[tuple[str, Config]]) -> dict:
    """What a task needs, as bytes: the input images and every file the chunk's runs have so far."""
    inputs = {p: Path(p).read_bytes() for name, cfg in chunk for p in input_files(cfg)}
    runs = []
    for name, cfg in chunk:
        folder = Path(cfg.output).parent
        files = {f.name: f.read_bytes() for f in folder.iterdir()
                 if f.is_file() and not f.name.startswith(".") and not f.name.endswith(".lock")} \
            if folder.is_dir() else {}
        runs.append({"name": name, "cfg": cfg, "files": files})
    return {"inputs": inputs, "runs": runs, "command": shlex.join(["python", *sys.orig_argv[1:]])}


def apply(bundle: dict, chunk: list[tuple[str, Config]]) -> None:
    """Write a task's files into the driver's run folders (atomically), and remove what it removed."""
    from nst_jax.files.fileio import write_bytes
    folders = {name: Path(cfg.output).parent for name, cfg in chunk}
    for name, files in bundle["files"].items():
        for filename, data in files.items():
            write_bytes(folders[name] / filename, data)
    for name, removed in bundle["removed"].items():
        for filename in removed:
            (folders[name] / filename).unlink(missing_ok=True)


def run_chunks(chunks: list[list[tuple[str, Config]]], *, address: str | None, cpus_per_task: float,
               gpus_per_task: float | None, on_bundle: Callable[[list, dict], None],
               on_failure: Callable[[list, str], None], attempts: int = MAX_ATTEMPTS) -> None:
    """Run every chunk as a Ray task (see the module docstring); on_bundle(chunk, bundle) after each
    segment's files are written, on_failure(chunk, message) when a chunk gives up."""
    import ray
    resources = connect(address)
    if gpus_per_task is None:
        gpus_per_task = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
    task = ray.remote(run_chunk_task).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)
    lock = threading.Lock()

    def one(chunk):
        for attempt in range(1, attempts + 1):
            with lock:
                data = payload(chunk)
            try:
                for ref in task.remote(data):
                    bundle = ray.get(ref)
                    with lock:
                        apply(bundle, chunk)
                        on_bundle(chunk, bundle)
                return
            except (ray.exceptions.RayError, ConnectionError) as err:
                if isinstance(err, ray.exceptions.RayTaskError) and isinstance(err.cause, NSTError):
                    with lock:
                        on_failure(chunk, str(err.cause))
                    return
                if attempt == attempts:
                    with lock:
                        on_failure(chunk, f"gave up after {attempts} attempts: {type(err).__name__}: "
                                          f"{str(err).splitlines()[0] if str(err) else ''}")
                    return
                print(f"warning: {', '.join(n for n, _ in chunk)}: the worker was lost "
                      f"({type(err).__name__}); resubmitting from the last checkpoint received", file=sys.stderr)

    with ThreadPoolExecutor(max_workers=max(1, min(len(chunks), 32))) as pool:
        for future in [pool.submit(one, chunk) for chunk in chunks]:
            future.result()


# ------------------------------------------------------------------------------------------ worker

def _relocate(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [_relocate(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _relocate(v, mapping) for k, v in value.items()}
    return value


def _driver_bytes(path: Path, mapping: dict[str, str], command: str, where: str) -> bytes:
    """A file as the driver should store it: sidecars and the result's PNG text with the driver's paths."""
    from nst_jax.files.runfiles import carries_record
    data = path.read_bytes()
    kind = carries_record(path.name)
    if kind == "sidecar":
        record = _relocate(untrusted.parse_json(data, f"sidecar {path}"), mapping) | {"command": command, "worker": where}
        return json.dumps(record, indent=2, default=str).encode()
    if kind == "result":
        from PIL import Image, PngImagePlugin
        with Image.open(io.BytesIO(data)) as im:
            text = im.text.get("nst_jax") if hasattr(im, "text") else None
            if text is None:
                return data
            record = _relocate(untrusted.parse_json(text, f"result {path}"), mapping) | {"command": command, "worker": where}
            info = PngImagePlugin.PngInfo()
            info.add_itxt("nst_jax", json.dumps(record, default=str))
            buffer = io.BytesIO()
            im.save(buffer, format="PNG", pnginfo=info)
            return buffer.getvalue()
    return data


def run_chunk_task(data: dict):
    """The Ray task (a generator): run the chunk in segments, yield each segment's changed files. Its
    temporary folder (the inputs and the runs' files) is removed when the task ends, however it ends."""
    import shutil
    root = Path(tempfile.mkdtemp(prefix="nst_jax_task_"))
    try:
        yield from _run_chunk(data, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _unpack(data: dict, root: Path) -> tuple[list[Config], list[Path], dict[str, str]]:
    """Write a task's inputs and run files under `root`: the runs' Configs there, their folders, and
    the map from the worker's paths back to the driver's."""
    local: dict[str, str] = {}
    for i, (path, content) in enumerate(data["inputs"].items()):
        target = root / "inputs" / str(i) / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        local[path] = str(target)
    cfgs, folders, mapping = [], [], {v: k for k, v in local.items()}
    for run in data["runs"]:
        folder = root / "runs" / run["name"]
        folder.mkdir(parents=True)
        for filename, content in run["files"].items():
            (folder / filename).write_bytes(content)
        cfg: Config = run["cfg"]
        moved = {name: tuple(local.get(v, v) for v in value) if isinstance(value, tuple) else local.get(value, value)
                 for name in INPUT_FIELDS if (value := getattr(cfg, name)) is not None}
        output = str(folder / Path(cfg.output).name)
        mapping[output] = cfg.output
        cfgs.append(dataclasses.replace(cfg, output=output, **moved))
        folders.append(folder)
    return cfgs, folders, mapping


def _run_chunk(data: dict, root: Path):
    from nst_jax.transfer import runs as transfer
    from nst_jax.model import weights as vgg_weights
    from nst_jax.transfer.loop import log_schedule

    where = f"{socket.gethostname()}:{os.getpid()}"
    cfgs, folders, mapping = _unpack(data, root)
    weights = vgg_weights.load(cfgs[0].weights)
    seen = {f: f.stat().st_mtime_ns for folder in folders for f in folder.iterdir()}
    bundles: queue.Queue = queue.Queue()

    def changed(iteration: int, done: bool, errors: dict) -> dict:
        """The files of every run that changed since the last bundle (read when it is made)."""
        bundle = {"iteration": iteration, "worker": where, "pid": os.getpid(), "files": {}, "removed": {},
                  "errors": errors, "done": done}
        for run, folder in zip(data["runs"], folders):
            now = {f: f.stat().st_mtime_ns for f in folder.iterdir() if not f.name.startswith(".")
                   and not f.name.endswith(".lock")}
            bundle["files"][run["name"]] = {f.name: _driver_bytes(f, mapping, data["command"], where)
                                            for f, t in now.items() if seen.get(f) != t}
            bundle["removed"][run["name"]] = [f.name for f in seen if f.parent == folder and f not in now]
            seen.update(now)
            for f in [f for f in seen if f.parent == folder and f not in now]:
                del seen[f]
        return bundle

    def run() -> None:  # one call of the runs; each interval's checkpoints become a bundle
        try:
            results = transfer.run_many(cfgs, loaded_weights=weights, save_at=log_schedule, say=lambda line: None,
                                        on_checkpoint=lambda it: bundles.put(changed(it, False, {})))
            errors = {data["runs"][i]["name"]: r.error for i, r in enumerate(results) if r.error is not None}
            bundles.put(changed(cfgs[0].iterations, True, errors))
        except BaseException as err:  # noqa: BLE001 - raised again in the task, where Ray reports it
            bundles.put(err)

    worker = threading.Thread(target=run, name="nst_jax-run", daemon=True)
    worker.start()
    while True:
        bundle = bundles.get()
        if isinstance(bundle, BaseException):
            raise bundle
        yield bundle
        if bundle["done"]:
            worker.join()
            return
