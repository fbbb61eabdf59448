"""Temporal consistency of video style transfer, by method: `python -m bench.video [--size 128]`.

On the shipped sample clips (a pan and zoom over a photograph with a moving disc, and a drift over the
Hubble Deep Field), stylises the first --frames frames with each method of Ruder et al. (independent
frames, the short-term temporal loss with a per-frame iteration count and with the stopping rule, the
long-term loss, the multi-pass algorithm), one after the other in this process. For each: the mean
warping error between consecutive output frames over the pixels with c = 1 (8-bit levels; the input
clip's own is the floor), the final frames' weighted style and content losses, iterations and seconds
per frame. Writes bench/results/video-cpu-<date>.md (with the machine line and the load average) and,
with --docs, the table, a preview grid, an animated side-by-side GIF and a plot into docs/video/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
from pathlib import Path

from bench import write_results

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def rows_for(args) -> list[tuple[str, dict]]:
    """(label, how) for each method: Options fields and Config overrides."""
    from nst_jax.apps.video.methods import Method
    fi = args.frame_iterations
    return [("independent", dict(method=Method("independent"), frame_iterations=None, cfg={})),
            ("short-term", dict(method=Method("short"), frame_iterations=fi, cfg={})),
            (f"short-term, stopping rule (--frame-tol {args.tol:g}, at most {args.iterations})",
             dict(method=Method("short"), frame_iterations=args.iterations, frame_tol=args.tol, cfg=dict(tol_window=10))),
            ("long-term (1, 2, 4 back)", dict(method=Method("long", long_term=(1, 2, 4)), frame_iterations=fi, cfg={})),
            (f"multi-pass ({args.passes} passes)", dict(method=Method("multipass", passes=args.passes),
                                                        frame_iterations=fi, cfg={}))]


def measure(clip, label: str, how: dict, args, work: Path, w) -> dict:
    from nst_jax.transfer.config import SAMPLES, with_preset
    from nst_jax.apps.video.driver import Options, run_video
    cfg = with_preset("default", content="clip", styles=(str(SAMPLES / "starry_night.jpg"),), size=args.size,
                      iterations=args.iterations, print_every=0, checkpoint_every=0, **how["cfg"])
    out = work / label.split(" ")[0].replace(",", "") / f"{len(list(work.glob('*')))}" / "v.mp4"
    rec = run_video(cfg, clip, str(out), Options(how["method"], how["frame_iterations"], frame_tol=how.get("frame_tol")),
                    progress=False,
                    weights=w, say=lambda line: None)
    n = rec["frames"]
    return {"label": label, "error": rec["consistency"]["mean warping error"],
            "per frame": rec["consistency"]["per frame"], "style": rec["losses"]["style"],
            "content": rec["losses"]["content"], "seconds": rec["seconds"]["runs"] / n,
            "iterations": sum(r["iteration"] or 0 for r in rec["runs"]) / n, "frames_dir": str(out.with_suffix(".frames"))}


def warm_up(clip, args, work: Path, w) -> None:
    """Compile every program the methods use (no temporal term; one and three earlier frames) on two
    frames, so that no method's seconds include compiling."""
    from nst_jax.apps.video.methods import Method
    two = clip._replace(frames=clip.frames[:2], numbers=clip.numbers[:2])
    few = argparse.Namespace(**{**vars(args), "iterations": 2})
    for i, method in enumerate((Method("independent"), Method("short"), Method("long", long_term=(1, 2, 4)))):
        measure(two, f"warm{i}", dict(method=method, frame_iterations=1, cfg={}), few, work, w)


def input_error(clip, pairs) -> float:
    from nst_jax.apps.video.summary import consistency
    return float(np.mean(consistency(clip.frames, pairs)))


def markdown(results: dict, args, machine: str, load: str) -> str:
    lines = [f"# Temporal consistency of video style transfer ({dt.date.today().isoformat()})", "",
             f"Machine: {machine}; load average before: {load}. `python -m bench.video --size {args.size} --frames "
             f"{args.frames} --iterations {args.iterations} --frame-iterations {args.frame_iterations} --passes "
             f"{args.passes}`: starry_night.jpg as the style, the default weights (temporal weight "
             f"{args.temporal_weight:g}), first frame {args.iterations} iterations, later frames (and later "
             f"passes) {args.frame_iterations}, an independent frame {args.iterations}.", "",
             "Warping error: the mean |x_i − warp(x_{i−1})| between consecutive output frames over the pixels "
             "whose flow is trusted (c = 1), in 8-bit levels; the input clip's own error is the floor (the flow "
             "and resampling). Style and content: the final frames' weighted losses, mean over frames "
             "(consistency must not be bought by dropping the style). Seconds and iterations per frame: all "
             "runs of the video (every pass) divided by its frames.", ""]
    for clip, rows in results.items():
        lines += [f"## {clip} (input clip's own warping error {rows['input']:.2f})", "",
                  "| method | warping error | style loss | content loss | iterations / frame | s / frame |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in rows["methods"]:
            lines.append(f"| {r['label']} | {r['error']:.2f} | {r['style']:.4g} | {r['content']:.4g} | "
                         f"{r['iterations']:.0f} | {r['seconds']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from nst_jax.model import weights
    from nst_jax.transfer.config import SAMPLES, TEMPORAL_WEIGHT
    from nst_jax.machine.hardware import describe_cpu
    from nst_jax.apps.video.frames import read_clip
    p = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--frame-iterations", type=int, default=75)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--clips", default="pan_zoom,drift")
    p.add_argument("--docs", nargs="?", const=str(ROOT / "docs" / "video"), metavar="DIR",
                   help="also write the table, the previews and the plot into DIR (default: docs/video)")
    p.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    args.temporal_weight = TEMPORAL_WEIGHT
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    w = weights.load()
    work = Path(tempfile.mkdtemp(prefix="nst_jax_bench_video_"))
    results = {}
    for name in args.clips.split(","):
        clip = read_clip(str(SAMPLES / f"{name}.mp4"), args.size, count=args.frames)
        warm_up(clip, args, work / "warm-up", w)
        rows = []
        for label, how in rows_for(args):
            rows.append(measure(clip, label, how, args, work / name, w))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "per frame"}), flush=True)
        results[name] = {"methods": rows, "input": rows_input(clip, work / name)}
        if args.docs and name == "pan_zoom":
            from bench.video_figures import write_previews
            write_previews(clip, rows, Path(args.docs))
    text = markdown(results, args, describe_cpu(), load) + "\n"
    write_results("video-cpu", text, args.results_dir)
    if args.docs:
        (Path(args.docs) / "consistency.md").write_text(text)
    return 0


def rows_input(clip, work: Path) -> float:
    """The input clip's own warping error: its frames as a video's runs read them, with their flows
    (from the cache the methods' runs filled)."""
    from nst_jax.transfer.config import with_preset
    from nst_jax.apps.video.driver import Options, Video
    from nst_jax.apps.video.files import VideoFiles
    from nst_jax.apps.video.methods import Method
    files = VideoFiles(work / "input" / "v.mp4")
    files.check()
    files.claim()
    cfg = with_preset("default", content="clip", styles=("style",), iterations=0)
    video = Video(cfg, clip, files, Options(Method("independent")), say=lambda line: None)
    return input_error(clip._replace(frames=video.frames), video.pairs)


if __name__ == "__main__":
    raise SystemExit(main())
