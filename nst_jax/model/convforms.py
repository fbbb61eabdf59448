"""Which form computes each 3×3 convolution of a run, measured on this machine, as cuDNN's benchmark
mode and FFTW's wisdom do: XLA's convolution ('xla'), Winograd F(2×2, 3×3) ('f2') or F(4×4, 3×3)
('f4') written in XLA's operations, or F(4×4) as one fused kernel compiled for this CPU ('f4f', `fused`;
where a C++ compiler is found), for the forward pass and for the input gradient of each layer at the
run's size.

For every convolution shape a run needs (height × width × input → output channels; the input gradient
is a convolution of the same size with the channels swapped), the candidate forms are compiled and
timed on random data, and checked against XLA's convolution: the fastest within the error budget
wins. Measuring is kept to seconds: where the fused kernel takes a shape, its unfused twin 'f4' (the
same arithmetic, and the one form whose XLA compile takes a second or more) is not a candidate. With
`bf16` (`--conv-forms auto-bf16`) and a CPU with bfloat16 units, forms with bfloat16 products are
candidates too, each within a budget of its own: F(2×2) in XLA's operations ('f2b') and the fused
F(4×4) kernel on AVX512-BF16 ('f4fb'), on AMX tiles ('f4fa'), or on AMX with each number split into two
bfloat16 ones ('f4fa3'). Plain `auto` has those of them whose quality guard holds on this CPU kind
(`hardware.bf16_forms_by_default`). The choices are cached per machine (CPU model and flags, jax and
jaxlib versions, the backend), under the user's cache folder; a cache written on another machine, or
one that does not read back, is not used. Tuning costs seconds, once per machine and size; `nst-jax
tune` prepares or shows the cache.

`NST_JAX_TUNE=off` leaves every convolution to XLA without measuring (for test suites and CI, where
measuring each new size would cost more than it saves). Only a float32 run on one CPU device is planned:
on a GPU XLA and cuDNN choose their own algorithms, an image split across devices keeps XLA's
convolution (Winograd's tiles would make XLA gather whole feature maps, see `sharding`), and bfloat16
convolutions have one form.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, NamedTuple

from nst_jax.files import untrusted
from nst_jax.machine import identity
from nst_jax.model import layers, vgg_layers
from nst_jax.base.errors import NSTError

FORMS = tuple(layers.FORMS)   # the forms' names, in `layers.FORMS`'s order
ERROR_BUDGET = 1e-4          # relative error against XLA's convolution (the tests' tolerance)
BF16_BUDGET = 1e-2           # the same for 'f2b' (bfloat16 rounds to 2⁻⁹; measured ~4e-3 on VGG19's shapes)
# the same for the fused F(4×4) kernel's bfloat16 products: F(4×4)'s transforms enlarge the rounding
# (measured 2.5e-2 on VGG19's shapes); whether a run's result holds is `hardware.BF16_FORMS_GUARD`'s question
F4_BF16_BUDGET = 4e-2
# 'f4fa3' splits each number into two bfloat16 ones (measured 4.7e-5): float32's budget
BUDGETS = {"f2b": BF16_BUDGET, "f4fb": F4_BF16_BUDGET, "f4fa": F4_BF16_BUDGET, "f4fa3": ERROR_BUDGET}
BF16_FORMS = tuple(BUDGETS)   # the forms with bfloat16 products
# Smaller maps and fewer channels get XLA's convolution untimed: the gain is a fraction of a millisecond
# and each Winograd layer costs ~0.1 s of compile time (the RGB layer's gradient has a form of its own).
# conv5_1 of a 256 px run (16×16, or 16×10 at 3:2) is timed: 512 channels make it ~8 ms with XLA's
# convolution on two cores (docs/benchmarks.md).
MIN_POSITIONS = 8 * 16
MIN_CHANNELS = 64
MARGIN = 0.95                # a Winograd form is kept when it takes ≤ 95 % of XLA's convolution's time
WARM_CALLS = 2               # the first call's output is also the one checked against XLA's
CACHE_VERSION = 2
CACHE_FILE = "conv-forms.json"


class Shape(NamedTuple):
    """One convolution: an input of height × width × cin, cout output channels (batch 1)."""

    height: int
    width: int
    cin: int
    cout: int

    @property
    def key(self) -> str:
        return f"{self.height}x{self.width}x{self.cin}>{self.cout}"

    @property
    def tuned(self) -> bool:
        return self.height * self.width >= MIN_POSITIONS and min(self.cin, self.cout) >= MIN_CHANNELS


def candidates(shape: Shape, bf16: bool | tuple[str, ...] = False, fused: bool = False) -> tuple[str, ...]:
    """The forms worth timing for a shape (F(2×2) needs an even height and width); `bf16`: with
    bfloat16 products (True: all of `BF16_FORMS`, or those named: F(2×2)'s, and the fused kernel's on the
    units this CPU has); `fused`: with the fused F(4×4) kernel where it takes the channels, which then
    replaces its unfused twin 'f4'."""
    if not shape.tuned:
        return ("xla",)
    allowed = BF16_FORMS if bf16 is True else tuple(bf16 or ())
    even = shape.height % 2 == 0 and shape.width % 2 == 0
    found = (("xla", "f2", "f4") + (("f2b",) if "f2b" in allowed else ())) if even else ("xla", "f4")
    if fused and _fused_fits(shape):
        return tuple(f for f in found if f != "f4") + ("f4f",) + tuple(f for f in _fused_bf16(shape) if f in allowed)
    return found


def _fused_fits(shape: Shape) -> bool:
    from nst_jax.model import fused
    return fused.fits(shape.cin, shape.cout)


def _fused_bf16(shape: Shape) -> tuple[str, ...]:
    """The fused kernel's bfloat16 forms this CPU has for the shape: 'f4fb' (AVX512-BF16), 'f4fa' (AMX)."""
    from nst_jax.model import fused
    return tuple(form for form in fused.FORM_METHODS
                 if fused.fits_bf16(shape.cin, shape.cout, fused.form_units(form)))


