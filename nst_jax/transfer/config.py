"""One frozen Config flows from the command line to the solver; each run option is declared here once.

A Config is what was asked, as pure data: it reads no file and probes no hardware (what was planned from
it on this machine is `planning.RunPlan`). Every run option is one `Config` field whose metadata
(`option(...)`) says its help text, its choices, how the command line spells and parses it, and whether
it changes the optimisation's path (`result`): `options` builds the command line from it,
`identity.settings_hash` hashes exactly the fields with `result=True`, and `validate` checks choices and
types from the same metadata. Library functions take a Config (or plain values), never argparse objects.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst_jax.base import catalogue
from nst_jax.base.errors import NSTError
from nst_jax.files.checkpoints import Schedule as CheckpointSchedule
from nst_jax.model import vgg_layers
from nst_jax.scale import memory
from nst_jax.transfer.fieldtypes import coerce_value, option, parse_names
from nst_jax.transfer.stopping import StopRule

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_CONTENT = str(SAMPLES / "chelsea.png")
SAMPLE_STYLE = str(SAMPLES / "ihc.png")
SAMPLE_PAINTING = str(SAMPLES / "starry_night.jpg")   # the sweep's default style, as in the main job
INITS = ("noise", "white", "black", "mean", "content", "style", "average")
ORIGINAL_COLORS = ("none", "luminance", "histogram")
MAX_SIZE = memory.MAX_SIZE   # the largest --size (declared beside the plan, which caps its sizes there)
PRECISIONS = ("auto", "float32", "bfloat16")
CONV_FORMS = ("auto", "auto-bf16", "xla", "f2", "f4", "f2b", "f4f", "f4fb", "f4fa", "f4fa3")
TEMPORAL_WEIGHT = 1e3   # calibrated on the sample clip: see docs/video/README.md
# float32 (largest 3.4e38) computes the objective: a weight ≤ MAX_WEIGHT leaves 3.4e18 for a loss part (the
# samples' are < 1e6), a step size must be a float32; the stopping rule keeps --tol-window losses per run
MAX_WEIGHT, MAX_LR, MAX_TOL_WINDOW = 1e20, 3.4e38, 10**6
CHECKPOINT_MINUTES, MAX_CHECKPOINT_MINUTES = 10.0, 1e6   # why 10: docs/running.md, "What a run writes"

# Defaults calibrated on the embedded (Caffe) weights: see docs/weights.md.
PRESETS: dict[str, dict[str, Any]] = {
    "default": dict(content_layers=("relu4_2",),
                    style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                    style_weight=1e2, tv_weight=1e4),
    # the PyTorch tutorial's choice (Gatys et al. as taught there): sequential names
    "tutorial": dict(content_layers=("conv_4",),
                     style_layers=("conv_1", "conv_2", "conv_3", "conv_4", "conv_5"),
                     style_weight=1e2, tv_weight=0.0),
}


_P = PRESETS["default"]


@dataclass(frozen=True)
class Config:
    """Everything that defines a run (see the module docstring for how the metadata is used)."""

    content: str = option(None, "content image (any format Pillow reads)", kind="path", positional=True)
    styles: tuple[str, ...] = option((), "style image(s); several are blended", kind="paths", positional=True,
                                     metavar="style")
    output: str = option("out.png", "result image; its .json, .losses.jsonl and .ckpt.npz are written "
                         "beside it", kind="path", short="-o", result=False)
    size: int = option(512, "longest side of the result in pixels", kind="int")
    iterations: int = option(500, "iterations to reach (a rerun continues from the checkpoint)", kind="int",
                             result=False)
    preset: str = option("default", "layers and weights: 'default' (relu4_2 / relu1_1…relu5_1) or 'tutorial' "
                         "(PyTorch tutorial: conv_4 / conv_1…conv_5)", kind="str", choices=lambda: tuple(PRESETS),
                         default_text="default")
    style_weight: float = option(_P["style_weight"], "k, the weight of the style loss", kind="float",
                                 from_preset=True)
    content_weight: float = option(1.0, "weight of the content loss", kind="float")
    tv_weight: float = option(_P["tv_weight"], "weight of total variation", kind="float", from_preset=True)
    temporal: str | None = option(None, "earlier stylised frames warped to this one with their consistency "
                                  "weights, as nst_jax.video writes them (a .npy of shape (J, H, W, 4)): adds the "
                                  "temporal loss of Ruder et al., 'Artistic style transfer for videos'", kind="path",
                                  metavar="FILE", default_text="none")
    temporal_weight: float = option(TEMPORAL_WEIGHT, "weight of the temporal loss (with --temporal)", kind="float")
    normalize_gradients: bool = option(False, "divide each content and style layer's own gradient by its L1 norm "
                                       "before its weight applies (neural-style's -normalize_gradients; the step "
                                       "then follows no single function's gradient, which suits --optimizer adam "
                                       "better than L-BFGS)", kind="bool", default_text="off")
    content_layers: tuple[str, ...] = option(_P["content_layers"], "comma-separated layer names, either "
                                             "scheme (relu4_2 or relu_10)", kind="names", from_preset=True)
    style_layers: tuple[str, ...] = option(_P["style_layers"], "comma-separated layer names, either scheme",
                                           kind="names", from_preset=True)
    style_layer_weights: tuple[float, ...] | None = option(None, "one weight per style layer", kind="floats",
                                                           default_text="1/number of layers each")
    style_blend_weights: tuple[float, ...] | None = option(None, "one weight per style image, normalised to "
                                                           "sum 1", kind="floats", default_text="equal")
    style_scale: float = option(1.0, "style images are resized to this × the content's size", kind="float")
    style_statistic: str = option("gram", "how style is described without positions (nst_jax/statistics/); "
                                  "random ones use a fixed key per L-BFGS run and a new key per Adam step",
                                  kind="str", choices=catalogue.statistic_names)
    original_colors: str = option("none", "keep the content's colours: 'luminance' optimises luminance only "
                                  "and takes the content's chrominance (YIQ); 'histogram' matches the style's "
                                  "colour mean and covariance to the content's before the run", kind="str",
                                  choices=lambda: ORIGINAL_COLORS)
    content_masks: tuple[str, ...] | None = option(None, "one mask per style image (white = where that style "
                                                   "goes; same size as the content image): spatial control as "
                                                   "in Gatys et al. 2017", kind="paths", flag="--content-mask",
                                                   metavar="MASK", default_text="none")
    style_masks: tuple[str, ...] | None = option(None, "one mask per style image: the style's statistics are "
                                                 "taken over it", kind="paths", flag="--style-mask", metavar="MASK",
                                                 default_text="the whole style image")
    scales: tuple[int, ...] | None = option(None, "coarse to fine, e.g. 256,512: optimise at each size, the "
                                            "upsampled result initialising the next", kind="ints",
                                            default_text="only --size")
    scale_iterations: tuple[int, ...] | None = option(None, "iterations at each scale", kind="ints",
                                                      default_text="--iterations at each")
    init: str = option("content", f"initial image: {', '.join(INITS)} or an image file", kind="str")
    optimizer: str = option("lbfgs", "solver", kind="str", choices=catalogue.solver_names)
    lr: float | None = option(None, "step size", kind="float", default_text=None)
    history: int = option(100, "L-BFGS history size", kind="int")
    tol: float = option(0.0, "stopping rule: stop once the loss falls by less than this fraction of itself per "
                        "iteration, averaged over the last --tol-window iterations (e.g. 1e-4); a run that stopped "
                        "is finished, and a rerun with a larger --iterations does nothing", kind="float",
                        result=False, default_text="0: run all --iterations")
    tol_window: int = option(20, "iterations the stopping rule averages over", kind="int", result=False)
    precision: str = option("auto", "the network's arithmetic: 'bfloat16' stores activations and kernels in "
                            "bfloat16 and accumulates every convolution in float32; the statistics, losses, image, "
                            "gradient and solver state stay float32; 'auto': bfloat16 only on hardware where it was "
                            "measured faster with the same quality, else float32 (the header says which and why)",
                            kind="str", choices=lambda: PRECISIONS)
    conv_forms: str = option("auto", "how each 3×3 convolution is computed: 'auto' the fastest form measured on "
                             "this machine per layer and direction (cached per machine; a continued run keeps "
                             "the forms it started with); 'auto-bf16' the same with forms in bfloat16 products "
                             "as candidates too, on CPUs with bfloat16 units (AMX, AVX512-BF16; a relative error "
                             "of about 4e-3 per convolution for F(2×2), 2.5e-2 for F(4×4)); or one form wherever "
                             "it applies: 'xla' (XLA's convolution), 'f2' or 'f4' (Winograd F(2×2, 3×3) or "
                             "F(4×4, 3×3)), 'f2b' (F(2×2) with bfloat16 products), 'f4f' (F(4×4) as one fused "
                             "kernel compiled for this CPU, where a C++ compiler is found), 'f4fb' or 'f4fa' "
                             "(the fused kernel with bfloat16 products on AVX512-BF16 or on AMX), 'f4fa3' (on "
                             "AMX with each number split into two bfloat16 ones: float32's accuracy, taken by "
                             "'auto' where its quality guard holds); float32 on one CPU device only, elsewhere "
                             "XLA's", kind="str", choices=lambda: CONV_FORMS,
                             result=False)
    memory: str = option("auto", "how the run fits in memory: 'plain'; 'remat' recomputes each VGG19 block in "
                         "the backward pass (about a third less memory for the activations, about a third more "
                         "time, the same numbers); 'remat-bf16' also stores the L-BFGS history in bfloat16 "
                         "(half its memory, arithmetic in float32, a slightly different path); 'auto': the "
                         "first of these the memory plan says fits (--plan shows it)", kind="str",
                         choices=lambda: memory.MODES)
    devices: int = option(0, "split the image across this many devices along its height — one optimisation, "
                          "no tiles (0: as many of the devices present as divide the height)", kind="int",
                          result=False, default_text="all that divide the height")
    pooling: str = option("max", "VGG pooling", kind="str", choices=lambda: vgg_layers.POOLINGS)
    seed: int = option(0, "seed of the noise initial image and of the random statistics", kind="int")
    weights: str | None = option(None, "weights file", kind="path", default_text="the embedded Caffe VGG19")
    save_every: int = option(0, "save an intermediate image every N iterations (0: never)", kind="int",
                             result=False)
    print_every: int = option(10, "show the weighted losses every N iterations (a plain line each time when "
                              "the output is not a terminal; 0: never)", kind="int", result=False)
    checkpoint_every: int = option(0, "also write the solver state every N iterations (0: not by count)",
                                   kind="int", result=False)
    checkpoint_minutes: float = option(CHECKPOINT_MINUTES, "write the solver state every M minutes of the run's "
                                       "time, and on Ctrl-C or SIGTERM, so that a kill loses at most M minutes "
                                       "(0 with --checkpoint-every 0: no checkpoints at all). An L-BFGS checkpoint "
                                       "holds 2·history floats per pixel and channel, about 420 MB at 512 px with "
                                       "history 100; the run's header says its size", kind="float", result=False)
    light_checkpoint: bool = option(False, "checkpoints hold only the image (megabytes, not the L-BFGS history's "
                                    "gigabytes at print sizes); a run resumed from one continues with a fresh "
                                    "solver state, so its path differs from an uninterrupted run's", kind="bool",
                                    result=False, default_text="off: the whole solver state")
    keep_checkpoint: bool = option(False, "keep the checkpoint when the run finishes, so that a larger "
                                   "--iterations continues exactly; without it, a finished run continues from "
                                   "its image with a fresh L-BFGS history", kind="bool", result=False,
                                   default_text="off: removed at the end")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def layer_weights(self) -> tuple[float, ...]:
        n = len(self.style_layers)
        return self.style_layer_weights if self.style_layer_weights is not None else (1.0 / max(n, 1),) * n

    @property
    def loss_weights(self) -> tuple[float, ...]:
        """The weights of the objective's parts: content, style, tv, and temporal when it has one."""
        base = (self.content_weight, self.style_weight, self.tv_weight)
        return base + (self.temporal_weight,) if self.temporal else base

    @property
    def checkpoints(self) -> CheckpointSchedule:
        return CheckpointSchedule(self.checkpoint_every, self.checkpoint_minutes)

    @property
    def stop_rule(self) -> StopRule:
        return StopRule(self.tol, self.tol_window)

    @property
    def lr_or_default(self) -> float:
        return catalogue.solver_default_lrs()[self.optimizer] if self.lr is None else self.lr


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
def flag_of(name: str) -> str:
    """The command-line spelling of a field (`--style-weight`)."""
    meta = FIELDS[name].metadata
    return meta["flag"] or ("--" + name.replace("_", "-"))


