"""Dense optical flow between frames (OpenCV's DIS), warping by a flow, and the consistency weights of
Ruder et al. (after Sundaram et al. 2010) that say where a warped frame can be trusted.

Conventions: a flow `f` from frame a to frame b is (H, W, 2) in pixels, (x, y) order, with
a(p) ≈ b(p + f(p)). To bring frame a into frame b's pixels, sample a at p + f_ba(p), the flow from
b to a (`warp`). `Pair(src, dst)` is what warping frame src into frame dst needs: that backward flow
and the weights c on dst's pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nst_jax.base.errors import NSTError

PRESETS = ("ultrafast", "fast", "medium")
# the shortest frame side DIS takes at each preset, at any aspect ratio: its image pyramid must reach
# the preset's finest scale, and below this OpenCV raises or ends the process with SIGSEGV (measured
# on OpenCV 5.1 for every even side up to 64 against long sides up to 8192)
MIN_SIDE = {"ultrafast": 32, "fast": 32, "medium": 16}


def cv2_module():
    try:
        import cv2
    except ImportError:
        raise NSTError("video needs PyAV and OpenCV: pip install 'nst_jax[video]'") from None
    return cv2


class Pair(NamedTuple):
    """Frame src seen from frame dst: the flow dst → src (H, W, 2) and the consistency weights (H, W)."""

    flow: np.ndarray
    weights: np.ndarray

    def as_array(self) -> np.ndarray:
        return np.concatenate([self.flow, self.weights[..., None]], axis=-1).astype(np.float32)

    @staticmethod
    def from_array(a: np.ndarray) -> "Pair":
        return Pair(a[..., :2], a[..., 2])


def grey(img: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1] → uint8 luma, as DIS takes it."""
    y = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)


def check_size(shape: tuple[int, ...], preset: str, what: str) -> None:
    """NSTError for frames (H, W, …) too small for DIS at `preset` (`MIN_SIDE`)."""
    need = MIN_SIDE[preset]
    if min(shape[:2]) < need:
        other = [p for p in PRESETS if MIN_SIDE[p] <= min(shape[:2])]
        raise NSTError(f"{what}: its frames are {shape[1]}×{shape[0]} px at this --size, but the optical flow "
                       f"(--flow-preset {preset}) needs at least {need} px on each side; raise --size"
                       + (f" or use --flow-preset {other[-1]}" if other else ""))


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """The flow from frame a to frame b (float RGB images), OpenCV's DIS with variational refinement."""
    check_size(a.shape, preset, "optical flow")
    cv2 = cv2_module()
    cv2.setNumThreads(1)  # one thread: the same numbers on every machine and in every worker
    dis = cv2.DISOpticalFlow_create({"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                                     "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                                     "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset])
    return dis.calc(grey(a), grey(b), None).astype(np.float32)


def sample(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """img (h, w, C) sampled bilinearly at p + flow(p) for each pixel p of the flow (H, W, 2); positions
    outside take the nearest edge pixel."""
    cv2 = cv2_module()
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = cv2.remap(np.ascontiguousarray(img, np.float32), xs + flow[..., 0], ys + flow[..., 1],
                    interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(h, w, -1) if img.ndim == 3 else out


def warp(img: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Frame src's image brought into frame dst's pixels, with the flow dst → src."""
    return sample(img, backward)


def consistency(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s weights c (H, W) on frame dst's pixels, from the flows src → dst (`forward`) and
    dst → src (`backward`): 0 where dst's pixel was disoccluded (the round trip does not come back),
    on a motion boundary, or where it comes from outside src; 1 elsewhere."""
    h, w = backward.shape[:2]
    round_trip = sample(forward, backward)                      # w̃(x) = w(x + ŵ(x))
    disoccluded = (np.sum(np.square(round_trip + backward), -1)
                   > 0.01 * (np.sum(np.square(round_trip), -1) + np.sum(np.square(backward), -1)) + 0.5)
    du_y, du_x = np.gradient(backward[..., 0])
    dv_y, dv_x = np.gradient(backward[..., 1])
    boundary = du_x ** 2 + du_y ** 2 + dv_x ** 2 + dv_y ** 2 > 0.01 * np.sum(np.square(backward), -1) + 0.002
    ys, xs = np.mgrid[0:h, 0:w]
    tx, ty = xs + backward[..., 0], ys + backward[..., 1]
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    return (~(disoccluded | boundary | outside)).astype(np.float32)


def pair(src: np.ndarray, dst: np.ndarray, preset: str = "medium") -> Pair:
    """Both flows between two frames, and the weights of frame src warped into frame dst."""
    forward, backward = dis_flow(src, dst, preset), dis_flow(dst, src, preset)
    return Pair(backward, consistency(forward, backward))


def warping_error(x: np.ndarray, earlier: np.ndarray, p: Pair) -> float:
    """The mean |x − warp(earlier)| over the pixels with c = 1, in 8-bit levels (0 … 255): how much a
    stylised frame changes where the scene only moved (0 when no pixel is trusted)."""
    trusted = p.weights > 0.5
    if not trusted.any():
        return 0.0
    diff = np.abs(np.asarray(x, np.float32) - warp(earlier, p.flow)).mean(axis=-1)
    return float(diff[trusted].mean() * 255.0)
