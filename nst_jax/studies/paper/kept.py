"""The finished runs kept with the write-up, in `<out>/kept/`, so that the study goes on from a fresh checkout:
`<out>/runs/` (checkpoints and all) stays out of the repository, and a study longer than one sitting on one
machine would otherwise start again on the next.

After each sweep of a sitting, every finished run's result image, sidecar and loss log (gzip) are
copied into `kept/`, at the same path as under `runs/`, with the intermediate images the write-up shows;
the network reduction's runs with their rows. When the command starts, every run that `runs/` lacks is
restored from `kept/` (a restore cut short is finished, since what it wrote is what `kept/` holds).

What is restored is untrusted input: no file that is a symbolic link or under a folder that is one, only
files within the size limits, each record checked as the run's own reader checks it, the sidecar's settings
hash the one this run would have, the images PNGs of the run's size (from their headers, before decoding).
A kept run that fails a check is not restored (it is run again), with one line. A run that cannot be kept
is said in one line too, and the others are kept: keeping never ends the command.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Callable, Collection

from nst_jax.base.errors import NSTError
from nst_jax.files import records, untrusted
from nst_jax.files.fileio import write_bytes
from nst_jax.files.image import decode_png
from nst_jax.files.runfiles import RunFiles, parse_log
from nst_jax.studies.paper.common import finished
from nst_jax.transfer.identity import settings_hash

KEPT = "kept"
IMAGE_LIMIT = 2**24     # a kept image over 16 MB is not one of the study's results
MAX_INTERMEDIATES = 16  # a write-up shows a few of a run's intermediate images


def keep_runs(out: Path, experiment, shown: Callable[[object], Collection[int]] = lambda cfg: ()) -> int:
    """Copy each finished run of a sweep experiment into `out/kept` (those whose sidecar there differs), with
    the intermediate images at the iterations `shown(cfg)` (those the write-up shows); the number copied."""
    count = 0
    for _, cfg in _configs(experiment):
        here = RunFiles(cfg.output)
        there = _kept_files(out, here.image)
        try:
            if there is None or finished(cfg) is None:
                continue
            sidecar = untrusted.read_bytes(here.sidecar, "sidecar", links=False)
            if _same(there.sidecar, sidecar):
                continue
            _clear(out, there)   # an earlier result of the run: none of its files may outlive it
            for iteration, path in here.intermediates().items():
                if iteration in shown(cfg):
                    _copy(out, path, there.intermediate(iteration))
            if here.log.exists():
                _write(out, _gz(there.log), _gzip(here.log))
            _copy(out, here.image, there.image)
            _write(out, there.sidecar, sidecar)   # last: a kept run counts once its sidecar is there
            count += 1
        except (NSTError, OSError) as err:
            print(f"run not kept: {err}", file=sys.stderr)
    return count


def restore_runs(out: Path, experiment) -> int:
    """Restore, from `out/kept`, each run of a sweep experiment that `runs/` lacks; the number restored."""
    count = 0
    for _, cfg in _configs(experiment):
        here = RunFiles(cfg.output)
        there = _kept_files(out, here.image)
        try:
            if there is None or not there.sidecar.exists() or here.sidecar.exists() or here.checkpoint.exists():
                continue
            files = _checked_run(out, there, cfg, settings_hash(cfg))
            ours = [*here.intermediates().values(), *(p for p in (here.log, here.image) if p.exists())]
            count += _restore(out, files, ours)
        except (NSTError, OSError) as err:
            print(f"kept result not restored (the run is made again): {err}", file=sys.stderr)
    return count


def _checked_run(out: Path, there: RunFiles, cfg, expected_hash: str) -> list[tuple[Path, bytes]]:
    """The kept run's files, each checked, with the paths under `runs/` to restore them to (sidecar last)."""
    here = RunFiles(cfg.output)
    _no_links(out, there.image)
    sidecar_bytes = untrusted.read_bytes(there.sidecar, "kept sidecar", links=False)
    sidecar = records.sidecar(untrusted.parse_json(sidecar_bytes, f"kept sidecar {there.sidecar}"), there.sidecar)
    if sidecar.get("settings_hash") != expected_hash:
        raise NSTError(f"{there.sidecar}: made with other settings than this run's")
    if sidecar.get("interrupted"):
        raise NSTError(f"{there.sidecar}: an interrupted run")
    shots = there.intermediates()
    if len(shots) > MAX_INTERMEDIATES:
        raise NSTError(f"{there.image.parent}: {len(shots)} intermediate images, more than a write-up shows")
    files = [(here.log, _checked_log(_gz(there.log)))] if _gz(there.log).exists() else []
    files.append((here.image, _checked_image(there.image, cfg.size)))   # first: what marks the files nst_jax's
    files += [(here.intermediate(i), _checked_image(path, cfg.size)) for i, path in shots.items()]
    return files + [(here.sidecar, sidecar_bytes)]


