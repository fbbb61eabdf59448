"""What was planned for a run: one record (`RunPlan`), built once from a Config and this machine before
anything large is allocated, and passed explicitly to every step after.

A `Config` says what was asked ('--memory auto', '--devices 0', '--precision auto'); `plan_run` decides
what that means here: the memory a run needs at its size (read from the content image's header; the
arithmetic is `memory`), the way of fitting that `--memory auto` chooses, the device layout (how many
bands, the image's shape, the mesh), what would fit instead, the disk its checkpoints need, and the
precision; `with_forms` adds the convolution forms (measured on this machine, or recorded by the run
being continued). Nothing is written back into the Config. The settings hash (`identity`) and the
sidecar read what was planned from here, so a resumed run is checked against the same choices.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from nst_jax.base.errors import NSTError
from nst_jax.files import image
from nst_jax.machine import hardware
from nst_jax.model import convforms
from nst_jax.model import vgg_layers as vgg
from nst_jax.scale import hosts, memory, sharding
from nst_jax.scale.memory import human_bytes
from nst_jax.scale.sharding import Layout
from nst_jax.transfer.config import Config


class RunPlan(NamedTuple):
    memory: str                       # the way of fitting: 'plain', 'remat' or 'remat-bf16'
    layout: Layout                    # one device, or bands across several
    precision: str                    # 'float32' or 'bfloat16'
    figure: memory.Needs | None = None  # the arithmetic behind the way (bytes needed and available)
    forms: convforms.Forms = convforms.NONE   # each convolution's form (`planning.with_forms`)

    @property
    def devices(self) -> int:
        return self.layout.count

    @property
    def remat(self) -> bool:
        return memory.remat(self.memory)

    @property
    def history_dtype(self) -> str:
        return "bfloat16" if self.memory == "remat-bf16" else "float32"

    @property
    def step_layout(self) -> Layout:
        """The layout a step is compiled for: a one-device step does not depend on the image's shape,
        so runs of every size share one compiled solver (`steps.compiled_solver` is cached by it)."""
        return self.layout if self.layout.split else Layout()

    def record(self, cfg: Config) -> dict[str, Any]:
        """The Config as the sidecar records it: what was asked, with what was planned for the memory
        way, the devices and the precision (so the record reruns as this run ran)."""
        return cfg.to_dict() | {"memory": self.memory, "devices": self.devices, "precision": self.precision}


def plain(cfg: Config) -> RunPlan:
    """The one-device plan of library code that builds a problem without planning (bench, studies):
    the memory way asked for ('auto' as 'plain'), the precision resolved for the default device."""
    way = "plain" if cfg.memory == "auto" else cfg.memory
    return RunPlan(way, Layout(), hardware.resolve_precision(cfg.precision))


def sizes_that_divide(cfg: Config, count: int, around: int | None = None) -> list[int]:
    """The --size values nearest `around` (default cfg.size) whose image height divides by `count`."""
    shape = image.image_size(cfg.content)
    around = around or cfg.size
    found = [s for s in range(max(1, around - 4 * count), around + 4 * count + 1)
             if image.fit_size(shape, s)[0] % count == 0]
    return sorted(sorted(found, key=lambda s: abs(s - around))[:2])


def plan_run(cfg: Config, runs: int = 1, devices: memory.Devices | None = None) -> RunPlan:
    """The plan of a run (or `runs` batched ones) at its size, read from the content image's header
    (nothing is loaded or allocated): the way of fitting --memory asked for (with 'auto', the first that
    fits), the devices the image is split across, the precision. `devices`: plan for devices that are
    not here (--plan 8x80GB)."""
    height, width = image.fit_size(image.image_size(cfg.content), cfg.size)
    layers_used = cfg.content_layers + cfg.style_layers
    if min(height, width) < vgg.min_input_side(layers_used):
        deepest = max(layers_used, key=vgg.depth_index)
        raise NSTError(f"content image {cfg.content}: {width}×{height} px at --size {cfg.size} is too small for layer "
                       f"{deepest} (needs at least {vgg.min_input_side(layers_used)} px per side); raise --size or "
                       f"use shallower layers")
    if devices is None:
        n = sharding.device_count(cfg.devices, height, lambda k: sizes_that_divide(cfg, k))
        devices = memory.present(n)
    plans = [needs_at(cfg, devices, way, height, width, runs) for way in
             (ways_to_fit(cfg) if cfg.memory == "auto" else (cfg.memory,))]
    p = next((q for q in plans if q.fits), plans[-1])
    precision = hardware.resolve_precision(cfg.precision, devices.platform)
    channels = 1 if cfg.original_colors == "luminance" else 3
    return RunPlan(p.way, sharding.Layout(devices.count, (height, width, channels)), precision, p)


def ways_to_fit(cfg: Config) -> tuple[str, ...]:
    """The --memory ways open to this run, in the order 'auto' tries them."""
    return memory.WAYS if cfg.optimizer == "lbfgs" else ("plain", "remat")


def needs_at(cfg: Config, devices: memory.Devices, way: str, height: int, width: int, runs: int = 1,
             history: int | None = None) -> memory.Needs:
    """`memory.needs` for this run's settings at another size, way or history."""
    return memory.needs(cfg.optimizer, cfg.history if history is None else history, cfg.content_layers,
                        cfg.style_layers, height, width, devices, way, 1 if cfg.original_colors == "luminance" else 3,
                        runs, len(cfg.styles), cfg.light_checkpoint)


