"""`nst-jax run … --plan [DEVICES]`: the memory a run needs, as a table, then exit.

For each way of fitting (`memory.WAYS`) the bytes per device by part and whether it fits; XLA's own
figure for the way `--memory` chooses, from the step compiled for abstract arrays (devices that are
here only); the checkpoint's size on disk; and the largest --size each way fits on one device and on
all of them. DEVICES ('8x80GB') plans for accelerators that are not here.
"""

from __future__ import annotations

import functools
import sys

from nst_jax.files import image
from nst_jax.scale import memory, sharding
from nst_jax.scale.memory import human_bytes
from nst_jax.transfer import planning, steps, runs as transfer
from nst_jax.transfer.config import Config
from nst_jax.base.errors import NSTError



def report(cfg: Config, target: str | None = None, xla: bool = True) -> str:
    """The plan of one run (one scale) as text; `target`: plan for these devices instead ('8x80GB')."""
    devices = memory.parse_devices(target) if target else None
    planned = planning.plan_run(cfg, devices=devices)
    chosen = planned.figure
    devs = chosen.devices
    plans = {way: planning.needs_at(cfg, devs, way, chosen.height, chosen.width) for way in planning.ways_to_fit(cfg)}
    width = 40
    row = lambda label, cells: f"  {label:<{width}}" + "".join(f"{c:>13}" for c in cells)
    lines = [f"memory plan: {cfg.content} at {chosen.width}×{chosen.height} px, {cfg.optimizer}"
             f"{f' history {cfg.history}' if cfg.optimizer != 'adam' else ''} — {devs.describe()}"
             f"{', the image split in bands' if devs.count > 1 else ''}",
             row("per device", plans)]
    for i, (label, _) in enumerate(chosen.parts):
        if all(p.parts[i][1] < 1e6 for p in plans.values()):
            continue  # under a megabyte in every way (the L-BFGS m×m matrices at the usual history)
        label = label.split(" (")[0] + (f" (2·{cfg.history} vectors)" if label.startswith("L-BFGS history") else "")
        lines.append(row(label, [human_bytes(p.parts[i][1]) for p in plans.values()]))
    if chosen.process:
        lines.append(row("process (JAX, XLA, runtime)", [human_bytes(p.process) for p in plans.values()]))
    lines.append(row("needed" + (" in all" if devs.shared and devs.count > 1 else ""),
                     [human_bytes(p.needed) for p in plans.values()]))
    split_ok = sharding.splits(chosen.height, devs.count)
    lines.append(row(f"fits {human_bytes(chosen.available)} (+{round(100 * (memory.MARGIN - 1))} % margin)",
                     ["yes" if p.fits and split_ok else "no" for p in plans.values()]))
    if not split_ok:
        lines.append(f"  but the height {chosen.height} px does not split into {devs.count} bands of one height: a run "
                     f"refuses it; --size {' or '.join(map(str, planning.sizes_that_divide(cfg, devs.count)))} would")
    lines.append(f"  --memory {cfg.memory} → {planned.memory if chosen.fits and split_ok else 'nothing fits'}; checkpoint file "
                 f"{human_bytes(chosen.checkpoint)}{' (light: the image only)' if cfg.light_checkpoint else ''}"
                 + (f" {cfg.checkpoints.describe()}" if cfg.checkpoints.on else " (none written)"))
    if xla and target is None and chosen.fits:
        print("compiling the step to read XLA's own figure…", file=sys.stderr, flush=True)
        fig = steps.xla_memory(cfg, planned)
        model = chosen.parts[0][1]
        lines.append(f"  XLA's figure for --memory {planned.memory}, per device: temporaries "
                     f"{human_bytes(fig['temporaries'])} (the plan's activations: {human_bytes(model)}), "
                     f"arguments {human_bytes(fig['arguments'])}, outputs {human_bytes(fig['outputs'])}")
    shape_at = functools.partial(image.fit_size, image.image_size(cfg.content))
    counts = sorted({1, devs.count})
    lines.append("largest --size that fits (longest side, this image's aspect):")
    lines.append(row("", planning.ways_to_fit(cfg)))
    for count in counts:
        at_count = devs._replace(count=count)
        sizes = []
        for way in planning.ways_to_fit(cfg):
            side = memory.largest_size(functools.partial(planning.needs_at, cfg, at_count, way), shape_at)
            sizes.append(str(side) if side else "none")
        label = f"{count} device{'s' if count > 1 else ''}" + (" (height must divide)" if count > 1 else "")
        lines.append(row(label, sizes))
    return "\n".join(lines)


def main_report(cfg: Config, target: str | None) -> str:
    """`report` for a run, or for every scale of a coarse-to-fine run."""
    target = None if target in (None, "here") else target
    if target is None and cfg.devices > sharding.present():
        raise NSTError(f"--devices {cfg.devices}: only {sharding.present()} present; --plan COUNTxMEMORY plans "
                       f"for devices that are not here")
    cfgs = transfer.scale_configs(cfg) if cfg.scales else [cfg]
    return "\n\n".join(report(c, target) for c in cfgs)
