"""Network reduction: how much of VGG19 style transfer needs (`pruning.reduce_network` on each
pair, resumable per pair), and the section."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from nst_jax.files import untrusted
from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import write_json
from nst_jax.studies.paper.common import Scale, pair_name
from nst_jax.studies.paper.tables import iterations, largest_passing, markdown_table, not_run, spread, write_csv

def run(scale: Scale, runs: Path, progress: bool, after_pair: Callable[[], None] = lambda: None) -> list[dict]:
    """Network reduction on each pair (`pruning.reduce_network`), resumable per pair: a pair whose
    rows were written for the same settings is not run again (and within a pair, each finished run).
    `after_pair` is called when a pair's runs have finished."""
    from nst_jax.studies import pruning
    from nst_jax.model import weights as vgg_weights

    w, rows = vgg_weights.load(), []
    settings = {"size": scale.size, "iterations": scale.reduction_iterations, "criteria": list(scale.criteria),
                "fractions": list(scale.fractions), "seed": scale.seed}
    if scale.tol:
        settings.update(tol=scale.tol, tol_window=scale.tol_window)
    for content, style in scale.hyper_pairs:
        name = pair_name(content, style)
        done = runs / "reduction" / f"{name}.json"
        try:
            written = untrusted.read_json(done, "reduction rows") if done.exists() else {}
        except NSTError:   # a damaged record of finished work: computed again
            written = {}
        if isinstance(written, dict) and written.get("settings") == settings and isinstance(written.get("rows"), list) \
                and all(isinstance(r, dict) and isinstance(r.get("image"), str) for r in written["rows"]):
            # each image where it is now (the study may have moved since the rows were written)
            rows += [{**r, "image": str(runs / "reduction" / name / "runs" / Path(r["image"]).name)}
                     for r in written["rows"]]
            continue
        if progress:
            print(f"network reduction: {name}", file=sys.stderr, flush=True)
        pair_rows = []
        for i, criterion in enumerate(scale.criteria):  # the unpruned network (0 %) once, not per criterion
            fractions = [f for f in scale.fractions if f > 0 or i == 0]
            pair_rows += pruning.reduce_network(content, style, runs / "reduction" / name, scale.size,
                                                scale.reduction_iterations, [criterion], fractions, scale.seed, w,
                                                scale.tol, scale.tol_window)
        pair_rows = [{**r, "pair": name} for r in pair_rows]
        write_json(done, {"settings": settings, "rows": pair_rows})
        after_pair()
        rows += pair_rows
    return rows


def most_removed(rows: list[dict], within: float = 0.10) -> dict[str, float | None]:
    """Per criterion, the largest fraction removed such that it and every smaller one keep the full
    network's loss within `within` of the unpruned result's on every pair (rows as recorded or read
    back from a CSV)."""
    return {c: largest_passing({float(r["fraction"]) for r in rows if r["criterion"] == c and float(r["fraction"]) > 0},
                               lambda f: all(float(r["full_loss_vs_full"]) <= 1 + within for r in rows
                                             if r["criterion"] == c and float(r["fraction"]) == f))
            for c in dict.fromkeys(r["criterion"] for r in rows)}


def section(out: Path, scale, rows: list[dict] | None, command: str) -> str:
    head = "## 3.7 Network reduction: how much of VGG19 does style transfer need?"
    if not rows:
        return not_run(head, command, "reduction")
    folder = out / "reduction"
    pairs = sorted({r["pair"] for r in rows})
    base = {p: next(r for r in rows if r["pair"] == p and r["fraction"] == 0.0) for p in pairs}
    for r in rows:
        for key in ("full_loss", "full_style", "full_content"):
            r[f"{key}_vs_full"] = r[key] / base[r["pair"]][key]
    write_csv(folder / "reduction.csv", rows)
    criteria = list(dict.fromkeys(r["criterion"] for r in rows))
    fractions = sorted({r["fraction"] for r in rows})
    total_channels = base[pairs[0]]["channels_kept"]
    trows = []
    for c in criteria:
        for f in fractions:
            sel = [r for r in rows if r["criterion"] == c and r["fraction"] == f]
            if f == 0.0 and c != criteria[0]:
                continue
            trows.append([c if f > 0 else "none (full VGG19)", f"{f:.0%}", f"{sel[0]['channels_kept']} "
                          f"({sel[0]['channels_kept'] / total_channels:.0%})",
                          spread([r["seconds_per_iteration"] for r in sel]),
                          spread([r["full_loss_vs_full"] for r in sel]), spread([r["full_style_vs_full"] for r in sel]),
                          spread([r["full_content_vs_full"] for r in sel])])
    table = markdown_table(["channels removed by", "fraction removed", "channels kept", "s / iteration",
                            "full-network loss ÷ unpruned", "style ÷ unpruned", "content ÷ unpruned"], trows)
    sheet = []
    for p in pairs:
        for c in criteria:
            found = {r["fraction"]: Path(r["image"]) for r in rows if r["pair"] == p and r["criterion"] == c}
            if c != criteria[0]:  # the unpruned result is the same for every criterion
                found.setdefault(0.0, next(Path(r["image"]) for r in rows if r["pair"] == p and r["fraction"] == 0.0))
            sheet.append((f"{p.split('+')[0]} {c}", [(f"−{f:.0%}", found.get(f)) for f in fractions]))
    from nst_jax.studies.report import contact_sheet
    contact_sheet(sheet, folder / "results.png", thumb=scale.size)
    lines = []
    for c, most in most_removed(rows).items():
        lines.append(f"- **{c}**: " + (f"up to {most:.0%} of the channels removed with the full network's loss "
                                        f"within 10 % of the unpruned result's on every pair"
                                        if most is not None else "no fraction tried keeps the full network's loss "
                                        "within 10 % of the unpruned result's on every pair") + "; at "
                     f"{fractions[-1]:.0%} removed the loss is {spread([r['full_loss_vs_full'] for r in rows if r['criterion'] == c and r['fraction'] == fractions[-1]])}× "
                     "the unpruned one.")
    text = [head, "", f"Rank each convolution's channels (activation: mean ReLU output; style: share of the Gram "
            "difference between content and style; distinct: angle to the nearest other channel, Gedeon & Harris "
            "1991), remove the lowest fraction physically (smaller kernels), run the transfer "
            f"({iterations(scale, scale.reduction_iterations)} at {scale.size} px) with the smaller network, and "
            "measure the result with the full network's default objective. Values: median [min – max] over "
            f"{len(pairs)} pairs ({', '.join(pairs)}), relative to the unpruned network's result on the same pair.",
            "", f"Made by `{command} --only reduction`.", "", "### Findings", ""] + lines + \
           ["", table, "", "![reduction results](reduction/results.png)", "",
            "CSV: [reduction/reduction.csv](reduction/reduction.csv).", ""]
    return "\n".join(text)
