"""The files of one run: the only module that knows the output layout.

A run writing `out.png` owns, beside it:

    out.png                 the result (its parameters in the PNG's `nst_jax` text chunk)
    out.json                the sidecar: every parameter, final losses, time, device, command
    out.losses.jsonl        one JSON record per iteration (0 = the initial image)
    out.ckpt.npz            the whole solver state and its settings hash (resumable; removed when the
                            run finishes unless --keep-checkpoint)
    out.ckpt-<hash>.npz     an unfinished run's checkpoint set aside when the settings changed,
    out.losses-<hash>.jsonl and its log
    out_iter00050.png       intermediate images
    out.error.txt           why the run failed (sweeps and the studio only, in folders they own)
    out.lock                the pid of the process running it (removed when it ends)

A sweep folder holds `sweep.json` (its grid and runs) and one folder per run with `result.png`.

Before any work, a run is refused if one of these files exists and nst_jax did not write it (`check_ours`,
evidence read by `ownership`), unless --overwrite.
Every write is atomic (`fileio`), so an interrupted run never leaves a half-written file. The run
loop, the sweep and the report all go through `RunFiles`; nothing else builds these paths.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from nst_jax.files import checkpoints, image, ownership, records, untrusted
from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import (TEMP_PART, Lock, open_append, probe_writable, stale_temps,
                                  write_error, write_json, write_text)

SWEEP_MANIFEST = "sweep.json"   # a sweep folder's list of its grid and runs (beside out/<name>/result.png)
SWEEP_LOCK = "sweep.lock"       # the pid of the process running a sweep in that folder
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def carries_record(name: str) -> str | None:
    """What in a run folder's file `name` holds the run's record (with paths in it): 'sidecar' (a .json),
    'result' (a result PNG's text chunk, not an intermediate image's), else None."""
    if name.endswith(".json"):
        return "sidecar"
    if name.endswith(".png") and not re.search(r"_iter\d+\.png$", name):
        return "result"
    return None


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL loss log, each checked (`records.log_record`); NSTError if unreadable."""
    path = Path(path)
    return parse_log(untrusted.read_bytes(path, "loss log"), path)


def parse_log(data: bytes, path: str | Path) -> list[dict]:
    """A loss log's bytes (read elsewhere), its records each checked; `path` names it in the message."""
    parsed = untrusted.json_lines(data.decode(errors="replace"), f"loss log {path}")
    return [records.log_record(r, path, i) for i, r in parsed]


