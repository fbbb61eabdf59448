"""Regenerate tests/data/vgg_parity_64.npz with PyTorch (run from the repo root, torch installed).

The fixture lets the VGG19 parity test run without torch: a seeded random 64×64 image and, for every
named layer, PyTorch's activations at 512 fixed positions plus each channel's mean.
"""

import numpy as np
import torch

from bench.torch_reference import features, preprocess, torch_params
from nst_jax.model import vgg, weights


def main():
    w = weights.load()
    rng = np.random.default_rng(1234)
    img = rng.random((64, 64, 3), dtype=np.float32)
    x = preprocess(torch.tensor(img.transpose(2, 0, 1)[None].copy()), w)
    with torch.no_grad():
        acts = features(torch_params(w), x, vgg.LAYER_NAMES)
    out = {"image": img}
    for name in vgg.LAYER_NAMES:
        a = acts[name].numpy()[0].transpose(1, 2, 0)  # HWC
        flat = a.reshape(-1)
        idx = np.sort(rng.choice(flat.size, size=min(512, flat.size), replace=False))
        out[f"{name}/idx"] = idx.astype(np.int64)
        out[f"{name}/values"] = flat[idx]
        out[f"{name}/channel_mean"] = a.reshape(-1, a.shape[-1]).mean(axis=0, dtype=np.float64)
        out[f"{name}/max_abs"] = np.float32(np.abs(a).max())
    np.savez_compressed("tests/data/vgg_parity_64.npz", **out)


if __name__ == "__main__":
    main()