def fitting_hints(cfg: Config, p: memory.Needs, runs: int = 1) -> list[str]:
    """What would fit instead: each way's largest size, a shorter history, more devices."""
    hints = []
    height, width = p.height, p.width
    shape_at = functools.partial(image.fit_size, image.image_size(cfg.content))
    for way in ways_to_fit(cfg):
        at = functools.partial(needs_at, cfg, p.devices, way, runs=runs)
        if at(height, width).fits:
            hints.append(f"--memory {way} would fit")
            continue
        side = memory.largest_size(at, shape_at)
        if side:
            hints.append(f"--memory {way} fits up to --size {side}")
    if cfg.optimizer == "lbfgs":
        for m in (50, 20, 10, 5):
            if m < cfg.history:
                q = needs_at(cfg, p.devices, "remat-bf16", height, width, runs, history=m)
                if q.fits:
                    hints.append(f"--memory remat-bf16 --history {m} would fit at this size")
                    break
    if sharding.present() > p.devices.count:
        have = sharding.present()
        hints.append(f"{have} devices are present, used when the height divides by {have}: --size "
                     f"{' or '.join(map(str, sizes_that_divide(cfg, have)))}")
    return hints


def check_memory(cfg: Config, what: str, runs: int = 1) -> RunPlan:
    """`plan_run`, refusing a run that fits no way (`require_fit`)."""
    plan = plan_run(cfg, runs)
    require_fit(cfg, plan.figure, what, runs)
    return plan


def require_fit(cfg: Config, p: memory.Needs, what: str, runs: int = 1) -> None:
    """NSTError with one line (`memory.refusal`, with `fitting_hints`) unless the plan fits."""
    if not p.fits:
        raise memory.refusal(p, what, fitting_hints(cfg, p, runs))


def checkpoint_bytes(template, light: bool = False) -> int:
    leaves = [template.x] if light else jax.tree.leaves(template)
    return sum(int(np.prod(leaf.shape)) * leaf.dtype.itemsize for leaf in leaves)


def check_disk(cfg: Config, mem: memory.Needs, runs: int = 1) -> None:
    """Refuse a run whose checkpoints would not fit on the output's disk (a new one is written beside
    the old before it replaces it), before any work — with the lighter ways to keep going."""
    import shutil
    if not cfg.checkpoints.on or cfg.light_checkpoint or not hosts.is_writer():
        return
    folder = Path(cfg.output).resolve().parent
    free = shutil.disk_usage(folder).free
    need = 2 * mem.checkpoint * runs
    if need > free:
        image_bytes = mem.height * mem.width * 3 * 4
        raise NSTError(f"{cfg.output}: checkpoints need {human_bytes(need)} on disk ({human_bytes(mem.checkpoint)} "
                       f"each, written beside the last), but {folder} has {human_bytes(free)} free; "
                       f"--light-checkpoint keeps only the image ({human_bytes(image_bytes)}), or "
                       f"--checkpoint-minutes 0 writes none")