def fused_ready(say: Callable[[str], None] = lambda line: None) -> bool:
    """Whether the fused F(4×4) kernel is a candidate here (built now if need be); says why not, unless
    turned off (NST_JAX_FUSED=off)."""
    from nst_jax.model import fused
    why = fused.why_unavailable()
    if why and not fused.turned_off():
        say(f"convolution forms: the fused F(4×4) kernel is not available ({why}); choosing among the others")
    return why is None


def bf16_units() -> bool:
    """Whether this CPU has bfloat16 units XLA's matrix products can use (AMX or AVX512-BF16)."""
    from nst_jax.machine import hardware
    return hardware.bfloat16_unit(hardware.bfloat16_flags()) is not None


def run_shapes(layers, height: int, width: int) -> dict[str, tuple[Shape, Shape | None]]:
    """Per convolution a run uses (up to its deepest layer): its forward shape and its input gradient's
    (None for the RGB layer, whose gradient has its own form in `layers`)."""
    deepest = max(vgg_layers.depth_index(n) for n in layers)
    out, h, w, c = {}, height, width, 3
    for name, _, kind in vgg_layers.LAYERS[: deepest + 1]:
        if kind == "pool":
            h, w = h // 2, w // 2
        elif kind == "conv":
            cout = vgg_layers.feature_shape(name, height, width)[2]
            out[name] = (Shape(h, w, c, cout), Shape(h, w, cout, c) if c > 4 else None)
            c = cout
    return out


def cache_path() -> Path:
    """The forms' file in nst_jax's cache folder (`identity.cache_folder`)."""
    return identity.cache_folder() / CACHE_FILE


class Choice(NamedTuple):
    form: str
    seconds: dict[str, float]   # form → least seconds of one call (`measure`)
    error: dict[str, float]     # form → relative error against XLA's convolution


def read_cache(path: Path, info: dict[str, str]) -> tuple[dict[str, Choice], str | None]:
    """The cached choices of the machine `info` describes (`identity.machine()`), and why the file was not used
    (None if it was, or is absent). The file is untrusted: anything that does not read back as written
    is ignored, not trusted."""
    key = identity.machine_key(info)
    if not path.exists():
        return {}, None
    try:
        data = untrusted.read_json(path, "convolution forms cache")
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}, "another version"
        machines = data.get("machines")
        if not isinstance(machines, dict):
            return {}, "no table of machines"
        entry = machines.get(key)
        if entry is None:
            return {}, "written on another machine" if machines else None
        if entry.get("machine") != info:
            return {}, "its entry for this machine does not describe it"
        found = {}
        for shape_key, c in entry["shapes"].items():
            if c["form"] not in FORMS or not all(f in FORMS and isinstance(s, (int, float))
                                                 for f, s in c["seconds"].items()):
                return {}, "an entry names no known form"
            found[shape_key] = Choice(c["form"], {f: float(s) for f, s in c["seconds"].items()},
                                      {f: float(e) for f, e in c.get("error", {}).items()})
        return found, None
    except NSTError as err:
        return {}, str(err).removeprefix(f"convolution forms cache {path}: ")
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        return {}, f"unreadable ({type(err).__name__})"


