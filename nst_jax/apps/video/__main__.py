"""`nst-jax video INPUT STYLE [STYLE …] -o out.mp4`: style transfer for a video, a GIF or a
folder of frames, with the temporal consistency of Ruder et al., *Artistic style transfer for videos*.
Every option of `nst-jax run` applies to each frame.
"""

from __future__ import annotations

import argparse
import contextlib

from nst_jax.transfer.config import FIELDS
from nst_jax.base.errors import ArgumentParser, cli, exit_with
from nst_jax.transfer.options import add_argument, parse_ints

LEFT_OUT = {"content", "styles", "output", "scales", "scale_iterations", "temporal", "content_masks",
            "style_masks"}
DEFAULTS = {"size": 256, "iterations": 300}


def build_parser() -> argparse.ArgumentParser:
    from nst_jax.apps.video.flow import PRESETS
    from nst_jax.apps.video.methods import METHODS
    p = ArgumentParser(prog="nst-jax video",
                       description="Style transfer for a video with temporal consistency (Ruder et al., 'Artistic "
                                   "style transfer for videos'): each frame starts from the previous stylised frame "
                                   "warped by the optical flow and is held to it where the flow is trusted.")
    p.add_argument("input", help="a video file, an animated GIF or a folder of frames")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s); several are blended")
    p.add_argument("-o", "--output", default="out.mp4", help="the result (.mp4); its sidecar (.json) and "
                   "stylised frames (.frames/) are written beside it, its working files in one folder beside it "
                   "(.work/), removed when the video is done (default: out.mp4)")
    v = p.add_argument_group("video")
    v.add_argument("--method", choices=METHODS, default="short", help="independent frames, the short-term "
                   "temporal loss, the long-term one, or the multi-pass algorithm (default: short)")
    v.add_argument("--frame-iterations", type=int, help="iterations of every frame after the first (they start "
                   "close to their optimum), and of every pass after the first with --method multipass "
                   "(default: --iterations)")
    v.add_argument("--frame-tol", type=float, metavar="TOL", help="the stopping rule of every frame after the "
                   "first (see --tol; --tol-window applies): they start close to their optimum and may stop "
                   "before --frame-iterations (default: --tol)")
    v.add_argument("--long-term", type=parse_ints, default=(1, 2, 4), metavar="J",
                   help="with --method long: how many frames back each frame is held to (default: 1,2,4)")
    v.add_argument("--passes", type=int, default=4, help="with --method multipass: passes, alternating "
                   "forward and backward after an independent first one (default: 4)")
    v.add_argument("--blend", type=float, default=0.5, help="with --method multipass: δ, how far a frame's "
                   "initial image moves towards its neighbour's result where the flow is trusted (default: 0.5)")
    v.add_argument("--clips", nargs="+", metavar="CLIP", help="more clips stylised the same way: INPUT and "
                   "each CLIP are written to -o FOLDER as <name>.mp4; with --engine ray they run at once")
    v.add_argument("--start", type=int, default=0, help="first frame to take, counted from 0 (default: 0)")
    v.add_argument("--frames", type=int, help="how many frames to take (default: to the end)")
    v.add_argument("--every", type=int, default=1, help="take every N-th frame; the frame rate is divided "
                   "by N, so the video keeps its speed (default: 1)")
    v.add_argument("--fps", type=float, help="frame rate of a folder of frames (default: 25), or to override "
                   "a video's")
    v.add_argument("--flow-preset", choices=PRESETS, default="medium", help="OpenCV DIS optical flow preset "
                   "(default: medium)")
    v.add_argument("--engine", choices=("local", "ray"), default="local", help="'ray': the flows and the "
                   "independent runs of a pass as Ray tasks (the sweep's engine)")
    v.add_argument("--address", help="with --engine ray: the cluster to join (default: a local one)")
    v.add_argument("--restart", action="store_true", help="ignore the frames' checkpoints and results and "
                   "start over")
    v.add_argument("--keep-work", action="store_true", help="keep the work folder (each frame's run with its "
                   "loss log and checkpoint, the flows) when the video is done, to inspect it")
    v.add_argument("--quiet", action="store_true", help="no progress lines")
    v.add_argument("--web", nargs="?", const=0, type=int, metavar="PORT", help="serve a live page on 127.0.0.1: "
                   "the frame being made, its losses and the frames done so far (PORT default: any free one); "
                   "needs nst_jax[studio]")
    for name in FIELDS:
        if name not in LEFT_OUT:
            add_argument(p, name, DEFAULTS[name]) if name in DEFAULTS else add_argument(p, name)
    return p