class RunFiles:
    """The paths, reads and atomic writes of the run whose result image is `output`."""

    def __init__(self, output: str | os.PathLike):
        self.image = Path(output)
        stem = self.image.with_suffix("")
        self.sidecar = Path(f"{stem}.json")   # not with_suffix: "a.b.png" must not share "a.json" with "a.png"
        self.log = Path(f"{stem}.losses.jsonl")
        self.checkpoint = Path(f"{stem}.ckpt.npz")
        self.error = Path(f"{stem}.error.txt")
        self.lock_file = Path(f"{stem}.lock")
        self._intermediate = re.compile(re.escape(self.image.stem) + r"_iter(\d+)" + re.escape(self.image.suffix))

    def __repr__(self) -> str:
        return f"RunFiles({str(self.image)!r})"

    def paths(self) -> dict[str, str]:
        return {"image": str(self.image), "sidecar": str(self.sidecar), "log": str(self.log),
                "checkpoint": str(self.checkpoint)}

    # ------------------------------------------------------------------------------ checks
    def owns(self, path: str | os.PathLike) -> bool:
        """True if `path` (links followed) is one of the files this run may write: its image, sidecar, log,
        checkpoint, error, lock, set-aside checkpoints and logs, intermediate images, temporary files."""
        path = Path(path).resolve()
        if path.parent != self.image.parent.resolve():
            return False
        fixed = [self.image, self.sidecar, self.log, self.checkpoint, self.error, self.lock_file]
        stem = re.escape(self.image.stem)
        h = records.SETTINGS_HASH.pattern
        names = [re.escape(p.name) for p in fixed] + [stem + r"_iter\d+" + re.escape(self.image.suffix),
                                                      stem + rf"\.ckpt-{h}\.npz", stem + rf"\.losses-{h}\.jsonl"]
        written = "|".join(names)
        return re.fullmatch(rf"(?:{written})|\.(?:{written})\.{TEMP_PART.pattern}\.tmp", path.name) is not None

    def check_output(self, inputs: list[str], overwrite: bool = False) -> bool:
        """NSTError if the output is not an image name, if any file the run may write is one of the inputs,
        if one exists that nst_jax did not write (`check_ours`), or if its sidecar and log belong to a result
        of the same name with another extension. True if `overwrite` lets the run replace such files."""
        if self.image.suffix.lower() not in IMAGE_SUFFIXES:
            raise NSTError(f"output {self.image}: use an image extension such as .png")
        for p in inputs:
            if self.owns(p):
                raise NSTError(f"output {self.image} would overwrite an input image: the run writes {Path(p).name} "
                               f"beside it; choose another -o/--output")
        self._not_a_folder()
        if self.check_ours(overwrite):
            return True
        others = [self.image.with_suffix(s) for s in IMAGE_SUFFIXES if self.image.with_suffix(s).name != self.image.name]
        record = self.read_sidecar() if any(o.exists() for o in others) else None
        owner = Path(str(record["config"].get("output", ""))).name if record is not None else None
        for other in others:
            if other.exists() and owner == other.name:
                raise NSTError(f"output {self.image}: {self.sidecar.name} and {self.log.name} belong to {other}; "
                               f"give this result another name (or move {other.name} away)")
        return False

    def check_ours(self, overwrite: bool = False) -> bool:
        """NSTError now, before any work, if a file this run may write exists and nst_jax did not write it
        (`ownership`), unless `overwrite`; then True: the run starts over, replacing it."""
        h = records.SETTINGS_HASH.pattern
        set_aside = re.compile(re.escape(self.image.stem) + rf"\.(?:ckpt-{h}\.npz|losses-{h}\.jsonl)")
        try:
            names = os.listdir(self.image.parent)
        except OSError:  # no folder yet (or none to read): nothing there to replace
            names = []
        others = [(self.checkpoint, ownership.is_checkpoint, "a checkpoint")]
        for n in names:
            if set_aside.fullmatch(n):
                others.append((self.image.parent / n, *((ownership.is_checkpoint, "a checkpoint") if n.endswith(".npz")
                                                        else (ownership.is_loss_log, "a loss log"))))
            elif self._intermediate.fullmatch(n):
                others.append((self.image.parent / n, None, "an intermediate image"))
        found = ownership.foreign(self.image, self.sidecar, self.log, self.lock_file, others)
        if found and not overwrite:
            raise NSTError(f"output {self.image}: {found[0]} {found[1]}; nst_jax replaces no file it did not "
                           f"write: choose another -o/--output, or pass --overwrite to replace it")
        return found is not None

    def _not_a_folder(self) -> None:
        if self.image.is_dir():
            raise NSTError(f"output {self.image}: is a folder; give an image file name")

    def lock(self) -> Lock:
        """The run's lock (one process per output at a time); entering it also removes the temporary
        files that a killed earlier run left behind."""
        return _RunLock(self)

    def remove_stale_temps(self) -> None:
        for path in (self.image, self.sidecar, self.log, self.checkpoint):
            for tmp in stale_temps(path):
                try:
                    tmp.unlink()
                except OSError:
                    pass

    def check_writable(self) -> list[Path]:
        """NSTError now, before any work, if the output cannot be written (a folder in its place, a
        file where its folder should be, no permission). Returns the folders it had to create, deepest
        first, so that a run that fails before it writes anything can remove them again."""
        self._not_a_folder()
        created, folder = [], self.image.parent.absolute()
        while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
            created.append(folder)
            folder = folder.parent
        try:
            self.image.parent.mkdir(parents=True, exist_ok=True)
            probe_writable(self.image.parent, self.image.name)
        except OSError as err:
            remove_empty(created)
            raise write_error(self.image, err) from None
        return created

    # ------------------------------------------------------------------------ intermediates
    def scale_output(self, size: int) -> Path:
        """The result of one coarser scale of a coarse-to-fine run (`out_s256.png`): a run of its own."""
        return self.image.with_name(f"{self.image.stem}_s{size}{self.image.suffix}")

    def intermediate(self, iteration: int) -> Path:
        return self.image.with_name(f"{self.image.stem}_iter{iteration:05d}{self.image.suffix}")

    def intermediates(self) -> dict[int, Path]:
        """The intermediate images on disk, by iteration."""
        found = {}
        if self.image.parent.is_dir():
            for path in self.image.parent.iterdir():
                m = self._intermediate.fullmatch(path.name)
                if m:
                    found[int(m.group(1))] = path
        return dict(sorted(found.items()))

    def write_intermediate(self, iteration: int, img: np.ndarray) -> None:
        image.save_image(self.intermediate(iteration), img)

    # ------------------------------------------------------------------------------ result
    def write_result(self, img: np.ndarray, record: dict) -> None:
        """The result image (the record in its text chunk), then the sidecar."""
        image.save_image(self.image, img, {"nst_jax": json.dumps(record, default=str)})
        write_json(self.sidecar, record)

    def write_image(self, img: np.ndarray, text: dict | None = None) -> None:
        image.save_image(self.image, img, None if text is None else {"nst_jax": json.dumps(text, default=str)})

    def read_sidecar(self) -> dict | None:
        """The sidecar's record, checked (`records.sidecar`), or None if there is none; NSTError naming the
        file and the field if it is unreadable or has a wrong field."""
        if not self.sidecar.exists():
            return None
        try:
            record = untrusted.read_json(self.sidecar, "sidecar")
        except NSTError as err:
            raise NSTError(f"{err}; delete it or pass --restart") from None
        return records.sidecar(record, self.sidecar)

    def finished(self, target: int, rule=None) -> bool:
        """True if the result exists and its sidecar says it reached `target` iterations, or that a
        stopping rule `rule` covers ended it (`StopRule.covers`)."""
        record = self.read_sidecar()
        return record is not None and self.image.exists() and \
            (record.get("iteration", -1) >= target or (rule is not None and rule.covers(record)))

    def write_error(self, message: str) -> None:
        write_text(self.error, message.rstrip() + "\n")

    def clear_error(self) -> None:
        if self.error.exists():
            self.error.unlink()

    def read_error(self) -> str | None:
        try:
            return untrusted.read_bytes(self.error, "error record", 2**16).decode(errors="replace").strip()
        except NSTError:
            return None

    # --------------------------------------------------------------------------------- log
    def start_log(self, record: dict) -> None:
        write_text(self.log, json.dumps(record) + "\n")

    def rewind_log(self, upto: int) -> None:
        """Keep the log lines up to iteration `upto` (the checkpoint's), atomically."""
        if not self.log.exists():
            return
        kept = []
        for line in untrusted.read_bytes(self.log, "loss log").decode(errors="replace").splitlines():
            try:
                record = untrusted.parse_json(line, f"loss log {self.log}")
                if record["iteration"] <= upto:
                    kept.append(line)
            except (NSTError, KeyError, TypeError):
                break
        write_text(self.log, "\n".join(kept) + ("\n" if kept else ""))

    def open_log(self):
        return open_append(self.log)

    def read_log(self) -> list[dict]:
        return read_log(self.log) if self.log.exists() else []

    # -------------------------------------------------------------------------- checkpoint (`checkpoints`)
    def save_checkpoint(self, state, **meta) -> None:
        """`checkpoints.save` at this run's checkpoint path (see there for `meta`)."""
        checkpoints.save(self.checkpoint, state, **meta)

    def checkpoint_meta(self) -> dict | None:
        return checkpoints.read_meta(self.checkpoint)

    def load_checkpoint(self, template, config_hash: str) -> tuple[Any, dict]:
        return checkpoints.load(self.checkpoint, template, config_hash)

    def load_best(self, shape: tuple[int, ...]) -> tuple[int, np.ndarray] | None:
        return checkpoints.load_best(self.checkpoint, shape) if self.checkpoint.exists() else None

    def load_light_checkpoint(self, shape: tuple[int, ...], config_hash: str) -> tuple[np.ndarray, dict]:
        return checkpoints.load_light(self.checkpoint, shape, config_hash)

    def aside(self, config_hash: str) -> Path:
        """Where an unfinished run's checkpoint made with other settings is kept (its log beside it). The
        hash becomes part of a file name only once it is known to be one (16 hexadecimal digits)."""
        if not isinstance(config_hash, str) or not records.SETTINGS_HASH.fullmatch(config_hash):
            raise NSTError(f"checkpoint {self.checkpoint}: its settings hash {config_hash!r} is not one (16 "
                           f"hexadecimal digits); the file was edited or is corrupt: delete it or pass --restart")
        return Path(f"{self.image.with_suffix('')}.ckpt-{config_hash}.npz")

    def _aside_log(self, config_hash: str) -> Path:
        self.aside(config_hash)  # checks the hash
        return Path(f"{self.image.with_suffix('')}.losses-{config_hash}.jsonl")

    def set_aside(self, config_hash: str) -> Path:
        """Move the checkpoint and its log out of the way of a run with other settings."""
        if self.log.exists():
            self.log.replace(self._aside_log(config_hash))
        self.checkpoint.replace(self.aside(config_hash))
        return self.aside(config_hash)

    def restore(self, config_hash: str) -> None:
        """Bring a set-aside checkpoint and its log back."""
        if self._aside_log(config_hash).exists():
            self._aside_log(config_hash).replace(self.log)
        self.aside(config_hash).replace(self.checkpoint)

    def remove_checkpoint(self) -> None:
        if self.checkpoint.exists():
            self.checkpoint.unlink()

    def iteration_reached(self) -> int:
        """The iteration a resumable run has reached: its checkpoint's, else its (interrupted or
        finished) result's; 0 if neither."""
        meta = self.checkpoint_meta() if self.log.exists() else None
        if meta:
            return int(meta.get("iteration", 0))
        record = self.read_sidecar()
        return int(record.get("iteration", 0)) if record and self.image.exists() else 0


def remove_empty(folders: list[Path]) -> None:
    """Remove these folders (deepest first) where they are empty: what a failed run created and left unused."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


class _RunLock(Lock):
    def __init__(self, files: RunFiles):
        super().__init__(files.lock_file, f"output {files.image}")
        self.files = files

    def __enter__(self):
        super().__enter__()
        self.files.remove_stale_temps()
        return self
