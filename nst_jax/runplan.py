"""What was planned for a run: one record built once from a Config and this machine, passed explicitly.

A `Config` says what was asked ('--memory auto', '--devices 0', '--precision auto'); `planning.plan_run`
decides what that means here and returns a `RunPlan`: the way of fitting in memory, the device layout
(how many bands, the image's shape, the mesh) and the precision; `planning.with_forms` adds the
convolution forms (measured on this machine, or recorded by the run being continued). Nothing is
written back into the Config. The settings hash (`identity`) and the sidecar read what was planned
from here, so a resumed run is checked against the same choices.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from nst_jax import convforms, memory
from nst_jax.config import Config
from nst_jax.sharding import Layout


class RunPlan(NamedTuple):
    memory: str                       # the way of fitting: 'plain', 'remat' or 'remat-bf16'
    layout: Layout                    # one device, or bands across several
    precision: str                    # 'float32' or 'bfloat16'
    figure: memory.Plan | None = None  # the arithmetic behind the way (bytes needed and available)
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
    from nst_jax.hardware import resolve_precision
    way = "plain" if cfg.memory == "auto" else cfg.memory
    return RunPlan(way, Layout(), resolve_precision(cfg.precision))
