"""The PyTorch reference: the same VGG19 weights (read from our HDF5), preprocessing and objective as
nst_jax, optimised by torch.optim.LBFGS(history_size=100, no line search, tolerances off), the
algorithm of neural-style / neural-style-pt and the PyTorch tutorial. CPU or CUDA.

Written independently of nst_jax's JAX code so that parity tests compare two implementations.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nst_jax.model import vgg
from nst_jax.model.weights import Weights


def torch_params(w: Weights, device: str = "cpu") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Conv weights as OIHW tensors (from the file's HWIO)."""
    return {name: (torch.tensor(np.ascontiguousarray(w.params[name]["kernel"].transpose(3, 2, 0, 1)),
                                device=device),
                   torch.tensor(w.params[name]["bias"], device=device))
            for name in vgg.CONV_NAMES}


def preprocess(x: torch.Tensor, w: Weights) -> torch.Tensor:
    """NCHW RGB [0, 1] → the network's input as recorded in the weights file."""
    p = w.preprocessing
    if p.channel_order == "BGR":
        x = x.flip(1)
    mean = torch.tensor(p.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(p.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * p.pixel_scale - mean) / std


def features(params, x: torch.Tensor, layers: Sequence[str], pooling: str = "max") -> dict[str, torch.Tensor]:
    """Activations (NCHW) of the named block layers, computed with torch's conv2d/relu/pool."""
    wanted = set(layers)
    deepest = max(vgg.LAYER_NAMES.index(n) for n in wanted)
    out = {}
    for name, _, kind in vgg.LAYERS[: deepest + 1]:
        if kind == "conv":
            x = F.conv2d(x, params[name][0], params[name][1], padding=1)
        elif kind == "relu":
            x = F.relu(x)
        elif pooling == "max":
            x = F.max_pool2d(x, 2, 2)
        else:
            x = F.avg_pool2d(x, 2, 2)
        if name in wanted:
            out[name] = x
    return out


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


class Objective:
    """content_weight·Σ mean((F−P)²) + style_weight·Σ w_l mean((G−A)²) + tv_weight·TV, as nst_jax."""

    def __init__(self, w: Weights, content: np.ndarray, style: np.ndarray, content_layers, style_layers,
                 layer_weights, content_weight=1.0, style_weight=1.0, tv_weight=0.0, pooling="max",
                 device="cpu"):
        self.w, self.device, self.pooling = w, device, pooling
        self.params = torch_params(w, device)
        self.cl, self.sl = tuple(content_layers), tuple(style_layers)
        self.lw = dict(zip(self.sl, layer_weights))
        self.cw, self.sw, self.tw = content_weight, style_weight, tv_weight
        with torch.no_grad():
            c = features(self.params, preprocess(self.to_tensor(content), w), self.cl, pooling)
            s = features(self.params, preprocess(self.to_tensor(style), w), self.sl, pooling)
        self.ct = {k: c[k] for k in self.cl}
        self.st = {k: gram(s[k]) for k in self.sl}

    def to_tensor(self, img: np.ndarray) -> torch.Tensor:
        """(H, W, 3) or (1, H, W, 3) numpy → (1, 3, H, W) tensor."""
        a = np.asarray(img, np.float32)
        a = a[None] if a.ndim == 3 else a
        return torch.tensor(np.ascontiguousarray(a.transpose(0, 3, 1, 2)), device=self.device)

    def __call__(self, x: torch.Tensor):
        feats = features(self.params, preprocess(x, self.w), self.cl + self.sl, self.pooling)
        lc = sum(((feats[k] - t) ** 2).mean() for k, t in self.ct.items()) if self.ct else x.new_zeros(())
        ls = sum(self.lw[k] * ((gram(feats[k]) - t) ** 2).mean() for k, t in self.st.items()) \
            if self.st else x.new_zeros(())
        tv = ((x[:, :, 1:] - x[:, :, :-1]) ** 2).mean() + ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).mean()
        return self.cw * lc + self.sw * ls + self.tw * tv, (lc, ls, tv)


class LBFGSSteps:
    """torch.optim.LBFGS (history 100, no line search, tolerances off) one iteration per call, so that a
    bench can time it in turns with another optimizer. With max_iter=1 each `step()` evaluates the
    objective once, at the current image, and takes one step from it; the optimizer's state carries the
    history between calls, so N calls do the arithmetic of one call of N iterations (tested).
    `step()` returns the loss it evaluated (before its step)."""

    def __init__(self, objective: Objective, x0: np.ndarray, history: int = 100, lr: float = 1.0):
        self.objective = objective
        self.x = objective.to_tensor(x0).requires_grad_(True)
        self.opt = torch.optim.LBFGS([self.x], lr=lr, max_iter=1, history_size=history,
                                     tolerance_grad=-1, tolerance_change=-1, line_search_fn=None)

    def _closure(self):
        self.opt.zero_grad()
        loss, _ = self.objective(self.x)
        loss.backward()
        return loss

    def step(self) -> float:
        return float(self.opt.step(self._closure).detach())

    def final(self) -> tuple[np.ndarray, float]:
        """The image (H, W, 3) and its loss after the steps taken (torch does not evaluate after a step)."""
        with torch.no_grad():
            loss, _ = self.objective(self.x)
        return self.x.detach().cpu().numpy()[0].transpose(1, 2, 0), float(loss)


def run_lbfgs(objective: Objective, x0: np.ndarray, iterations: int, history: int = 100, lr: float = 1.0):
    """torch.optim.LBFGS as neural-style-pt runs it; returns (final image (H, W, 3), losses per iteration).

    losses[i] is the loss after i iterations (losses[0] at x0).
    """
    steps = LBFGSSteps(objective, x0, history, lr)
    losses = [steps.step() for _ in range(iterations)]
    img, final_loss = steps.final()
    losses.append(final_loss)
    return img, losses
