"""Network reduction: rank each VGG19 layer's channels by a criterion, remove the lowest-ranked
fraction physically (smaller kernels), rerun the transfer with the pruned network and measure the result
with the full one (`nst-jax dissect reduce`, and the paper's section 3.7)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from nst_jax.base.errors import NSTError
from nst_jax.files import untrusted
from nst_jax.files.fileio import write_json
from nst_jax.model import vgg
from nst_jax.transfer.config import with_preset

CRITERIA = ("activation", "style", "distinct")


def channel_scores(params, prep, images: Sequence[np.ndarray], criterion: str, style_targets=None) -> dict:
    """A score per output channel of every conv layer (higher = keep), deterministic.

    activation: mean ReLU activation over the images' positions.
    style: the channel's share of the Gram loss between the images (row sums of (G₀ − G₁)²) plus its
           mean activation (so silent channels rank last): channels that carry the style difference.
    distinct: Gedeon & Harris 1991: the angle between a channel's activation vector (over positions of
              all images) and its nearest other channel; near-duplicates (small angle) are redundant.
    """
    from nst_jax.model.preprocessing import preprocess
    relus = [f"relu{n[4:]}" for n in vgg.CONV_NAMES]
    feats = [vgg.features(params, preprocess(img[None], prep), relus) for img in images]
    scores = {}
    for conv, relu in zip(vgg.CONV_NAMES, relus):
        acts = [np.asarray(f[relu])[0].reshape(-1, f[relu].shape[-1]).astype(np.float64) for f in feats]
        if criterion == "activation":
            s = np.mean([a.mean(axis=0) for a in acts], axis=0)
        elif criterion == "style":
            g = [a.T @ a / a.size for a in acts]
            diff = np.zeros_like(g[0])
            for i in range(1, len(g)):
                diff += (g[0] - g[i]) ** 2
            act = np.mean([a.mean(axis=0) for a in acts], axis=0)
            s = diff.sum(axis=1) / max(diff.sum(), 1e-30) + 1e-6 * act / max(act.max(), 1e-30)
        elif criterion == "distinct":
            a = np.concatenate(acts, axis=0)
            norm = np.linalg.norm(a, axis=0)
            unit = a / np.maximum(norm, 1e-12)
            cos = np.clip(unit.T @ unit, -1.0, 1.0)
            np.fill_diagonal(cos, -1.0)
            s = np.arccos(cos.max(axis=1))
            s[norm < 1e-12] = -1.0  # dead channels first
        else:
            raise NSTError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
        scores[conv] = s
    return scores


def keep_indices(scores: dict, fraction: float) -> dict:
    """Per conv layer, the sorted indices of the channels kept when `fraction` of them is removed."""
    keep = {}
    for conv, s in scores.items():
        n = len(s)
        k = max(1, n - int(round(fraction * n)))
        order = np.argsort(-np.asarray(s), kind="stable")  # ties broken by index: deterministic
        keep[conv] = np.sort(order[:k])
    return keep


def prune(params: dict, keep: dict) -> dict:
    """Physically smaller kernels: each conv keeps its chosen output channels and the input channels
    its predecessor kept."""
    out, prev = {}, np.arange(3)
    for conv in vgg.CONV_NAMES:
        k, b = np.asarray(params[conv]["kernel"]), np.asarray(params[conv]["bias"])
        idx = keep[conv]
        out[conv] = {"kernel": np.ascontiguousarray(k[:, :, prev][..., idx]), "bias": b[idx]}
        prev = idx
    return out


def zero_removed(params: dict, keep: dict) -> dict:
    """The full-size network with the removed channels' outputs zeroed (kernel columns and biases)."""
    out = {}
    for conv in vgg.CONV_NAMES:
        k, b = np.array(params[conv]["kernel"]), np.array(params[conv]["bias"])
        mask = np.zeros(k.shape[-1], bool)
        mask[keep[conv]] = True
        k[..., ~mask] = 0.0
        b[~mask] = 0.0
        out[conv] = {"kernel": k, "bias": b}
    return out


def _seconds_per_iteration(output: str) -> float:
    """Seconds per iteration after the first (which includes compiling), from the run's loss log."""
    from nst_jax.files.runfiles import RunFiles
    log = [r for r in RunFiles(output).read_log() if r["iteration"] >= 1]
    if len(log) < 2:
        return float("nan")
    return (log[-1]["seconds"] - log[0]["seconds"]) / (log[-1]["iteration"] - log[0]["iteration"])


