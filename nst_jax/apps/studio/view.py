"""What the studio page is sent: the uploads, every run with its settings, state and result, the
choices of the options form, and the live state of the running run. Names are sent as data and set
as text by the page, never as HTML.
"""

from __future__ import annotations

from nst_jax.base import catalogue
from nst_jax.transfer.config import INITS, ORIGINAL_COLORS
from nst_jax.apps.studio import jobs, request
from nst_jax.apps.studio.folder import StudioFolder


def choices() -> dict:
    return {"init": list(INITS), "style_statistic": list(catalogue.statistic_names()),
            "original_colors": list(ORIGINAL_COLORS), "defaults": request.DEFAULTS,
            "max_size": request.MAX_SIZE, "max_iterations": request.MAX_ITERATIONS}


def run_entry(folder: StudioFolder, runner: jobs.Runner, run_id: str, record: dict | None,
              names: dict[str, str]) -> dict:
    state, sidecar = jobs.status(folder, run_id, record)
    state = runner.state_of(run_id) or state
    record = record or {}
    files = folder.run_files(run_id)
    live = runner.live.get(run_id)
    data = live.snapshot()[1] if live is not None else None
    entry = {"id": run_id, "status": state, "content": names.get(record.get("content"), "?"),
             "styles": [names.get(s, "?") for s in record.get("styles", [])], "options": record.get("options", {}),
             "iteration": sidecar["iteration"] if sidecar else 0, "loss": sidecar["loss"] if sidecar else None,
             "seconds": sidecar["seconds"] if sidecar else None, "note": files.read_error() or "",
             "image": int(files.image.stat().st_mtime_ns) if files.image.is_file() else 0,
             "live": data["image"] if data is not None else None}   # images encoded so far
    if state in ("running", "stopping") and data is not None:
        entry.update(iteration=data["iteration"], note=data["note"])
    return entry


def studio_state(folder: StudioFolder, runner: jobs.Runner, max_upload: int) -> dict:
    uploads = folder.list_uploads()
    names = {u["id"]: u["name"] for u in uploads}
    runs = [run_entry(folder, runner, i, record, names) for i, record in folder.requests()]
    current = runner.current
    live = runner.live.get(current) if current else None
    return {"uploads": uploads, "runs": runs, "current": current, "max_upload": max_upload,
            "live": live.snapshot()[1] if live is not None else None}