def fused_missing(form: str) -> str | None:
    """Why the fused F(4×4) kernel (and, for its bfloat16 forms, their units) cannot be had here for
    `form`; None when it can, or when `form` is not a fused one."""
    from nst_jax.model import fused
    if not form.startswith("f4f"):
        return None
    missing = fused.why_unavailable()
    units = fused.form_units(form)
    if not missing and units and units not in fused.bf16_units():
        missing = f"this CPU, or this build of the kernel, has no {units.upper()} products"
    return missing


def _need_fused(recorded: bool, form: str = "f4f") -> None:
    """NSTError unless the fused F(4×4) kernel (and, for 'f4fb' and 'f4fa', its bfloat16 units) can be had
    here (`fused`), for a run asked or recorded to use it."""
    missing = fused_missing(form)
    if missing and recorded:
        raise NSTError(f"this run was started with the fused Winograd F(4×4, 3×3) kernel, which is not available "
                       f"here ({missing}); a continued run keeps its forms so that it continues bit for bit: make "
                       f"the kernel available (a C++ compiler, CXX), or start a new run with another -o")
    if missing:
        raise NSTError(f"--conv-forms {form}: the fused Winograd F(4×4, 3×3) kernel is not available here ({missing}); "
                       f"--conv-forms auto chooses among the forms this machine has")


def with_forms(cfg: Config, plan: RunPlan, recorded: convforms.Forms | None = None,
               say=lambda line: None) -> RunPlan:
    """The plan with its convolution forms (`convforms`): none to choose off one float32 CPU device;
    `--conv-forms xla|f2|f4|f2b|f4f|f4fb|f4fa|f4fa3` as asked; 'auto' (and 'auto-bf16', with bfloat16 products a candidate
    where the CPU has bfloat16 units; 'auto' too where their quality guard holds, `hardware.bf16_forms_by_default`): the forms a continued run recorded, else this machine's measured
    ones (measured now where the cache has none). A run with fused forms takes the Gram's native product
    too (`Forms.native_gram`); a continued run keeps what it recorded (a checkpoint that records fused forms
    and no native Gram: XLA's product)."""
    height, width, _ = plan.layout.image_shape
    layers = cfg.content_layers + cfg.style_layers
    if plan.layout.split or plan.precision != "float32" or jax.default_backend() != "cpu":
        return plan._replace(forms=convforms.NONE)
    if cfg.conv_forms not in ("auto", "auto-bf16"):
        if cfg.conv_forms.startswith("f4f"):
            _need_fused(recorded=False, form=cfg.conv_forms)
        return plan._replace(forms=_with_gram(convforms.uniform(layers, height, width, cfg.conv_forms), recorded))
    if recorded:
        for form in sorted({f for _, *both in recorded.by_layer for f in both if f.startswith("f4f")}):
            _need_fused(recorded=True, form=form)
        return plan._replace(forms=recorded)
    bf16 = True if cfg.conv_forms == "auto-bf16" else hardware.bf16_forms_by_default()[0]
    return plan._replace(forms=_with_gram(convforms.choose_forms(layers, height, width, say=say, bf16=bf16), None))


def _with_gram(forms: convforms.Forms, recorded: convforms.Forms | None) -> convforms.Forms:
    """The forms with the Gram's native product where they have fused ones (the same library), except
    where a continued run's checkpoint records fused forms without it (XLA's product, as it began)."""
    keep_xla = recorded is not None and recorded.fused() and not recorded.native_gram
    return forms._replace(native_gram=forms.fused() and not keep_xla)