# ------------------------------------------------------------------------------- checking values

def coerce(name: str, value: Any, where: str = "") -> Any:
    """`value` as field `name` holds it (`fieldtypes.coerce_value`), or an NSTError naming the field
    (and `where` it came from, e.g. a grid file) when it is unknown or its type is wrong."""
    if name not in FIELDS:
        raise NSTError(f"{where}unknown field {name!r}; valid fields: {', '.join(sorted(FIELDS))}")
    if value is None and FIELDS[name].default is None:
        return None
    return coerce_value(name, FIELDS[name].metadata["kind"], value, where, parse_names)


def with_preset(preset: str = "default", **overrides) -> Config:
    """A validated Config from a preset's values, with explicit overrides (None means 'use the preset
    or the default'). Values are type-checked (see `coerce`)."""
    if preset not in PRESETS:
        raise NSTError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    values.update({k: coerce(k, v) for k, v in overrides.items() if v is not None})
    values["preset"] = preset
    return validate(Config(**values))


def validate(cfg: Config) -> Config:
    """Check every field; return the Config with layer names in block form. Raises NSTError."""
    _check_fields(cfg)
    content_layers, style_layers = _check_layers(cfg)
    _check_images(cfg)
    _check_numbers(cfg)
    return dataclasses.replace(cfg, content_layers=content_layers, style_layers=style_layers)


