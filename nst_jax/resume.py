"""Where a run starts: from its checkpoint, from its image, or afresh — and what happens to what a
run with other settings left behind.

| found beside the output | same settings | other settings |
|---|---|---|
| a result at ≥ the target, or one the stopping rule (`--tol`) ended | nothing to do | start over (the result is replaced) |
| a checkpoint | continue exactly from it (a light one, `--light-checkpoint`: from its image x, with a fresh solver state) | unfinished: set aside as `out.ckpt-<hash>.npz` (restored when those settings are run again); finished: removed; start over |
| only a result below the target (finished without a kept checkpoint, or interrupted) | continue from that image with a fresh solver state | start over |
| nothing | start | start |

Every decision except "start" is said in one line, so a rerun never silently loses or repeats work.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from nst_jax.config import Config
from nst_jax.errors import NSTError
from nst_jax.runfiles import RunFiles


class Plan(NamedTuple):
    kind: str            # 'fresh', 'checkpoint', 'light' (checkpoint), 'image' or 'done'
    iteration: int = 0   # the iteration the run continues from (or has reached, for 'done')


def plan(cfg: Config, files: RunFiles, restart: bool, say: Callable[[str], None]) -> Plan:
    """Decide (see the module docstring), moving a stale checkpoint aside or back as needed."""
    h = cfg.result_hash()
    if restart:
        files.remove_checkpoint()
        return Plan("fresh")
    record = files.read_sidecar() if files.image.exists() else None
    same_result = record is not None and record.get("settings_hash") == h
    finished = record is not None and (record.get("iteration", -1) >= cfg.iterations or cfg.stop_rule.covers(record))
    if same_result and finished and not record.get("interrupted"):
        return Plan("done", int(record["iteration"]))
    if not files.checkpoint.exists() and files.aside(h).exists():
        files.restore(h)
        say(f"{files.image}: continuing the unfinished run with these settings that was set aside earlier")
    if files.checkpoint.exists():
        meta = files.checkpoint_meta()
        if meta is None:
            raise NSTError(f"checkpoint {files.checkpoint}: unreadable (truncated or corrupt); delete it or pass "
                           f"--restart to start over")
        if meta.get("config_hash") == h:
            return Plan("light" if meta.get("light") else "checkpoint", int(meta.get("iteration", 0)))
        done, target = int(meta.get("iteration", 0)), int(meta.get("target", 1 << 62))
        if done < target:
            aside = files.set_aside(str(meta.get("config_hash")))
            say(f"settings changed: starting over; the unfinished run ({done} of {target} iterations) is kept in "
                f"{aside} and continues when run again with its settings")
        else:
            files.remove_checkpoint()
            say(f"settings changed: starting over ({files.image} will be replaced)")
        return Plan("fresh")
    if same_result:
        done = int(record["iteration"])
        say(f"{files.image}: continuing from its image at iteration {done} with a fresh solver state (no "
            f"checkpoint was kept; --keep-checkpoint makes a continuation exact)")
        return Plan("image", done)
    if record is not None:
        say(f"settings changed: starting over ({files.image} will be replaced)")
    return Plan("fresh")
