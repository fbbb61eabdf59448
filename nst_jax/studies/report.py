"""Reports of what runs wrote (never numerical work): loss curves, contact sheets, the sweep's HTML.

    nst-jax report OUT/                      # OUT/index.html for a sweep folder
    nst-jax report plot RUN.losses.jsonl [MORE.losses.jsonl …] -o curves.png

The HTML is self-contained apart from images it links relatively (openable from disk); it links only
files that exist.
"""

from __future__ import annotations

import html
import itertools
import re
import sys
from pathlib import Path

from nst_jax.files import records, untrusted
from nst_jax.base.errors import ArgumentParser, NSTError, cli
from nst_jax.studies.grid import label, run_name
from nst_jax.files.fileio import atomic_write_bytes, save_figure
from nst_jax.files.fileio import write_text
from nst_jax.files.runfiles import SWEEP_MANIFEST, RunFiles, read_log


def plot_losses(logs: dict[str, list[dict]], out: str | Path, title: str = "") -> None:
    """Log-scale curves of the total, content and style losses per iteration, one colour per run and
    the legend beside the plots. Zero values (the content loss at a content start) are not drawn."""
    from nst_jax.studies.figures import pyplot
    plt = pyplot()
    import numpy as np

    n = len(logs)
    colours = plt.get_cmap("tab10" if n <= 10 else "tab20")(np.arange(n) % 20) if n <= 20 else \
        plt.get_cmap("viridis")(np.linspace(0, 1, n))
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for k, (name, log) in enumerate(logs.items()):
        its = [r.get("iteration", i) for i, r in enumerate(log)]
        for ax, key in zip(axes, ("loss", "content", "style")):
            values = [r.get(key, float("nan")) for r in log]
            values = [v if isinstance(v, (int, float)) and v > 0 else float("nan") for v in values]
            ax.plot(its, values, label=name, lw=1.2, color=colours[k], linestyle=styles[(k // 20) % 4])
    for ax, key in zip(axes, ("total loss", "content loss", "style loss (unweighted)")):
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(key, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if n > 1:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5),
                   fontsize=7, ncol=max(1, (n + 29) // 30), frameon=False)
    try:
        save_figure(fig, out, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def contact_sheet(rows: list[tuple[str, list[tuple[str, Path | None]]]], out: Path, thumb: int = 128) -> None:
    """A PNG grid: each row a label and a list of (column label, image path or None)."""
    from PIL import Image, ImageDraw

    cols = max(len(cells) for _, cells in rows)
    label_w, head_h = 150, 18
    sheet = Image.new("RGB", (label_w + cols * (thumb + 4), head_h + 2 + len(rows) * (thumb + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, _) in enumerate(rows[0][1]):
        draw.text((label_w + c * (thumb + 4) + 2, 3), title[:22], fill="black")
    for r, (row_label, cells) in enumerate(rows):
        y = head_h + 2 + r * (thumb + 4)
        draw.text((3, y + thumb // 2 - 6), row_label[:24], fill="black")
        for c, (_, path) in enumerate(cells):
            if path is not None and path.exists():
                try:
                    with Image.open(path) as im:
                        im.load()
                        im = im.convert("RGB")
                except (OSError, ValueError, Image.DecompressionBombError) as err:
                    raise NSTError(f"image {path}: unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                                   f"delete it or rerun its run") from None
                scale = thumb / max(im.size)
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
                x = label_w + c * (thumb + 4)
                sheet.paste(im, (x, y))
                # a frame, so that a white result is not mistaken for an empty cell
                draw.rectangle((x - 1, y - 1, x + im.width, y + im.height), outline=(120, 120, 120))
    atomic_write_bytes(out, lambda f: sheet.save(f, format="PNG"))


def _e(value) -> str:
    """Any value as HTML text (every value placed in a page goes through here or html.escape)."""
    return html.escape(str(value))


def _progress_html(status: dict) -> str:
    from nst_jax.transfer.progress import human_seconds
    eta = "—" if status.get("eta_s") is None else human_seconds(status["eta_s"])
    state = "finished" if status["finished"] else f"running (this page reloads every {REFRESH_S} s)"
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{_e(it)} / {_e(status['target'])}</td></tr>"
                   for n, it in sorted(status["iterations"].items()) if n in status["running"])
    failed = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(m)}</li>" for n, m in sorted(status["failed"].items()))
    return (f"<h2>Progress: {state}</h2><p>{_e(status['done'])} of {_e(status['total'])} runs done, "
            f"{len(status['running'])} running, {len(status['failed'])} failed; ETA {eta}</p>"
            + (f"<table><tr><th>running</th><th>iterations</th></tr>{rows}</table>" if rows else "")
            + (f"<ul>{failed}</ul>" if failed else ""))


REFRESH_S = 15
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def write_report(out: Path, status: dict | None = None) -> Path:
    """Write out/index.html (and its PNGs) for a sweep folder; returns the HTML path. With `status`
    (from a running sweep: runs done / running / failed, iterations, ETA) the page shows the progress
    and, until the sweep has finished, reloads itself."""
    out = Path(out)
    manifest = _manifest(out)
    grid: dict[str, list] = manifest["grid"]
    runs: dict[str, str] = manifest["runs"]
    info = _run_info(out, runs)
    parts = [f"<h1>Sweep report: {html.escape(str(out))}</h1>",
             _progress_html(status) if status is not None else "",
             f"<p>{len(runs)} runs, target {_e(manifest['iterations'])} iterations; grid: "
             + "; ".join(f"<b>{html.escape(k)}</b> = {html.escape(', '.join(label(v) for v in vs))}"
                         for k, vs in grid.items()) + "</p>"]
    rel = lambda p: html.escape(str(Path(p).relative_to(out)))
    parts += _axis_sections(out, grid, info, rel)
    parts += _progress_table(info, rel)
    logs = {n: i["log"] for n, i in info.items() if i["log"]}
    if logs:
        plot_losses(logs, out / "losses.png", "loss per iteration, one line per run")
        parts.append(f'<h2>Loss curves</h2><img src="{rel(out / "losses.png")}" width="100%">')
    parts += _final_table(info)
    style = ("body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse;margin-bottom:1em}"
             "td,th{border:1px solid #ccc;padding:3px;font-size:12px;text-align:center} "
             "img{display:block;border:1px solid #888}")
    refresh = f"<meta http-equiv='refresh' content='{REFRESH_S}'>" if status and not status["finished"] else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'>{refresh}<title>nst_jax sweep</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    write_text(out / "index.html", page)
    return out / "index.html"


def _manifest(out: Path) -> dict:
    manifest_path = out / SWEEP_MANIFEST
    if not manifest_path.exists():
        raise NSTError(f"{out}: no {SWEEP_MANIFEST} here; run `nst-jax sweep` first")
    try:
        manifest = untrusted.read_json(manifest_path, "sweep manifest")
    except NSTError as err:
        raise NSTError(f"{err}; rerun the sweep to rewrite it") from None
    return records.manifest(manifest, manifest_path)


def _run_info(out: Path, runs: dict[str, str]) -> dict[str, dict]:
    info = {}
    for name, rel in runs.items():
        files = RunFiles(out / rel)
        info[name] = {"files": files, "result": files.image if files.image.exists() else None,
                      "sidecar": files.read_sidecar(), "log": files.read_log(), "error": files.read_error()}
    return info


def _axis_sections(out: Path, grid: dict, info: dict, rel) -> list[str]:
    """One contact sheet per axis: rows that axis's values, columns the other axes' combinations."""
    parts: list[str] = []
    keys = list(grid)
    varying = [k for k in keys if len(grid[k]) > 1] or keys[:1]
    for axis in varying:
        others = [k for k in varying if k != axis]
        combos = list(itertools.product(*(grid[k] for k in others))) or [()]
        rows_png = []
        thumb = max(64, min(160, 980 // max(1, len(combos))))  # the table fits a 1280-px window
        table = ["<table><tr><th>" + html.escape(axis) + "</th>" + "".join(
            "<th>" + html.escape(", ".join(f"{k}={label(v)}" for k, v in zip(others, combo)) or "result")
            + "</th>" for combo in combos) + "</tr>"]
        for value in grid[axis]:
            cells, cells_png = [], []
            for combo in combos:
                point = {k: grid[k][0] for k in keys} | {axis: value} | dict(zip(others, combo))
                name = run_name({k: tuple(v) if isinstance(v, list) else v for k, v in point.items()}, grid)
                result = info.get(name, {}).get("result")
                caption = ", ".join(f"{k}={label(v)}" for k, v in zip(others, combo)) or "result"
                cells_png.append((caption, result))
                cells.append(f'<td><a href="{rel(result)}"><img src="{rel(result)}" width="{thumb}"></a></td>'
                             if result else "<td>(not run yet)</td>")
            rows_png.append((f"{axis}={label(value)}", cells_png))
            table.append(f"<tr><th>{html.escape(label(value))}</th>{''.join(cells)}</tr>")
        table.append("</table>")
        sheet = out / f"sheet_{re.sub('[^A-Za-z0-9_]', '_', axis)}.png"
        contact_sheet(rows_png, sheet)
        parts += [f"<h2>By {html.escape(axis)}</h2>", f'<p><a href="{rel(sheet)}">contact sheet (PNG)</a></p>',
                  "".join(table)]
    return parts


def _progress_table(info: dict, rel) -> list[str]:
    """Rows the runs, columns the saved iterations' intermediate images."""
    parts: list[str] = []
    saved = {n: i["files"].intermediates() for n, i in info.items()}
    its = sorted(set().union(*[set(v) for v in saved.values()])) if saved else []
    parts.append("<h2>Progress (intermediate images)</h2><table><tr><th>run</th>"
                 + "".join(f"<th>{_e(i)}</th>" for i in its) + "<th>final</th></tr>")
    for name, i in info.items():
        cells = "".join(f'<td><img src="{rel(saved[name][t])}" width="96"></td>' if t in saved[name] else "<td></td>"
                        for t in its)
        final = f'<td><img src="{rel(i["result"])}" width="96"></td>' if i["result"] else "<td></td>"
        parts.append(f"<tr><th>{html.escape(name)}</th>{cells}{final}</tr>")
    parts.append("</table>")
    return parts


def _final_table(info: dict) -> list[str]:
    """Each run's final losses, or why it has none."""
    parts: list[str] = []
    parts.append("<h2>Final losses</h2><table><tr><th>run</th><th>iteration</th><th>loss</th><th>content</th>"
                 "<th>style</th><th>tv</th><th>seconds</th></tr>")
    for name, i in info.items():
        s = i["sidecar"]
        if s:
            p = s["parts"]
            numbers = [s["iteration"], f"{s['loss']:.6g}", f"{p['content']:.4g}", f"{p['style']:.4g}",
                       f"{p['tv']:.4g}", f"{s['seconds']:.1f}"]
            parts.append(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_e(v)}</td>" for v in numbers) + "</tr>")
        else:
            why = f"failed: {i['error']}" if i["error"] else "not finished"
            parts.append(f"<tr><td>{html.escape(name)}</td><td colspan=6>{html.escape(why)}</td></tr>")
    parts.append("</table>")
    return parts


@cli
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] not in ("plot", "-h", "--help"):
        print(f"wrote {write_report(Path(argv[0]))}")
        return 0
    p = ArgumentParser(prog="nst-jax report", description="Plots from run logs.")
    sub = p.add_subparsers(dest="what", required=True)
    pp = sub.add_parser("plot", help="loss curves of one or more runs")
    pp.add_argument("logs", nargs="+")
    pp.add_argument("-o", "--output", required=True)
    pp.add_argument("--title", default="")
    args = p.parse_args(argv)
    if Path(args.output).suffix.lower() not in PLOT_SUFFIXES:
        raise NSTError(f"-o {args.output}: give a {', '.join(PLOT_SUFFIXES)} file name")
    logs = {Path(log).name.replace(".losses.jsonl", ""): read_log(log) for log in args.logs}
    plot_losses(logs, args.output, args.title)
    print(f"wrote {args.output}")
    return 0
