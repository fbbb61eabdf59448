"""The studio's folder, the one module that names its files:

    FOLDER/nst_jax-studio.json          marks the folder as the studio's (a folder with other files and
                                        without it is refused, so nothing a user had is touched)
    FOLDER/nst_jax-studio.lock          held by the studio serving the folder (a second one is refused)
    FOLDER/uploads/<digest><suffix>     an uploaded image, named by its contents (never by the browser)
    FOLDER/uploads/<digest>.json        {"name": the name shown, "height", "width"}
    FOLDER/runs/<id>/result.png …       an ordinary nst_jax run: its sidecar, loss log, checkpoint
    FOLDER/runs/<id>/studio.json        what the page asked (`request.Request.record`)

Every name below FOLDER is made here from digests and fixed words, so no path from a browser reaches
a file. Everything read back is untrusted: a record that does not check is shown as unreadable, a
symbolic link nst_jax did not make is refused or skipped.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from nst_jax.files import records, untrusted
from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import Lock, write_bytes, write_json
from nst_jax.files.runfiles import RunFiles

MARKER = "nst_jax-studio.json"
LOCK = "nst_jax-studio.lock"
UPLOAD_ID = re.compile(r"[0-9a-f]{16}")
RUN_ID = re.compile(r"[0-9a-f]{12}")
UPLOAD_RECORD = {"name": "TEXT", "height": "COUNT", "width": "COUNT", "suffix": "TEXT"}
REQUEST_RECORD = {"content": "TEXT", "styles": "NAMES", "options": "TABLE", "created": "SECONDS"}


class StudioFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.uploads = self.root / "uploads"
        self.runs = self.root / "runs"

    def prepare(self) -> "StudioFolder":
        """Create or reopen the folder; NSTError if it is a link, a file, or a folder with other files."""
        if self.root.is_symlink():
            raise NSTError(f"studio folder {self.root}: a symbolic link; give the folder itself")
        if self.root.exists() and not self.root.is_dir():
            raise NSTError(f"studio folder {self.root}: exists and is not a folder")
        if self.root.is_dir() and any(self.root.iterdir()) and not (self.root / MARKER).is_file():
            raise NSTError(f"studio folder {self.root}: holds other files and is not a studio folder; choose an "
                           f"empty or new folder")
        for folder in (self.uploads, self.runs):
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise NSTError(f"studio folder {self.root}: {folder.name} is not a folder nst_jax made")
        try:
            self.uploads.mkdir(parents=True, exist_ok=True)
            self.runs.mkdir(exist_ok=True)
            if not (self.root / MARKER).exists():
                write_json(self.root / MARKER, {"nst_jax": "studio", "created": time.time()})
        except OSError as err:
            raise NSTError(f"studio folder {self.root}: cannot write ({err.strerror or err})") from None
        return self

    def lock(self) -> Lock:
        """The folder's lock, held for a studio's lifetime: two studios on one folder would run its queue twice."""
        return Lock(self.root / LOCK, f"studio folder {self.root}")

    # ---------------------------------------------------------------- uploads
    def upload_path(self, upload_id: str) -> Path | None:
        """The image file of an upload id, or None if the id is malformed or its files do not check."""
        record = self.upload_record(upload_id)
        return None if record is None else self.uploads / (upload_id + record["suffix"])

    def upload_record(self, upload_id: str) -> dict | None:
        if not isinstance(upload_id, str) or not UPLOAD_ID.fullmatch(upload_id):
            return None
        record = _read_record(self.uploads / f"{upload_id}.json", UPLOAD_RECORD, "upload")
        if record is None or record["suffix"] not in SUFFIXES.values():
            return None
        path = self.uploads / (upload_id + record["suffix"])
        return record if path.is_file() and not path.is_symlink() else None

    def add_upload(self, upload_id: str, suffix: str, data: bytes, record: dict) -> None:
        write_bytes(self.uploads / (upload_id + suffix), data)
        write_json(self.uploads / f"{upload_id}.json", {**record, "suffix": suffix})

    def list_uploads(self) -> list[dict]:
        found = []
        for meta in sorted(self.uploads.glob("*.json")):
            record = self.upload_record(meta.stem)
            if record is not None:
                found.append({"id": meta.stem, **record})
        return found

    # ---------------------------------------------------------------- runs
    def run_folder(self, run_id: str) -> Path | None:
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
            return None
        folder = self.runs / run_id
        return None if folder.is_symlink() else folder

    def run_files(self, run_id: str) -> RunFiles | None:
        folder = self.run_folder(run_id)
        return None if folder is None else RunFiles(folder / "result.png")

    def write_request(self, run_id: str, record: dict) -> None:
        folder = self.run_folder(run_id)
        if folder is None:
            raise NSTError(f"run {run_id}: not a run of this studio")
        folder.mkdir(exist_ok=True)
        if not (folder / "studio.json").exists():
            write_json(folder / "studio.json", record)

    def read_request(self, run_id: str) -> dict | None:
        folder = self.run_folder(run_id)
        return None if folder is None else _read_record(folder / "studio.json", REQUEST_RECORD, "request")

    def requests(self) -> list[tuple[str, dict | None]]:
        """(id, request record or None if it does not check) of every run in the folder, oldest first (their
        folders are the studio's; links are skipped)."""
        ids = [p.name for p in self.runs.iterdir() if RUN_ID.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
        found = [(i, self.read_request(i)) for i in ids]
        return sorted(found, key=lambda pair: ((pair[1] or {}).get("created", 0), pair[0]))


SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp", "WEBP": ".webp", "GIF": ".gif"}


def _read_record(path: Path, schema: dict, what: str) -> dict | None:
    """A JSON record checked against `schema`, or None (missing, a link, unreadable or wrong)."""
    try:
        if path.is_symlink():
            return None
        return records.check(untrusted.read_json(path, what), schema, f"{what} {path}")
    except NSTError:
        return None