def parse(argv: list[str] | None = None):
    """The Config every frame starts from, the Options, and the namespace."""
    from nst_jax.transfer.config import with_preset
    from nst_jax.base.errors import NSTError
    from nst_jax.apps.video.driver import Options
    from nst_jax.apps.video.methods import Method
    args = build_parser().parse_args(argv)
    given = {name: getattr(args, name) for name in FIELDS if hasattr(args, name) and name not in LEFT_OUT}
    cfg = with_preset(given.pop("preset", "default"), content=args.input, styles=tuple(args.styles), **given)
    if args.frame_iterations is not None and args.frame_iterations < 0:
        raise NSTError("--frame-iterations must be ≥ 0")
    if args.passes < 1 or not 0 <= args.blend <= 1 or not args.long_term or min(args.long_term) < 1:
        raise NSTError("--passes must be ≥ 1, --blend in [0, 1], and --long-term positive frame counts")
    if args.frame_tol is not None and not args.frame_tol >= 0:
        raise NSTError("--frame-tol must be ≥ 0")
    if args.fps is not None:
        from nst_jax.apps.video.frames import check_rate
        check_rate(args.fps, "--fps")
    method = Method(args.method, tuple(sorted(set(args.long_term))), args.passes, args.blend)
    return cfg, Options(method, args.frame_iterations, args.flow_preset, args.engine, args.address,
                        frame_tol=args.frame_tol, keep_work=args.keep_work), args


@cli(interrupted="the frames done so far and the last checkpoint are kept in the video's work folder "
                 "(<output>.work/); run the same command to continue")
def main(argv: list[str] | None = None) -> int:
    import sys
    from nst_jax.base.errors import NSTError
    cfg, opts, args = parse(argv)
    from nst_jax.machine import command
    command.prepare()   # before anything allocates or compiles
    from nst_jax.apps.video.clips import outputs, run_clips
    from nst_jax.apps.video.driver import check_inputs, run_video
    from nst_jax.apps.video.files import VideoFiles
    from nst_jax.apps.video.frames import read_clip
    if args.clips and args.web is not None:
        raise NSTError("--web shows one video; leave it out with --clips")
    inputs = [args.input, *(args.clips or [])]
    outs = outputs(inputs, args.output) if args.clips else [args.output]
    clips = [read_clip(i, cfg.size, args.start, args.frames, args.every, args.fps) for i in inputs]
    for clip in clips:   # every input, before anything is made
        check_inputs(cfg, clip, opts)
    say = lambda line: print(line, file=sys.stderr, flush=True)
    with contextlib.ExitStack() as made:   # a refused command leaves none of the folders it made
        for out in outs:
            made.enter_context(VideoFiles(out).discarded_if_refused()).check(inputs)
        if args.clips:
            records = run_clips(cfg, clips, outs, opts, args.restart, not args.quiet, say)
        else:
            from nst_jax.web import watching
            with watching(args.web, outs[0]) as watch:
                records = [run_video(cfg, clips[0], outs[0], opts, restart=args.restart, progress=not args.quiet,
                                     watch=watch)]
    for out, record in zip(outs, records):
        done = f"{out} was already done" if record.get("already done") else f"wrote {out}"
        print(f"{done}: {record['frames']} frames at {record['fps']} fps, {record['method']['name']} "
              f"method, {record['seconds']['per frame']:.1f} s per frame; warping error "
              f"{record['consistency']['mean warping error']:.2f} levels")
    return 0


if __name__ == "__main__":
    exit_with(main)
