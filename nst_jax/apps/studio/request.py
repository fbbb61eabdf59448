"""What the studio page asks for, checked: a content upload, one or more style uploads and the main
options (k, size, iterations, init, statistic, original colours, seed), made into the Config of an
ordinary run. A request's id is a digest of exactly these, so the same request is the same run folder:
a second tab, a reload or a double click never starts a second job, and "continue" is a rerun.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, NamedTuple

from nst_jax.base import catalogue
from nst_jax.transfer.config import INITS, ORIGINAL_COLORS, Config, with_preset
from nst_jax.base.errors import NSTError
from nst_jax.apps.studio.folder import StudioFolder

MAX_SIZE = 2048        # the page's largest size (the command line allows more)
MAX_ITERATIONS = 20000
DEFAULTS = {"style_weight": 100.0, "size": 256, "iterations": 300, "init": "content", "style_statistic": "gram",
            "original_colors": "none", "seed": 0}
TYPES = {"style_weight": float, "size": int, "iterations": int, "init": str, "style_statistic": str,
         "original_colors": str, "seed": int}
FIXED = {"print_every": 5, "checkpoint_every": 25}   # the page's refresh and how much a stop can lose


class Request(NamedTuple):
    id: str
    content: str              # upload ids
    styles: tuple[str, ...]
    options: dict[str, Any]

    def record(self) -> dict:
        return {"content": self.content, "styles": list(self.styles), "options": self.options, "created": time.time()}


def options_of(given: Any) -> dict[str, Any]:
    """The options of a request, each checked (NSTError with a sentence for the page)."""
    if not isinstance(given, dict):
        raise NSTError("the options must be an object")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise NSTError(f"unknown option {unknown[0]!r}")
    out = dict(DEFAULTS)
    for name, kind in TYPES.items():
        if name not in given:
            continue
        value = given[name]
        try:
            if kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
                raise ValueError
            out[name] = kind(float(value)) if kind in (int, float) else str(value)
        except (TypeError, ValueError, OverflowError):
            raise NSTError(f"{name}: not a number: {str(value)[:40]!r}") from None
    for name, lo, hi in (("size", 16, MAX_SIZE), ("iterations", 1, MAX_ITERATIONS), ("seed", 0, 2**31 - 1)):
        if not lo <= out[name] <= hi:
            raise NSTError(f"{name}: from {lo} to {hi}")
    if not 0 < out["style_weight"] < 1e12:
        raise NSTError("k: a number above 0")
    for name, choices in (("init", INITS), ("style_statistic", catalogue.statistic_names()),
                          ("original_colors", ORIGINAL_COLORS)):
        if out[name] not in choices:
            raise NSTError(f"{name}: one of {', '.join(choices)}")
    return out


def parse(folder: StudioFolder, body: Any) -> Request:
    """The request of a page's JSON body {"content": id, "styles": [ids], "options": {...}}."""
    if not isinstance(body, dict):
        raise NSTError("the request must be a JSON object")
    content, styles = body.get("content"), body.get("styles")
    if not isinstance(content, str) or folder.upload_path(content) is None:
        raise NSTError("choose a content image")
    if not isinstance(styles, list) or not styles or len(styles) > 8:
        raise NSTError("choose one to eight style images")
    if any(not isinstance(s, str) or folder.upload_path(s) is None for s in styles):
        raise NSTError("a style image is not one of the uploads")
    options = options_of(body.get("options", {}))
    key = json.dumps({"content": content, "styles": styles, "options": options}, sort_keys=True)
    return Request(hashlib.sha256(key.encode()).hexdigest()[:12], content, tuple(styles), options)


def from_record(run_id: str, record: dict) -> Request:
    """A request read back from a run's studio.json (checked again: the file is untrusted)."""
    return Request(run_id, record["content"], tuple(record["styles"]), options_of(record["options"]))


def config(folder: StudioFolder, request: Request) -> Config:
    """The run's Config: an ordinary run whose files are in the request's run folder."""
    paths = [folder.upload_path(u) for u in (request.content, *request.styles)]
    if any(p is None for p in paths):
        raise NSTError("an image of this run is no longer in the studio's uploads")
    files = folder.run_files(request.id)
    return with_preset("default", content=str(paths[0]), styles=tuple(str(p) for p in paths[1:]),
                       output=str(files.image), **request.options, **FIXED)