def _machines(path: Path) -> dict:
    """The cache file's table of machines, to be written back: empty when the file is absent,
    unreadable or of another version (whose entries this version does not use)."""
    try:
        data = untrusted.read_json(path, "convolution forms cache") if path.exists() else {}
        machines = data.get("machines", {}) if data.get("version") == CACHE_VERSION else {}
    except (NSTError, AttributeError):
        return {}
    return machines if isinstance(machines, dict) else {}


def write_cache(path: Path, key: str, info: dict[str, str], choices: dict[str, Choice]) -> None:
    """Add this machine's choices to the cache file (atomically; other machines' entries kept)."""
    from nst_jax.files.fileio import write_json
    machines = _machines(path)
    old = machines.get(key, {}).get("shapes", {}) if isinstance(machines.get(key), dict) else {}
    shapes = {**(old if isinstance(old, dict) else {}),
              **{k: {"form": c.form, "seconds": c.seconds, "error": c.error} for k, c in choices.items()}}
    machines[key] = {"machine": info, "shapes": shapes}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"version": CACHE_VERSION, "machines": machines})


def forget(path: Path, key: str) -> None:
    """Remove this machine's entry from the cache file (other machines' entries kept)."""
    from nst_jax.files.fileio import write_json
    if not path.exists():
        return
    machines = _machines(path)
    machines.pop(key, None)
    write_json(path, {"version": CACHE_VERSION, "machines": machines})


# ------------------------------------------------------------------------------- measuring

def warm_calls(form: str) -> int:
    """Untimed calls before a form's time is taken: `WARM_CALLS`, and for the fused kernel's forms also
    the calls in which the kernel tries its block sizes on a new shape (timed, they would charge the form
    for block sizes it does not keep)."""
    if not form.startswith("f4f"):
        return WARM_CALLS
    from nst_jax.model import fused
    return WARM_CALLS + fused.library().trial_calls


def measure(shape: Shape, forms: tuple[str, ...], rounds: int = 3) -> Choice:
    """Time each form on one random input of `shape` and check it against XLA's convolution; the fastest
    within the budget. Each form is compiled once, called `warm_calls` times untimed, then timed on
    `rounds` calls in a row (as a run calls one form layer after layer), the least time counting."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    import jax
    import jax.numpy as jnp
    import numpy as np
    from nst_jax.machine import compiler
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, shape.height, shape.width, shape.cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, shape.cin, shape.cout)) / np.sqrt(9 * shape.cin), jnp.float32)
    outputs, seconds = {}, {}
    for f in forms:
        kernel = k if layers.FORMS[f].transform is None else layers.FORMS[f].transform(k)
        fn = compiler.jit(layers.FORMS[f].conv)
        outputs[f] = jax.block_until_ready(fn(x, kernel))
        for _ in range(warm_calls(f) - 1):
            jax.block_until_ready(fn(x, kernel))
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            jax.block_until_ready(fn(x, kernel))
            times.append(time.perf_counter() - t)
        seconds[f] = min(times)
    reference = outputs["xla"]
    norm = float(jnp.linalg.norm(reference)) or 1.0
    error = {f: float(jnp.linalg.norm(outputs[f] - reference)) / norm for f in forms}
    return Choice(choose(seconds, error), seconds, error)


def within_budget(form: str, error: dict[str, float]) -> bool:
    return error.get(form, float("inf")) <= BUDGETS.get(form, ERROR_BUDGET)


def choose(seconds: dict[str, float], error: dict[str, float]) -> str:
    """The fastest form within its error budget; a Winograd form only when it beats XLA's convolution
    by `MARGIN` (so timing noise does not flip a layer between forms from one measurement to the next)."""
    ok = [f for f in seconds if f != "xla" and within_budget(f, error) and seconds[f] <= MARGIN * seconds["xla"]]
    return min(ok, key=lambda f: seconds[f]) if ok else "xla"


class Forms(NamedTuple):
    """A run's forms: per layer (forward, input gradient), and where they came from."""

    by_layer: tuple[tuple[str, str, str], ...]   # (layer, forward form, input-gradient form)
    source: str                                   # 'cache', 'measured', 'recorded', 'asked', 'off', 'none'
    seconds: float = 0.0                          # spent measuring
    native_gram: bool = False                     # the Gram statistic's product by the native library too

    def as_dict(self) -> dict[str, tuple[str, str]]:
        return {name: (fwd, bwd) for name, fwd, bwd in self.by_layer}

    def fused(self) -> bool:
        """Whether a convolution runs on the fused kernel, that is on nst_jax's native library."""
        return any(form.startswith("f4f") for _, fwd, bwd in self.by_layer for form in (fwd, bwd))