def keep_reduction(out: Path, folder: Path) -> int:
    """Copy the network reduction's finished runs under `folder` (`runs/reduction`) into `out/kept`: each
    run's image, loss log and row (`<criterion>_<percent>.row.json`, last); the number copied."""
    count = 0
    for row in sorted(folder.rglob("*.row.json")) if folder.is_dir() else ():
        image, target = _row_image(row), _kept_path(out, row)
        try:
            data = untrusted.read_bytes(row, "network reduction row", links=False)
            if target is None or not image.is_file() or _same(target, data):
                continue
            _no_links(out, target)
            target.unlink(missing_ok=True)
            log = RunFiles(image).log
            _gz(_kept_path(out, log)).unlink(missing_ok=True)
            if log.exists():
                _write(out, _gz(_kept_path(out, log)), _gzip(log))
            _copy(out, image, _kept_path(out, image))
            _write(out, target, data)
            count += 1
        except (NSTError, OSError) as err:
            print(f"network reduction run not kept: {err}", file=sys.stderr)
    return count


def restore_reduction(out: Path, folder: Path, size: int) -> int:
    """Restore the network reduction's kept runs into `folder` where it lacks their rows, each checked (the
    row JSON within the limits, the image a PNG of `size` px, the log's records); whether a row answers
    this study's settings is checked where it is used (`pruning`). The number restored."""
    count = 0
    kept = out / KEPT / folder.relative_to(out / "runs")
    for row in sorted(kept.rglob("*.row.json")) if kept.is_dir() else ():
        target = folder / row.relative_to(kept)
        try:
            if target.exists() or target.is_symlink():
                continue
            _no_links(out, row)
            data = untrusted.read_bytes(row, "kept network reduction row", links=False)
            untrusted.parse_json(data, f"kept network reduction row {row}")
            files = [(_row_image(target), _checked_image(_row_image(row), size))]
            log = _gz(RunFiles(_row_image(row)).log)
            if log.exists():
                files.insert(0, (RunFiles(_row_image(target)).log, _checked_log(log)))
            count += _restore(out, files + [(target, data)], ())
        except (NSTError, OSError) as err:
            print(f"kept result not restored (the run is made again): {err}", file=sys.stderr)
    return count


def _restore(out: Path, files: list[tuple[Path, bytes]], ours: Collection[Path]) -> bool:
    """Write the checked files into `runs/` (a restore cut short left some of them: the same bytes), unless
    a file of the run there holds other bytes, or is one of `ours` (the run's files there) that the kept
    run lacks: then the run is this checkout's own, nothing is written over it, and one line says so."""
    targets = {path for path, _ in files}
    theirs = [p for p in ours if p not in targets] + [path for path, data in files if _differs(path, data)]
    if theirs:
        print(f"kept result not restored: {theirs[0]} is of this checkout's own run (it goes on; remove its "
              "files to restore the kept one)", file=sys.stderr)
        return False
    for path, data in files:
        _write(out, path, data)
    return True


def _differs(path: Path, data: bytes) -> bool:
    return (path.exists() or path.is_symlink()) and not _same(path, data)


def _row_image(row: Path) -> Path:
    return row.with_name(row.name[:-len(".row.json")] + ".png")


def _checked_log(path: Path) -> bytes:
    data = untrusted.gunzip(untrusted.read_bytes(path, "kept loss log", links=False), f"kept loss log {path}")
    parse_log(data, path)
    return data


def _checked_image(path: Path, size: int) -> bytes:
    data = untrusted.read_bytes(path, "kept image", IMAGE_LIMIT, links=False)
    decode_png(data, path, size)
    return data


def _configs(experiment):
    return [named for runs in experiment.runs().values() for named in runs]


def _kept_path(out: Path, path: Path) -> Path | None:
    """Where a file under `out/runs` is kept; None for a file elsewhere."""
    try:
        return out / KEPT / Path(path).relative_to(out / "runs")
    except ValueError:
        return None


def _kept_files(out: Path, image: Path) -> RunFiles | None:
    kept = _kept_path(out, image)
    return None if kept is None else RunFiles(kept)


def _gz(path: Path) -> Path:
    return path.with_name(path.name + ".gz")


def _gzip(log: Path) -> bytes:
    return gzip.compress(untrusted.read_bytes(log, "loss log", links=False), mtime=0)


def _clear(out: Path, there: RunFiles) -> None:
    """Remove a kept run's files, its sidecar first (so that what is left never counts as a kept run)."""
    _no_links(out, there.image)
    try:
        for path in [there.sidecar, there.image, _gz(there.log), *there.intermediates().values()]:
            path.unlink(missing_ok=True)
    except OSError as err:
        raise NSTError(f"{there.image.parent}: cannot replace the kept run ({err.strerror or err})") from None


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and \
            untrusted.read_bytes(path, "kept file", IMAGE_LIMIT, links=False) == data
    except NSTError:
        return False


def _copy(out: Path, source: Path, target: Path) -> None:
    _write(out, target, untrusted.read_bytes(source, "run file", IMAGE_LIMIT, links=False))


def _no_links(out: Path, path: Path) -> None:
    """NSTError if a folder between `out` and `path` is a symbolic link (nst_jax makes none)."""
    folder = path.parent
    while folder != out and folder != folder.parent:
        if folder.is_symlink():
            raise NSTError(f"{folder}: a symbolic link nst_jax did not make; remove it")
        folder = folder.parent


def _write(out: Path, path: Path, data: bytes) -> None:
    """`data` written atomically to `path` under `out`, refused if a folder on the way is a link."""
    _no_links(out, path)
    write_bytes(path, data)
