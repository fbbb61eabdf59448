"""Frames in and out. A video file or an animated GIF is decoded with PyAV, a folder of frames is read
with the same image loader as the command line; frames are resized to the run's size on reading (even
sides, as H.264 needs), keeping the aspect ratio, including non-square pixels. The result is encoded
with PyAV (H.264, yuv420p: plays everywhere), at the source's frame rate divided by --every.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nst_jax.files import image
from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import atomic_write_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_FRAMES = 100_000
# the frame rates an mp4 is written at and read back: PyAV takes the rate as a C long (1e308 overflows
# it) and H.264 at 10 000 fps gives an mp4 with no frames it can decode
MIN_FPS, MAX_FPS = 0.001, 1000.0


class Clip(NamedTuple):
    """The frames picked from an input, at the run's size: (H, W, 3) float32 in [0, 1]."""

    frames: list[np.ndarray]
    fps: Fraction          # of the picked frames (the source's rate / every)
    source: str
    numbers: list[int]     # each frame's number in the source (from 0)


def av_module():
    """PyAV, or NSTError naming the extra that brings it."""
    try:
        import av
    except ImportError:
        raise NSTError("video needs PyAV and OpenCV: pip install 'nst_jax[video]'") from None
    return av


def frame_size(shape: tuple[int, int], longest: int) -> tuple[int, int]:
    """(H, W) with the longer side `longest` (aspect kept), each side rounded down to an even number."""
    h, w = image.fit_size(shape, longest)
    return max(2, h - h % 2), max(2, w - w % 2)


def check_rate(fps, what: str) -> None:
    """NSTError, before any work, for a frame rate that cannot be written (`MIN_FPS` … `MAX_FPS`)."""
    try:
        value = float(fps)
    except (OverflowError, ValueError):
        value = float("inf")
    if not MIN_FPS <= value <= MAX_FPS:
        raise NSTError(f"{what}: {value:g} fps cannot be written as an mp4; it must be between {MIN_FPS:g} and "
                       f"{MAX_FPS:g} fps")


def pick(available: int | None, start: int, count: int | None, every: int, source: str) -> range:
    """The frame numbers of --start, --frames and --every; NSTError when the range passes the end
    (`available` None: not known yet)."""
    if start < 0 or every < 1 or (count is not None and count < 1):
        raise NSTError("--start must be ≥ 0, --every ≥ 1 and --frames ≥ 1")
    stop = start + (count if count is not None else MAX_FRAMES) * every
    if available is None:
        return range(start, stop, every)
    if available == 0:
        raise NSTError(f"{source}: no frames")
    if start >= available:
        raise NSTError(f"--start {start} is past the end: {source} has {available} frames (0 … {available - 1})")
    if count is not None and start + (count - 1) * every >= available:
        raise NSTError(f"--frames {count} from --start {start} every {every} needs frame "
                       f"{start + (count - 1) * every}, but {source} has {available} frames")
    return range(start, min(stop, available), every)


def read_clip(path: str, size: int, start: int = 0, count: int | None = None, every: int = 1,
              fps: float | None = None) -> Clip:
    """The picked frames of a video, an animated GIF or a folder of images, at `size` (longest side).
    `fps`: a folder's frame rate (default 25); a video's own rate otherwise."""
    p = Path(path)
    if fps is not None:
        check_rate(fps, "--fps")
    if p.is_dir():
        return _read_folder(p, size, start, count, every, Fraction(fps or 25).limit_denominator(1001))
    if not p.is_file():
        raise NSTError(f"{path}: not found")
    return _read_video(p, size, start, count, every, fps)


def _natural(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _read_folder(folder: Path, size: int, start: int, count: int | None, every: int, fps: Fraction) -> Clip:
    names = sorted((f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()),
                   key=lambda f: _natural(f.name))
    numbers = pick(len(names), start, count, every, f"folder {folder}")
    check_rate(fps / every, f"folder {folder} at --every {every}")
    first = image.image_size(names[numbers[0]])
    frames = []
    for n in numbers:
        if image.image_size(names[n]) != first:
            h, w = image.image_size(names[n])
            raise NSTError(f"folder {folder}: {names[n].name} is {w}×{h} px but {names[numbers[0]].name} is "
                           f"{first[1]}×{first[0]} px; the frames of a video must have one size")
        frames.append(image.resize(image.load_image(names[n]), frame_size(first, size)))
    return Clip(frames, fps / every, str(folder), list(numbers))


def _read_video(path: Path, size: int, start: int, count: int | None, every: int, fps: float | None) -> Clip:
    av = av_module()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise NSTError(f"{path}: not a video, an animated GIF or a folder of frames ({_why(err)})") from None
    with container:
        if not container.streams.video:
            raise NSTError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        rate = Fraction(fps).limit_denominator(1001) if fps else \
            Fraction(stream.average_rate or stream.guessed_rate or 25)
        wanted, frames, numbers, seen = pick(None, start, count, every, str(path)), [], [], 0
        check_rate(rate / every, f"{path}: its frame rate at --every {every} (give --fps)")
        try:
            sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
            for frame in container.decode(stream):
                if seen in wanted:
                    frames.append(_frame_array(frame, size, sar))
                    numbers.append(seen)
                seen += 1
                if count is not None and len(frames) == count:
                    break
        except (av.error.FFmpegError, ValueError) as err:
            if not frames and seen == 0:
                raise NSTError(f"{path}: not a video, an animated GIF or a folder of frames ({_why(err)})") from None
    if count is not None and len(frames) < count or not frames:
        pick(seen, start, count, every, str(path))   # raises the error that says why
    return Clip(frames, rate / every, str(path), numbers)


def _why(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:160]


def _frame_array(frame, size: int, sar) -> np.ndarray:
    """One decoded frame as float RGB at the run's size, its pixel aspect ratio `sar` applied."""
    rgb = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
    h, w = rgb.shape[:2]
    if sar is not None and sar != 0 and sar != 1:
        w = max(1, round(w * float(sar)))
    return image.resize(rgb, frame_size((h, w), size))


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: Fraction) -> None:
    """Encode frames (H, W, 3) in [0, 1] (even sides) as an H.264 mp4, atomically."""
    av = av_module()
    h, w = frames[0].shape[:2]

    def write(tmp: str) -> None:
        with av.open(tmp, "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": "16", "preset": "medium"}
            for f in frames:
                frame = av.VideoFrame.from_ndarray(image.to_uint8(f), format="rgb24")
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    atomic_write_path(path, write)


def count_frames(path: str | Path) -> int:
    """How many frames a video file decodes to (for checks and tests)."""
    av = av_module()
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