NONE = Forms((), "none")


def choose_forms(layers, height: int, width: int, *, path: Path | None = None,
                 measure_fn: Callable[[Shape, tuple[str, ...]], Choice] | None = None,
                 say: Callable[[str], None] = lambda line: None, bf16: bool | tuple[str, ...] = False,
                 fused: bool | None = None) -> Forms:
    """The forms of a run at height × width (see the module docstring): cached choices where this
    machine has them, the rest measured now and added to the cache. `bf16`: the forms with bfloat16
    products are candidates too (True: all, or those named), where the CPU has bfloat16 units
    (`bf16_units`); `fused`: whether 'f4f' is (default: where it can be built, `fused_ready`)."""
    if os.environ.get("NST_JAX_TUNE", "").strip().lower() in ("0", "off", "no", "false"):
        return Forms(tuple((name, "xla", "xla") for name in run_shapes(layers, height, width)), "off")
    if bf16 and not bf16_units():
        say("convolution forms: this CPU has no bfloat16 units; choosing among the float32 forms")
        bf16 = False
    fused = fused_ready(say) if fused is None else fused
    path = path or cache_path()
    info = identity.machine()
    key = identity.machine_key(info)
    cached, why = read_cache(path, info)
    if why:
        say(f"convolution forms: not using {path} ({why}); measuring on this machine")
    shapes = run_shapes(layers, height, width)
    needed = {s.key: s for pair in shapes.values() for s in pair if s is not None and s.tuned}
    has_all = lambda s: s.key in cached and all(f in cached[s.key].seconds for f in candidates(s, bf16, fused))
    missing = [s for s in needed.values() if not has_all(s)]
    t0 = time.perf_counter()
    if missing:
        say(f"convolution forms: measuring {len(missing)} layer shape{'s' if len(missing) > 1 else ''} on this "
            f"machine (once; cached in {path})")
        new = {s.key: (measure_fn or measure)(s, candidates(s, bf16, fused)) for s in missing}
        cached = {**cached, **new}
        try:
            write_cache(path, key, info, new)
        except (OSError, NSTError) as err:   # caches are optional: the run goes on
            reason = err.strerror if isinstance(err, OSError) else str(err).removeprefix(f"cannot write {path}: ")
            say(f"convolution forms: could not write the cache {path} ({reason}); measured again next time")
    def pick(s):
        if s is None or not s.tuned:
            return "xla"
        c = cached[s.key]
        return choose({f: c.seconds[f] for f in candidates(s, bf16, fused)}, c.error)
    by_layer = tuple((name, pick(f), pick(b)) for name, (f, b) in shapes.items())
    return Forms(by_layer, "measured" if missing else "cache", time.perf_counter() - t0)


def uniform(layers, height: int, width: int, form: str) -> Forms:
    """One form wherever it applies (`--conv-forms f4`), XLA's convolution elsewhere."""
    shapes = run_shapes(layers, height, width)
    fits = lambda s: form if s is not None and form in candidates(s, bf16=True, fused=form.startswith("f4f")) else "xla"
    return Forms(tuple((name, fits(f), fits(b)) for name, (f, b) in shapes.items()), "asked")


def describe(forms: Forms) -> str:
    """'convolutions: F(4×4) × 9, XLA's × 22 (forward and gradient of each layer) — from this machine's cache'."""
    counts = {f: sum(1 for _, a, b in forms.by_layer for g in (a, b) if g == f) for f in FORMS}
    where = {"cache": "from this machine's cache", "measured": f"measured on this machine in {forms.seconds:.1f} s",
             "recorded": "as recorded in the checkpoint", "asked": "as asked (--conv-forms)",
             "off": "not measured (NST_JAX_TUNE=off)", "none": ""}[forms.source]
    gram = "; the Gram matrices' product by the native library" if forms.native_gram else ""
    return (f"convolutions: {', '.join(f'{layers.FORMS[f].short} × {n}' for f, n in counts.items() if n)} (forward and "
            f"gradient of each layer) — {where}{gram}")