def _check_fields(cfg: Config) -> None:
    """Choices, finite numbers, the images named, sizes and loss weights."""
    for f in dataclasses.fields(cfg):
        choices = f.metadata["choices"]
        value = getattr(cfg, f.name)
        if choices is not None and value not in choices():
            raise NSTError(f"unknown {flag_of(f.name)} {value!r}; choose one of {', '.join(choices())}")
        if f.metadata["kind"] in ("float", "floats") and value is not None:
            if not all(math.isfinite(v) for v in (value if isinstance(value, tuple) else (value,))):
                raise NSTError(f"{flag_of(f.name)} must be finite, got {value}")
    if not cfg.content:
        raise NSTError("a content image is needed")
    if not cfg.styles:
        raise NSTError("at least one style image is needed")
    if cfg.size < 1:
        raise NSTError(f"--size must be a positive number of pixels, got {cfg.size}")
    if cfg.size > MAX_SIZE:
        raise NSTError(f"--size {cfg.size} is larger than {MAX_SIZE} pixels; use multi-scale or a smaller size")
    if cfg.iterations < 0:
        raise NSTError(f"--iterations must be ≥ 0, got {cfg.iterations}")
    for name in ("style_weight", "content_weight", "tv_weight", "temporal_weight", "style_layer_weights"):
        values = getattr(cfg, name)
        for v in values if isinstance(values, tuple) else () if values is None else (values,):
            if not 0 <= v <= MAX_WEIGHT:
                raise NSTError(f"{flag_of(name)} must be a finite number ≥ 0 and ≤ {MAX_WEIGHT:g} (a larger weight "
                               f"times a loss overflows float32, in which the objective is computed), got {v:g}")


