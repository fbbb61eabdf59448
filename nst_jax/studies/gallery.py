"""`nst-jax gallery statistics …`: the same transfer under each style statistic, side by side.

Runs `transfer.run` once per statistic (same content, style, initial image, iterations and k; each
statistic's own calibrated scale, `Statistic.scale`), keeps each run's files in a folder, and draws
one figure with the results and their final losses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from nst_jax.objective import statistics
from nst_jax.transfer.config import SAMPLES, with_preset
from nst_jax.transfer.options import add_common_arguments
from nst_jax.base.errors import ArgumentParser, cli
from nst_jax.files.fileio import save_figure
from nst_jax.files.fileio import write_json


def figure(panels: list[tuple[str, "object", str]], path: Path, title: str, columns: int = 5) -> None:
    """Save a grid of (title, image, caption) panels with matplotlib."""
    from nst_jax.studies.figures import pyplot
    plt = pyplot()

    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, img, caption) in zip(axes.flat, panels):
        ax.imshow(np.clip(img, 0.0, 1.0))
        ax.set_title(name, fontsize=10)
        ax.text(0.5, -0.04, caption, transform=ax.transAxes, ha="center", va="top", fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def statistics_gallery(content: str, style: str, out: Path, size: int, iterations: int, names, seed: int = 0,
                       **overrides):
    from nst_jax.model import weights as vgg_weights
    from nst_jax.files.image import load_image, resize, fit_size
    from nst_jax.transfer.runs import run

    c = load_image(content)
    s = load_image(style)
    panels = [("content", resize(c, fit_size(c.shape[:2], size)), Path(content).name),
              ("style", resize(s, fit_size(s.shape[:2], size)), Path(style).name)]
    results = {}
    cfgs = {name: with_preset("default", content=content, styles=(style,), size=size, iterations=iterations,
                              style_statistic=name, output=str(out / "runs" / f"{name}.png"),
                              checkpoint_every=0, checkpoint_minutes=0, print_every=0, seed=seed, **overrides)
            for name in names}  # every name checked before the first run
    weights = vgg_weights.load()
    for name, cfg in cfgs.items():
        print(f"{name}: {iterations} iterations at {size} px", file=sys.stderr, flush=True)
        res = run(cfg, progress=True, loaded_weights=weights)
        results[name] = {"loss": res.loss, **res.parts, "seconds": res.seconds}
        panels.append((name, res.image, f"style {res.parts['style']:.3g} · content {res.parts['content']:.3g}\n"
                                        f"{res.seconds:.0f} s"))
    figure(panels, out / "statistics.png",
           f"Style statistics, {iterations} L-BFGS iterations at {size} px, k = {cfg.style_weight:g}, init {cfg.init} "
           f"(style loss in each statistic's own calibrated units)")
    write_json(out / "statistics.json", results)
    return results


def classic_gallery(content: str, styles: list[str], out: Path, size: int, iterations: int, seed: int = 0):
    """Two-style blend, original colours (none / luminance / histogram), and multi-scale vs
    single-scale at about the same time (coarse half size for `iterations`, then 3/4 of them at full)."""
    from nst_jax.files.image import fit_size, load_image, resize
    from nst_jax.transfer.runs import run, run_multiscale

    def cfg(name, **kw):
        base = dict(content=content, styles=(styles[0],), size=size, iterations=iterations,
                    output=str(out / "runs" / f"{name}.png"), checkpoint_every=0, checkpoint_minutes=0,
                    print_every=0, seed=seed)
        base.update(kw)
        return with_preset("default", **base)

    def shown(path):
        img = load_image(path)
        return resize(img, fit_size(img.shape[:2], size))

    panels = [("content", shown(content), Path(content).name)] + \
             [(f"style {i + 1}", shown(p), Path(p).name) for i, p in enumerate(styles[:2])]
    results = {}
    jobs = [("style 1 only", cfg("style1")),
            ("style 2 only", cfg("style2", styles=(styles[1],))),
            ("blend 1:1", cfg("blend", styles=tuple(styles[:2]), style_blend_weights=(1.0, 1.0))),
            ("original colours: luminance", cfg("luminance", original_colors="luminance")),
            ("original colours: histogram", cfg("histogram", original_colors="histogram"))]
    for title, c in jobs:
        print(f"{title}: {c.iterations} iterations at {c.size} px", file=sys.stderr, flush=True)
        res = run(c, progress=True)
        results[title] = {"loss": res.loss, **res.parts, "seconds": res.seconds}
        panels.append((title, res.image, f"{res.seconds:.0f} s, style {res.parts['style']:.3g}"))
    coarse, fine = iterations, max(1, (3 * iterations) // 4)
    ms = run_multiscale(cfg("multiscale", scales=(size // 2, size), scale_iterations=(coarse, fine)), progress=True)
    seconds = sum(r.seconds for r in ms)
    results["multi-scale"] = {"loss": ms[-1].loss, **ms[-1].parts, "seconds": seconds}
    panels.append((f"multi-scale {size // 2}→{size}", ms[-1].image,
                   f"{coarse}+{fine} it, {seconds:.0f} s, loss {ms[-1].loss:.3g}"))
    single = results["style 1 only"]
    panels.append((f"single scale {size}", panels[3][1], f"{iterations} it, {single['seconds']:.0f} s, "
                                                          f"loss {single['loss']:.3g}"))
    figure(panels, out / "classic.png", f"Classic options at {size} px (k = 100, init content)", columns=5)
    write_json(out / "classic.json", results)
    return results


@cli
def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="nst-jax gallery", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    ps = sub.add_parser("statistics", help="one transfer per style statistic, side by side")
    add_common_arguments(ps, size=192, iterations=150, style_nargs=None)
    ps.add_argument("--statistics", default=",".join(statistics.NAMES),
                    help="comma-separated statistics (default: all)")
    ps.add_argument("-o", "--out", default="docs/statistics", help="output folder (default: %(default)s)")
    pc = sub.add_parser("classic", help="blend, original colours, multi-scale vs single scale")
    add_common_arguments(pc, size=256, iterations=80, style_nargs=2,
                         styles=[str(SAMPLES / "ihc.png"), str(SAMPLES / "hubble_deep_field.jpg")])
    pc.add_argument("-o", "--out", default="docs/classic", help="output folder (default: %(default)s)")
    args = p.parse_args(argv)
    if args.what == "classic":
        classic_gallery(args.content, args.styles, Path(args.out), args.size, args.iterations, seed=args.seed)
        return 0
    names = [n for n in args.statistics.split(",") if n]
    statistics_gallery(args.content, args.styles, Path(args.out), args.size, args.iterations, names, seed=args.seed)
    return 0
