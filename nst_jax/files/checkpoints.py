"""A run's solver state on disk: one `.npz` of the state's leaves (`leaf000`, …) and a JSON `meta`
record (the settings hash, the solver, the iteration, its offset, the target, the time, light or not).

Reading treats the file as untrusted: its metadata is checked (`records.checkpoint_meta`), its
leaves must have the shapes and dtypes of the run's abstract state and hold finite values, and its
settings hash must be the run's. numpy stores bfloat16 leaves (an L-BFGS history under --memory
remat-bf16) as raw 2-byte records; they are viewed back as bfloat16. `RunFiles` says where the file is.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from nst_jax.files import records, untrusted
from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import atomic_write_bytes


class Schedule(NamedTuple):
    """When a run writes its checkpoint: every `every` iterations (0: not by count), after `minutes` of
    the run's time since the last one (0: not by time), and on Ctrl-C or SIGTERM unless both are 0. By
    time, the bytes written follow the run's length rather than its iterations; a kill loses at most
    `minutes` of work."""

    every: int = 0
    minutes: float = 0.0

    @property
    def on(self) -> bool:
        return bool(self.every or self.minutes)

    def due(self, iteration: int, seconds_since_last: float) -> bool:
        return (bool(self.every) and iteration % self.every == 0) or \
            (bool(self.minutes) and seconds_since_last >= 60.0 * self.minutes)

    def describe(self) -> str:
        """'every 10 minutes', 'every 25 iterations or 10 minutes', … (for the run's header)."""
        minutes = f"{self.minutes:g} minute{'s' if self.minutes != 1 else ''}" if self.minutes else ""
        count = f"{self.every} iterations" if self.every else ""
        return "every " + " or ".join(p for p in (count, minutes) if p) + " and on Ctrl-C" if self.on else "none"


def save(path: Path, state, *, config_hash: str, solver: str, iteration: int, offset: int, target: int,
         seconds: float, light: bool = False, forms=None, gather=np.asarray,
         best: tuple[int, np.ndarray] | None = None) -> None:
    """The solver state's leaves and its metadata, atomically: the settings hash, the solver, the run's
    iteration (`offset` + the solver's own count, see `loop.drive`), its target and time so far.
    `light`: the image x alone (a resumed run starts a fresh solver state from it); `forms`: the
    run's convolution forms (a `convforms.Forms`: each layer's forms and whether the Gram's product was
    native), which a continued run keeps; `gather`: a leaf as a host array
    (a state split across processes is gathered, every process saving in step: `hosts.to_host`);
    `best`: (iteration, image x) of the lowest loss so far, kept while a stopping rule runs (`load_best`)."""
    import jax
    meta = {"config_hash": config_hash, "solver": solver, "iteration": iteration, "offset": offset,
            "target": target, "seconds": seconds, "light": light}
    if forms is not None and forms.by_layer:
        meta["conv_forms"] = [list(row) for row in forms.by_layer]
    if forms is not None and forms.native_gram:
        meta["native_gram"] = True
    leaves = [state.x] if light else jax.tree.leaves(state)
    arrays = {f"leaf{i:03d}": gather(leaf) for i, leaf in enumerate(leaves)}
    if best is not None:
        meta["best_iteration"] = int(best[0])
        arrays["best_x"] = np.asarray(best[1], np.float32)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def read_meta(path: Path) -> dict | None:
    """The checkpoint's metadata alone, checked (`records.checkpoint_meta`; NSTError naming the field);
    None if there is no readable checkpoint."""
    try:
        with untrusted.Archive(path, "checkpoint") as data:
            meta = _meta(data)
    except NSTError:  # missing or broken: the run itself reports a broken one
        return None
    return records.checkpoint_meta(meta, path)


def _meta(data: "untrusted.Archive") -> Any:
    raw = data.array("meta", lambda dtype, shape: None if dtype == np.uint8 and len(shape) == 1
                     else "its metadata is not a byte string")
    return untrusted.parse_json(raw.tobytes(), data.where)


def _matching(want):
    """The header check of a stored leaf: this run's shape and dtype (bfloat16 is stored as raw 2-byte records)."""
    def accept(dtype, shape):
        same = dtype == want.dtype or (dtype.kind == "V" and dtype.itemsize == want.dtype.itemsize)
        return None if same and shape == tuple(want.shape) else \
            "state shapes differ from this run's; delete it or pass --restart"
    return accept


def load(path: Path, template, config_hash: str, leaves_of=None) -> tuple[Any, dict]:
    """The state stored in the checkpoint, shaped like `template` (from jax.eval_shape); NSTError if
    it is broken, has other shapes or was made with other settings. `leaves_of(template)`:
    (leaves, rebuild) when the stored leaves are not the template's pytree leaves."""
    import jax
    import jax.numpy as jnp
    try:
        with untrusted.Archive(path, "checkpoint") as data:
            meta = records.checkpoint_meta(_meta(data), path)
            if meta.get("config_hash") != config_hash:
                raise NSTError(f"checkpoint {path} was made with other settings; pass --restart to start over "
                               f"or choose another -o/--output")
            if leaves_of is None:
                leaves_t, treedef = jax.tree.flatten(template)
                rebuild = lambda leaves: jax.tree.unflatten(treedef, leaves)
            else:
                leaves_t, rebuild = leaves_of(template)
            leaves = [data.array(f"leaf{i:03d}", _matching(t), limit=None) for i, t in enumerate(leaves_t)]
    except NSTError:
        raise
    except Exception as err:  # noqa: BLE001 - zip, CRC, JSON and key errors alike mean: broken
        raise NSTError(f"checkpoint {path}: unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                       f"delete it to start over") from None
    # numpy stores bfloat16 (an L-BFGS history under --memory remat-bf16) as raw 2-byte records
    leaves = [a.view(t.dtype) if a.dtype.kind == "V" and a.dtype.itemsize == t.dtype.itemsize else a
              for a, t in zip(leaves, leaves_t)]
    for got in leaves:
        if got.dtype.kind == "f" and not np.isfinite(got).all():
            raise NSTError(f"checkpoint {path}: holds values that are not finite (NaN or inf); the file was "
                           f"edited or is corrupt: delete it or pass --restart")
    return rebuild([jnp.asarray(a) for a in leaves]), meta


def load_light(path: Path, shape: tuple[int, ...], config_hash: str) -> tuple[np.ndarray, dict]:
    """The image x of a light checkpoint, shaped `shape`, and its metadata (see `load`)."""
    import jax
    x, meta = load(path, SimpleNamespace(x=jax.ShapeDtypeStruct(shape, np.float32)), config_hash,
                                   leaves_of=lambda t: ([t.x], lambda leaves: leaves[0]))
    return np.asarray(x), meta


def load_best(path: Path, shape: tuple[int, ...]) -> tuple[int, np.ndarray] | None:
    """(iteration, image x shaped `shape`) of the lowest loss a checkpoint records (see `save`), None if it
    records none; NSTError if the file is broken."""
    with untrusted.Archive(path, "checkpoint") as data:   # its reads give NSTError for any damage
        meta = records.checkpoint_meta(_meta(data), path)
        if "best_iteration" not in meta:
            return None
        if meta["best_iteration"] > meta["iteration"]:
            raise NSTError(f"checkpoint {path}: its 'best_iteration' is past its 'iteration'; {records.RESTART}")
        x = data.array("best_x", lambda dtype, shape_: None if dtype == np.float32 and shape_ == tuple(shape)
                       else "its lowest-loss image differs from this run's; delete it or pass --restart", limit=None)
    if not np.isfinite(x).all():
        raise NSTError(f"checkpoint {path}: its lowest-loss image holds values that are not finite; the file was "
                       f"edited or is corrupt: delete it or pass --restart")
    return meta["best_iteration"], x
