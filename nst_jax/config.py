"""One frozen Config flows from the command line to the solver; presets and validation live here.

Library functions take a Config (or plain values), never argparse objects. `validate` turns every
bad value into an `NSTError` with one clear line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nst_jax import vgg
from nst_jax.errors import NSTError
from nst_jax.solvers import SOLVERS
from nst_jax.statistics import NAMES as STATISTIC_NAMES

INITS = ("noise", "white", "black", "mean", "content", "style", "average")
ORIGINAL_COLORS = ("none", "luminance", "histogram")

# Defaults calibrated on the embedded (Caffe) weights: see README "Choosing the weights".
PRESETS: dict[str, dict[str, Any]] = {
    "default": dict(content_layers=("relu4_2",),
                    style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                    style_weight=1e2, tv_weight=1e4),
    # the PyTorch tutorial's choice (Gatys et al. as taught there): sequential names
    "tutorial": dict(content_layers=("conv_4",),
                     style_layers=("conv_1", "conv_2", "conv_3", "conv_4", "conv_5"),
                     style_weight=1e2, tv_weight=0.0),
}


@dataclass(frozen=True)
class Config:
    """Everything that defines a run. Fields marked `result=False` do not change the result image."""

    content: str
    styles: tuple[str, ...]
    output: str = "out.png"
    size: int = 512
    iterations: int = 500
    style_weight: float = PRESETS["default"]["style_weight"]
    content_weight: float = 1.0
    tv_weight: float = PRESETS["default"]["tv_weight"]
    content_layers: tuple[str, ...] = PRESETS["default"]["content_layers"]
    style_layers: tuple[str, ...] = PRESETS["default"]["style_layers"]
    style_layer_weights: tuple[float, ...] | None = None
    style_blend_weights: tuple[float, ...] | None = None
    style_scale: float = 1.0
    style_statistic: str = "gram"
    original_colors: str = "none"
    content_masks: tuple[str, ...] | None = None
    style_masks: tuple[str, ...] | None = None
    scales: tuple[int, ...] | None = None
    scale_iterations: tuple[int, ...] | None = None
    init: str = "content"
    optimizer: str = "lbfgs"
    lr: float | None = None
    history: int = 100
    pooling: str = "max"
    seed: int = 0
    weights: str | None = None
    preset: str = "default"
    save_every: int = field(default=0, metadata={"result": False})
    print_every: int = field(default=10, metadata={"result": False})
    checkpoint_every: int = field(default=50, metadata={"result": False})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def result_hash(self) -> str:
        """Hash of every field that changes the optimisation (not the iteration target or I/O cadence)."""
        skip = {"iterations", "output", "save_every", "print_every", "checkpoint_every"}
        d = {k: v for k, v in self.to_dict().items() if k not in skip}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def layer_weights(self) -> tuple[float, ...]:
        n = len(self.style_layers)
        return self.style_layer_weights if self.style_layer_weights is not None else (1.0 / max(n, 1),) * n


def with_preset(preset: str, **overrides) -> Config:
    """A Config from a preset's values, with explicit overrides (None means 'use the preset')."""
    if preset not in PRESETS:
        raise NSTError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["preset"] = preset
    return validate(Config(**values))


