"""Where a run starts: from its checkpoint, from its image, or afresh — and what happens to what a
run with other settings left behind.

| found beside the output | same settings | other settings |
|---|---|---|
| a result at ≥ the target, or one the stopping rule (`--tol`) ended | nothing to do | start over (the result is replaced) |
| a checkpoint | continue exactly from it (a light one, `--light-checkpoint`: from its image x, with a fresh solver state) | unfinished: set aside as `out.ckpt-<hash>.npz` (restored when those settings are run again); finished: removed; start over |
| only a result below the target (finished without a kept checkpoint, or interrupted) | continue from that image with a fresh solver state | start over |
| nothing | start | start |

Every decision except "start" is said in one line, so a rerun never silently loses or repeats work.
`start` returns a `starts.Start`, which then makes the run's state (`Start.begin`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from nst_jax import hosts, planning
from nst_jax.config import Config
from nst_jax.errors import NSTError
from nst_jax.identity import settings_hash
from nst_jax.runfiles import RunFiles
from nst_jax.runplan import RunPlan
from nst_jax.starts import Start

KINDS = ("fresh", "checkpoint", "light", "image", "done")


class Group(NamedTuple):
    """Runs that go through the loop together (one, or a vmapped batch), decided before any runs."""

    cfgs: list[Config]
    files: list[RunFiles]
    starts: list[Start]
    plan: RunPlan
    hashes: list[str]


def batches(cfgs: list[Config], files: list[RunFiles], restart: bool, say: Callable[[str], None]) -> list[Group]:
    """The batches to run, decided before any runs: all together when every run starts alike and in a
    way a batch can, else each on its own (with its own plan, and its start decided again if that plan
    changes its settings hash)."""
    plan = planning.plan_run(cfgs[0], runs=len(cfgs))  # before the settings hash: it knows the history's precision
    hashes = [settings_hash(c, plan) for c in cfgs]
    found = starts(cfgs, files, hashes, restart, say)
    if len(cfgs) == 1 or (len(set(found)) == 1 and found[0].batchable):
        return [Group(cfgs, files, found, plan, hashes)]
    groups = []
    for c, f, h, s in zip(cfgs, files, hashes, found):
        alone = planning.plan_run(c)
        h_alone = settings_hash(c, alone)
        if h_alone != h:
            s = starts([c], [f], [h_alone], False, say)[0]
        groups.append(Group([c], [f], [s], alone, [h_alone]))
    return groups


def recorded_forms(start: Start, files: RunFiles) -> list | None:
    """The convolution forms a run continued from its checkpoint recorded there (so it continues bit
    for bit with the forms it started with), else None."""
    if start.kind in ("checkpoint", "light") and hosts.is_writer():
        return (files.checkpoint_meta() or {}).get("conv_forms")
    return None


def starts(cfgs: list[Config], files: list[RunFiles], hashes: list[str], restart: bool,
           say: Callable[[str], None]) -> list[Start]:
    """Each run's start (`start`); in a multi-host run, every process starts where process 0's files
    say (see `hosts`)."""
    found = [start(c, f, h, restart, say) for c, f, h in zip(cfgs, files, hashes)]
    if hosts.count() > 1:
        agreed = hosts.agree(np.array([[KINDS.index(s.kind), s.iteration] for s in found], np.int64))
        found = [Start(KINDS[k], int(i)) for k, i in agreed]
    return found


def start(cfg: Config, files: RunFiles, h: str, restart: bool, say: Callable[[str], None]) -> Start:
    """Decide (see the module docstring) for settings hash `h`, moving a stale checkpoint aside or
    back as needed."""
    if restart:
        files.remove_checkpoint()
        return Start("fresh")
    record = files.read_sidecar() if files.image.exists() else None
    same_result = record is not None and record.get("settings_hash") == h
    finished = record is not None and (record.get("iteration", -1) >= cfg.iterations or cfg.stop_rule.covers(record))
    if same_result and finished and not record.get("interrupted"):
        return Start("done", int(record["iteration"]))
    if not files.checkpoint.exists() and files.aside(h).exists():
        files.restore(h)
        say(f"{files.image}: continuing the unfinished run with these settings that was set aside earlier")
    if files.checkpoint.exists():
        meta = files.checkpoint_meta()
        if meta is None:
            raise NSTError(f"checkpoint {files.checkpoint}: unreadable (truncated or corrupt); delete it or pass "
                           f"--restart to start over")
        if meta.get("config_hash") == h:
            return Start("light" if meta.get("light") else "checkpoint", int(meta.get("iteration", 0)))
        done, target = int(meta.get("iteration", 0)), int(meta.get("target", 1 << 62))
        if done < target:
            aside = files.set_aside(str(meta.get("config_hash")))
            say(f"settings changed: starting over; the unfinished run ({done} of {target} iterations) is kept in "
                f"{aside} and continues when run again with its settings")
        else:
            files.remove_checkpoint()
            say(f"settings changed: starting over ({files.image} will be replaced)")
        return Start("fresh")
    if same_result:
        done = int(record["iteration"])
        say(f"{files.image}: continuing from its image at iteration {done} with a fresh solver state (no "
            f"checkpoint was kept; --keep-checkpoint makes a continuation exact)")
        return Start("image", done)
    if record is not None:
        say(f"settings changed: starting over ({files.image} will be replaced)")
    return Start("fresh")
