"""What the studio page is sent: the uploads, every run with its name, settings, state (as a sentence
that says what is true now) and result, the choices of the options form, and the live state of the
running run (or of the last run of this session). Names are sent as data and set as text by the page,
never as HTML.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from nst_jax.base import catalogue
from nst_jax.transfer.config import INITS, ORIGINAL_COLORS
from nst_jax.transfer.progress import human_seconds
from nst_jax.apps.studio import jobs, request
from nst_jax.apps.studio.folder import StudioFolder

# options a run's name shows when they differ from the defaults (k and the size it always shows)
NAMED = {"init": "init {}", "style_statistic": "statistic {}", "original_colors": "colours {}", "seed": "seed {}"}


def choices() -> dict:
    return {"init": list(INITS), "style_statistic": list(catalogue.statistic_names()),
            "original_colors": list(ORIGINAL_COLORS), "defaults": request.DEFAULTS,
            "max_size": request.MAX_SIZE, "max_iterations": request.MAX_ITERATIONS}


def stem(name: str) -> str:
    """An upload's name without its suffix ("starry_night.jpg" → "starry_night")."""
    return PurePosixPath(name).stem or name


def run_name(content: str, styles: list[str], options: dict) -> str:
    """What a run is, in words: "chelsea ← starry_night + wave, k = 100, 256 px", then the options that
    differ from the defaults (", seed 1"), so two runs of one pair tell apart by name, not by id."""
    k, size = options.get("style_weight"), options.get("size")
    words = [f"{stem(content)} ← {' + '.join(stem(s) for s in styles)}",
             f"k = {k:g}" if isinstance(k, (int, float)) else "k = ?", f"{size} px"]
    words += [text.format(options[key]) for key, text in NAMED.items()
              if key in options and options[key] != request.DEFAULTS[key]]
    return ", ".join(words)


def run_says(status: str, iteration: int, target: int, *, live: dict | None = None, ahead: int | None = None,
             seconds: float | None = None, note: str = "") -> str:
    """A run's state as a sentence that is true now: queued (and how many go first), running with its
    iteration and ETA, stopping, stopped, finished, failed, not started or unreadable."""
    if status == "queued":
        return "queued, next" if not ahead else f"queued, {ahead} run{'s' if ahead > 1 else ''} before it"
    if status in ("running", "stopping"):
        if live is None or live.get("status") == "starting":
            return "stopping" if status == "stopping" else "running, starting (reading the images, compiling)"
        done = f"iteration {live['iteration']} / {live['target'] or target}"
        if status == "stopping":
            return f"stopping after the current step ({done})"
        eta = live.get("eta")
        return f"running, {done}" + (f", ETA {human_seconds(eta)}" if eta is not None else "")
    if status == "finished":
        return f"finished, {iteration} iterations" + (f" in {human_seconds(seconds)}" if seconds is not None else "")
    if status == "stopped":
        return f"stopped at iteration {iteration} / {target}; Continue goes on from there"
    if status == "failed":
        return f"failed: {note}" if note else "failed"
    if status == "new":
        return "not started; Continue starts it"
    return "unreadable: its files do not check"


def run_entry(folder: StudioFolder, runner: jobs.Runner, run_id: str, record: dict | None,
              names: dict[str, str]) -> dict:
    state, sidecar = jobs.status(folder, run_id, record)
    state = runner.state_of(run_id) or state
    files = folder.run_files(run_id)
    live = runner.live.get(run_id)
    data = live.snapshot()[1] if live is not None else None
    asked = record or {}
    content, options = names.get(asked.get("content"), "?"), asked.get("options", {})
    styles = [names.get(s, "?") for s in asked.get("styles", [])]
    entry = {"id": run_id, "status": state, "content": content, "content_id": asked.get("content"),
             "styles": styles, "options": options,
             "name": run_name(content, styles, options) if record else f"unreadable run {run_id}",
             "iteration": sidecar["iteration"] if sidecar else 0, "loss": sidecar["loss"] if sidecar else None,
             "seconds": sidecar["seconds"] if sidecar else None, "note": files.read_error() or "",
             "image": int(files.image.stat().st_mtime_ns) if files.image.is_file() else 0,
             "live": data["image"] if data is not None else None}   # images encoded so far
    if state in ("running", "stopping") and data is not None:
        entry.update(iteration=data["iteration"], note=data["note"])
    target = options.get("iterations", 0) if isinstance(options, dict) else 0
    entry["says"] = run_says(state, entry["iteration"], target, live=data, ahead=runner.ahead(run_id),
                             seconds=entry["seconds"], note=entry["note"])
    return entry


def studio_state(folder: StudioFolder, runner: jobs.Runner, max_upload: int) -> dict:
    """The page's whole state; `live` is the live state of the running run, else of the last run this
    session ran (`live_id`), so its loss plot stays on the page once it has ended."""
    uploads = folder.list_uploads()
    names = {u["id"]: u["name"] for u in uploads}
    runs = [run_entry(folder, runner, i, record, names) for i, record in folder.requests()]
    current = runner.current
    ran = list(runner.live)   # a copy: the worker adds to it
    live_id = current or (ran[-1] if ran else None)
    live = runner.live.get(live_id) if live_id else None
    return {"uploads": uploads, "runs": runs, "current": current, "max_upload": max_upload, "live_id": live_id,
            "live": live.snapshot()[1] if live is not None else None}
