"""`memory` on its own: the plan's exact arithmetic, the largest size that fits, and devices that are
not here (`--plan 8x80GB`)."""

from __future__ import annotations

import math

import pytest

from nst_jax.base.errors import NSTError

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)


def _cpu(bytes_each=24e9, count=1):
    from nst_jax.scale import memory
    return memory.Devices("cpu", count, bytes_each, True)


def test_plan_parts_are_the_documented_arithmetic():
    from nst_jax.scale import memory
    from nst_jax.model import vgg
    h, w = 341, 512
    d = h * w * 3
    p = memory.needs("lbfgs", 100, CONTENT_LAYERS, LAYERS, h, w, _cpu(), "plain")
    parts = dict(p.parts)
    assert parts["L-BFGS history (2·100 vectors, float32)"] == 2 * 100 * d * 4
    assert parts["image, gradient, solver vectors"] == 6 * d * 4
    conv = sum(math.prod(vgg.feature_shape(n, h, w)) for n, _, k in vgg.LAYERS[:vgg.depth_index("relu5_1") + 1]
               if k == "conv")
    assert parts["activations kept for the gradient"] == pytest.approx(1.7 * 4 * conv)
    assert p.needed == pytest.approx(sum(parts.values()) + memory.PROCESS_BYTES)
    q = memory.needs("lbfgs", 100, CONTENT_LAYERS, LAYERS, h, w, _cpu(), "remat-bf16")
    assert dict(q.parts)["L-BFGS history (2·100 vectors, bfloat16)"] == 2 * 100 * d * 2  # half
    assert q.parts[0][1] == pytest.approx(p.parts[0][1] * 1.15 / 1.7)
    assert q.checkpoint == 2 * 100 * d * 2 + 2 * d * 4 + 2 * 100 ** 2 * 4   # history, x and grad, S·Yᵀ and Y·Yᵀ
    small = "L-BFGS 100×100 matrices (S·Yᵀ, Y·Yᵀ, the direction's workspace)"
    assert parts[small] == memory.SMALL_MATRICES * 100 ** 2 * 4
    big = dict(memory.needs("lbfgs", 60000, CONTENT_LAYERS, LAYERS, 64, 96, _cpu(), "plain").parts)
    assert big["L-BFGS 60000×60000 matrices (S·Yᵀ, Y·Yᵀ, the direction's workspace)"] == pytest.approx(100.8e9)
    # split across 4 GPUs: the image-sized parts divide by 4, the weights and targets do not
    gpu = memory.Devices("gpu", 4, 80e9, False)
    s = memory.needs("lbfgs", 100, CONTENT_LAYERS, LAYERS, h, w, gpu, "plain")
    one = memory.needs("lbfgs", 100, CONTENT_LAYERS, LAYERS, h, w, gpu._replace(count=1), "plain")
    for (name, a), (_, b) in zip(s.parts, one.parts):
        assert a == pytest.approx(b if name in ("targets", "network weights") or "matrices" in name else b / 4), name
    assert s.process == 0 and s.needed == pytest.approx(sum(b for _, b in s.parts))


def test_largest_size_is_the_boundary():
    from nst_jax.scale import memory
    at = lambda h, w: memory.needs("lbfgs", 100, CONTENT_LAYERS, LAYERS, h, w, _cpu(8e9), "remat")
    shape_at = lambda side: (round(side * 2 / 3), side)
    side = memory.largest_size(at, shape_at)
    assert side > 256
    assert at(*shape_at(side)).fits and not at(*shape_at(side + 1)).fits


@pytest.mark.parametrize("text, count, each", [("80GB", 1, 80e9), ("8x80GB", 8, 80e9), ("2×40GiB", 2, 40 * 2 ** 30)])
def test_plan_for_devices_that_are_not_here(text, count, each):
    from nst_jax.scale import memory
    d = memory.parse_devices(text)
    assert (d.count, d.bytes_each, d.shared) == (count, each, False)


@pytest.mark.parametrize("text", ["", "80", "0x80GB", "8x0.0001MB", "lots"])
def test_devices_that_cannot_be_planned_for_are_refused(text):
    from nst_jax.scale import memory
    with pytest.raises(NSTError, match="--plan"):
        memory.parse_devices(text)


def test_ways_and_history_precision():
    from nst_jax.scale import memory
    assert [memory.remat(w) for w in memory.WAYS] == [False, True, True]
    assert [memory.history_bytes(w) for w in memory.WAYS] == [4, 4, 2]