def _check_layers(cfg: Config) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The layers in block form, and the weights given per layer and per style."""
    content_layers = vgg_layers.resolve_all(cfg.content_layers)
    style_layers = vgg_layers.resolve_all(cfg.style_layers)
    if not content_layers and not style_layers:
        raise NSTError("no content and no style layers: nothing to optimise")
    if cfg.style_layer_weights is not None and len(cfg.style_layer_weights) != len(style_layers):
        raise NSTError(f"--style-layer-weights has {len(cfg.style_layer_weights)} values for "
                       f"{len(style_layers)} style layers")
    if cfg.style_blend_weights is not None:
        if len(cfg.style_blend_weights) != len(cfg.styles):
            raise NSTError(f"--style-blend-weights has {len(cfg.style_blend_weights)} values for "
                           f"{len(cfg.styles)} style images")
        if any(w < 0 for w in cfg.style_blend_weights) or not sum(cfg.style_blend_weights) > 0 \
                or not math.isfinite(sum(cfg.style_blend_weights)):
            raise NSTError("--style-blend-weights must be ≥ 0 with a positive, finite sum")
    return content_layers, style_layers


def _check_images(cfg: Config) -> None:
    """The style scale, the masks and the scales of a coarse-to-fine run."""
    if not cfg.style_scale > 0:
        raise NSTError(f"--style-scale must be positive, got {cfg.style_scale}")
    if cfg.style_scale * cfg.size > MAX_SIZE:
        raise NSTError(f"--style-scale {cfg.style_scale:g} × --size {cfg.size} is larger than {MAX_SIZE} pixels")
    if cfg.style_masks is not None and cfg.content_masks is None:
        raise NSTError("--style-mask needs --content-mask (one content region per style)")
    if cfg.content_masks is not None:
        if len(cfg.content_masks) != len(cfg.styles):
            raise NSTError(f"--content-mask has {len(cfg.content_masks)} masks for {len(cfg.styles)} style images")
        if cfg.style_masks is not None and len(cfg.style_masks) != len(cfg.styles):
            raise NSTError(f"--style-mask has {len(cfg.style_masks)} masks for {len(cfg.styles)} style images")
        from nst_jax.objective import statistics  # JAX: only when masks are asked for
        if not statistics.get(cfg.style_statistic).masks:
            masked = [n for n in statistics.NAMES if statistics.get(n).masks]
            raise NSTError(f"masks work with --style-statistic {' or '.join(masked)} only")
        if cfg.style_blend_weights is not None:
            raise NSTError("masks give each style its own region; --style-blend-weights does not apply")
        for path in cfg.content_masks + (cfg.style_masks or ()):
            if not Path(path).is_file():
                raise NSTError(f"mask {path}: not found")
    if cfg.temporal is not None and not Path(cfg.temporal).is_file():
        raise NSTError(f"--temporal {cfg.temporal}: not found")
    if cfg.scales is not None:
        if not cfg.scales or any(v < 1 or v > MAX_SIZE for v in cfg.scales):
            raise NSTError(f"--scales must be positive pixel sizes up to {MAX_SIZE}, got {cfg.scales}")
        if cfg.scale_iterations is not None and len(cfg.scale_iterations) != len(cfg.scales):
            raise NSTError(f"--scale-iterations has {len(cfg.scale_iterations)} values for {len(cfg.scales)} scales")
    if cfg.scale_iterations is not None and any(v < 0 for v in cfg.scale_iterations):
        raise NSTError("--scale-iterations must be ≥ 0")


def _check_numbers(cfg: Config) -> None:
    """The initial image, the solver's and the stopping rule's numbers, devices, seed, intervals."""
    if cfg.init not in INITS and not Path(cfg.init).is_file():
        raise NSTError(f"--init {cfg.init!r} is neither one of {', '.join(INITS)} nor an existing file")
    if cfg.lr is not None and not 0 < cfg.lr <= MAX_LR:
        raise NSTError(f"--lr must be positive and at most {MAX_LR:g} (the largest float32: the solver computes in "
                       f"float32), got {cfg.lr:g}")
    if cfg.tol < 0:
        raise NSTError(f"--tol must be ≥ 0 (0: no stopping rule), got {cfg.tol}")
    if cfg.tol_window < 1:
        raise NSTError(f"--tol-window must be ≥ 1, got {cfg.tol_window}")
    if cfg.tol_window > MAX_TOL_WINDOW:
        raise NSTError(f"--tol-window must be at most {MAX_TOL_WINDOW} iterations (the stopping rule keeps that "
                       f"many losses of each run in memory), got {cfg.tol_window}")
    if cfg.history < 1:
        raise NSTError(f"--history must be ≥ 1, got {cfg.history}")
    if cfg.memory == "remat-bf16" and cfg.optimizer != "lbfgs":
        raise NSTError(f"--memory remat-bf16 stores the classic L-BFGS history in bfloat16; --optimizer "
                       f"{cfg.optimizer} has none (use --memory remat)")
    if cfg.devices < 0:
        raise NSTError(f"--devices must be ≥ 0 (0: all present that divide the height), got {cfg.devices}")
    if not 0 <= cfg.seed < 2 ** 63:
        raise NSTError(f"--seed must be an integer from 0 to 2**63 − 1, got {cfg.seed}")
    for name in ("save_every", "print_every", "checkpoint_every"):
        if getattr(cfg, name) < 0:
            raise NSTError(f"{flag_of(name)} must be ≥ 0")
    if not 0 <= cfg.checkpoint_minutes <= MAX_CHECKPOINT_MINUTES:
        raise NSTError(f"--checkpoint-minutes must be from 0 to {MAX_CHECKPOINT_MINUTES:g}, "
                       f"got {cfg.checkpoint_minutes:g}")