def reduce_network(content: str, style: str, out: Path, size: int, iterations: int, criteria: Sequence[str],
                   fractions: Sequence[float], seed: int = 0, weights=None, tol: float = 0.0,
                   tol_window: int = 20) -> list[dict]:
    """For each criterion and fraction: prune, run the transfer (to `iterations`, or until the stopping
    rule `tol` ends it), measure the result with the full network. Each run's row is kept beside its image
    (`<criterion>_<percent>.row.json`), so a rerun goes on from the first run not finished."""
    import jax.numpy as jnp

    from nst_jax.machine import compiler
    from nst_jax.objective import losses
    from nst_jax.transfer import steps, runs as transfer
    from nst_jax.transfer.identity import settings_hash
    from nst_jax.transfer.problem import prepare
    from nst_jax.model import weights as vgg_weights

    w = weights if weights is not None else vgg_weights.load()
    base = with_preset("default", content=content, styles=(style,), size=size, iterations=iterations, seed=seed,
                       tol=tol, tol_window=tol_window, checkpoint_every=0, checkpoint_minutes=0, print_every=0, output=str(out / "runs" / "x.png"))
    full = prepare(base, w)
    measure = compiler.jit(losses.make_objective(full.spec))  # the full network's objective, compiled once
    imgs = [full.content, full.styles[0]]
    rows = []
    for criterion in criteria:
        scores = channel_scores(w.params, w.preprocessing, imgs, criterion)
        for frac in fractions:
            keep = keep_indices(scores, frac)
            pw = vgg_weights.Weights(prune(w.params, keep), w.preprocessing, dict(w.info))
            cfg = dataclasses.replace(base, output=str(out / "runs" / f"{criterion}_{int(frac * 100):02d}.png"))
            # the settings hash leaves out where a run stops and the pruned weights: recorded beside it
            asked = {"settings": settings_hash(cfg), "iterations": iterations, "tol": tol, "tol_window": tol_window,
                     "kept": {c: [int(i) for i in v] for c, v in keep.items()}}
            record = Path(cfg.output).with_suffix(".row.json")
            row = _finished_row(record, asked, cfg.output)
            if row is None:
                record.unlink(missing_ok=True)   # a run stopped part-way leaves no row of earlier settings
                t = time.perf_counter()
                res = transfer.run(cfg, progress=False, restart=True, loaded_weights=pw)
                total, parts = measure(jnp.asarray(res.image[None]), full.aux(steps.step_key(cfg, 0)))
                row = {"criterion": criterion, "fraction": frac, "channels_kept": int(sum(len(v) for v in keep.values())),
                       "iterations": res.iteration, "converged": bool(res.converged),
                       "seconds_per_iteration": _seconds_per_iteration(cfg.output),
                       "wall_seconds": time.perf_counter() - t, "full_loss": float(total),
                       "full_content": float(parts["content"]), "full_style": float(parts["style"]),
                       "image": cfg.output}
                write_json(record, {"asked": asked, "row": row})
            rows.append({**row, "criterion": criterion, "fraction": frac,
                         "channels_kept": int(sum(len(v) for v in keep.values()))})
    return rows


ROW_NUMBERS = ("seconds_per_iteration", "wall_seconds", "full_loss", "full_content", "full_style")


def _finished_row(record: Path, asked: dict, image: str) -> dict | None:
    """The row a finished run of the same settings and channels wrote for `image` (by its name: the
    study may have moved, as a fresh checkout restoring it does), when the image is there, with `image`
    as its path; None for anything else (run again)."""
    try:
        done = untrusted.read_json(record, "network reduction row") if record.exists() else None
    except NSTError:
        return None
    row = done.get("row") if isinstance(done, dict) and done.get("asked") == asked else None
    if not (isinstance(row, dict) and isinstance(row.get("image"), str) and Path(row["image"]).name == Path(image).name
            and Path(image).is_file() and type(row.get("iterations")) is int and type(row.get("converged")) is bool
            and all(type(row.get(k)) in (int, float) for k in ROW_NUMBERS)):
        return None
    return {**row, "image": image}