def validate(cfg: Config) -> Config:
    """Check every field; return the Config with layer names in block form. Raises NSTError."""
    if not cfg.styles:
        raise NSTError("at least one style image is needed")
    if cfg.size < 1:
        raise NSTError(f"--size must be a positive number of pixels, got {cfg.size}")
    if cfg.size > 8192:
        raise NSTError(f"--size {cfg.size} is larger than 8192 pixels; use multi-scale or a smaller size")
    if cfg.iterations < 0:
        raise NSTError(f"--iterations must be ≥ 0, got {cfg.iterations}")
    for name in ("style_weight", "content_weight", "tv_weight"):
        value = getattr(cfg, name)
        if not (value >= 0 and value < float("inf")):
            raise NSTError(f"--{name.replace('_', '-')} must be a finite number ≥ 0, got {value}")
    content_layers = vgg.resolve_all(cfg.content_layers)
    style_layers = vgg.resolve_all(cfg.style_layers)
    if not content_layers and not style_layers:
        raise NSTError("no content and no style layers: nothing to optimise")
    if cfg.style_layer_weights is not None and len(cfg.style_layer_weights) != len(style_layers):
        raise NSTError(f"--style-layer-weights has {len(cfg.style_layer_weights)} values for "
                       f"{len(style_layers)} style layers")
    if cfg.style_blend_weights is not None:
        if len(cfg.style_blend_weights) != len(cfg.styles):
            raise NSTError(f"--style-blend-weights has {len(cfg.style_blend_weights)} values for "
                           f"{len(cfg.styles)} style images")
        if any(w < 0 for w in cfg.style_blend_weights) or sum(cfg.style_blend_weights) <= 0:
            raise NSTError("--style-blend-weights must be ≥ 0 with a positive sum")
    if not cfg.style_scale > 0:
        raise NSTError(f"--style-scale must be positive, got {cfg.style_scale}")
    if cfg.style_statistic not in STATISTIC_NAMES:
        raise NSTError(f"unknown style statistic {cfg.style_statistic!r}; choose one of "
                       f"{', '.join(STATISTIC_NAMES)}")
    if cfg.style_masks is not None and cfg.content_masks is None:
        raise NSTError("--style-mask needs --content-mask (one content region per style)")
    if cfg.content_masks is not None:
        if len(cfg.content_masks) != len(cfg.styles):
            raise NSTError(f"--content-mask has {len(cfg.content_masks)} masks for {len(cfg.styles)} style images")
        if cfg.style_masks is not None and len(cfg.style_masks) != len(cfg.styles):
            raise NSTError(f"--style-mask has {len(cfg.style_masks)} masks for {len(cfg.styles)} style images")
        if cfg.style_statistic != "gram":
            raise NSTError("masks work with --style-statistic gram only")
        if cfg.style_blend_weights is not None:
            raise NSTError("masks give each style its own region; --style-blend-weights does not apply")
        for path in cfg.content_masks + (cfg.style_masks or ()):
            if not Path(path).is_file():
                raise NSTError(f"mask {path}: not found")
    if cfg.original_colors not in ORIGINAL_COLORS:
        raise NSTError(f"unknown --original-colors {cfg.original_colors!r}; choose one of {', '.join(ORIGINAL_COLORS)}")
    if cfg.scales is not None:
        if not cfg.scales or any(int(v) != v or v < 1 for v in cfg.scales):
            raise NSTError(f"--scales must be positive pixel sizes, got {cfg.scales}")
        if cfg.scale_iterations is not None and len(cfg.scale_iterations) != len(cfg.scales):
            raise NSTError(f"--scale-iterations has {len(cfg.scale_iterations)} values for {len(cfg.scales)} scales")
    if cfg.scale_iterations is not None and any(v < 0 for v in cfg.scale_iterations):
        raise NSTError("--scale-iterations must be ≥ 0")
    if cfg.init not in INITS and not Path(cfg.init).is_file():
        raise NSTError(f"--init {cfg.init!r} is neither one of {', '.join(INITS)} nor an existing file")
    if cfg.optimizer not in SOLVERS:
        raise NSTError(f"unknown optimizer {cfg.optimizer!r}; choose one of {', '.join(SOLVERS)}")
    if cfg.lr is not None and not cfg.lr > 0:
        raise NSTError(f"--lr must be positive, got {cfg.lr}")
    if cfg.history < 1:
        raise NSTError(f"--history must be ≥ 1, got {cfg.history}")
    if cfg.pooling not in vgg.POOLINGS:
        raise NSTError(f"unknown pooling {cfg.pooling!r}; choose one of {', '.join(vgg.POOLINGS)}")
    for name in ("save_every", "print_every", "checkpoint_every"):
        if getattr(cfg, name) < 0:
            raise NSTError(f"--{name.replace('_', '-')} must be ≥ 0")
    return dataclasses.replace(cfg, content_layers=content_layers, style_layers=style_layers)
