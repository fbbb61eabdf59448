"""The command line generated from `Config`'s field metadata: each run option's flag, type, help text
and default come from its `config.option(...)` declaration, so the parser, the help and the Config
cannot drift apart. `add_run_arguments` builds `run`'s parser, `config_from_args` reads it back into
a validated Config; the other tools share `add_common_arguments`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from nst_jax.base import catalogue
from nst_jax.transfer.config import FIELDS, SAMPLE_CONTENT, SAMPLE_STYLE, Config, flag_of, with_preset
from nst_jax.transfer.fieldtypes import parse_names, split_list


def parse_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in split_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in split_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


_PARSE = {"int": int, "float": float, "str": str, "path": str, "names": parse_names, "floats": parse_floats,
          "ints": parse_ints}


def _help_text(f: dataclasses.Field, default: Any = dataclasses.MISSING) -> str:
    meta = f.metadata
    default = f.default if default is dataclasses.MISSING else default
    if meta["positional"]:
        return meta["help"]
    if meta["from_preset"]:
        shown = ",".join(default) if isinstance(default, tuple) else f"{default:g}"
        return f"{meta['help']} (default: the preset's; {shown} for 'default')"
    if f.name == "lr":
        rates = ", ".join(f"{n} {lr:g}" for n, lr in catalogue.solver_default_lrs().items())
        return f"{meta['help']} (default: the solver's: {rates})"
    if meta["default_text"] is not None:
        return f"{meta['help']} (default: {meta['default_text']})"
    if meta["choices"] is not None:
        return f"{meta['help']}: {', '.join(meta['choices']())} (default: {default})"
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{meta['help']} (default: {shown})"


def add_argument(parser: argparse.ArgumentParser, name: str, default: Any = dataclasses.MISSING,
                 **overrides) -> None:
    """Add the option of Config field `name` to `parser`. Without `default` the option is left out of
    the parsed namespace unless given (so presets and Config defaults apply); with one, the tool's
    own default is used and shown."""
    f = FIELDS[name]
    meta = f.metadata
    kw: dict[str, Any] = {"help": _help_text(f, default)}
    if meta["kind"] == "paths":
        kw["nargs"] = "+"
    elif meta["kind"] == "bool":
        kw["action"] = "store_true"
    else:
        kw["type"] = _PARSE[meta["kind"]]
    if meta["choices"] is not None:
        kw["metavar"] = meta["metavar"] or name.upper()
    elif meta["metavar"]:
        kw["metavar"] = meta["metavar"]
    kw.update(overrides)
    if meta["positional"]:
        parser.add_argument(name, **kw)
        return
    kw["default"] = argparse.SUPPRESS if default is dataclasses.MISSING else default
    flags = [meta["short"]] if meta["short"] else []
    parser.add_argument(*flags, flag_of(name), dest=name, **kw)


# `run --help` in sections: each Config field's option in the first section that names it
GROUPS = {
    "images and layers": ("size", "preset", "style_scale", "content_layers", "style_layers", "style_layer_weights",
                          "style_blend_weights", "style_statistic", "pooling", "init", "original_colors",
                          "content_masks", "style_masks", "scales", "scale_iterations", "temporal"),
    "weights": ("style_weight", "content_weight", "tv_weight", "temporal_weight", "normalize_gradients", "weights"),
    "optimiser": ("iterations", "optimizer", "lr", "history", "tol", "tol_window", "seed"),
    "output and resume": ("output", "save_every", "print_every", "checkpoint_minutes", "checkpoint_every",
                          "light_checkpoint", "keep_checkpoint"),
    "memory and devices": ("memory", "devices"),
    "speed": ("precision", "conv_forms"),
}


def add_run_arguments(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """Every Config field as a command-line option: the positional images first, then the options in
    the sections of `GROUPS` (returned by title, for the command's own flags)."""
    groups = {title: parser.add_argument_group(title) for title in GROUPS}
    section = {name: groups[title] for title, names in GROUPS.items() for name in names}
    for name in FIELDS:
        add_argument(section.get(name, parser), name)
    return groups


def config_from_args(args: argparse.Namespace) -> Config:
    """The validated Config from a namespace made by `add_run_arguments` (absent options: defaults)."""
    given = {name: getattr(args, name) for name in FIELDS if hasattr(args, name)}
    return with_preset(given.pop("preset", "default"), **given)


def add_common_arguments(parser: argparse.ArgumentParser, *, size: int, iterations: int | None,
                         style_nargs: str | int | None = "+", styles: list[str] | None = None) -> None:
    """The flags every tool beside `run` shares, with the same names and help as `run`'s options and
    the tool's own size and iteration defaults: --content, --style, --size, --iterations (unless
    None: the tool takes them otherwise), --seed."""
    parser.add_argument("--content", default=SAMPLE_CONTENT,
                        help=f"content image (default: the sample {Path(SAMPLE_CONTENT).name})")
    if style_nargs is None:
        parser.add_argument("--style", dest="styles", default=SAMPLE_STYLE,
                            help=f"style image (default: the sample {Path(SAMPLE_STYLE).name})")
    else:
        styles = list(styles or [SAMPLE_STYLE])
        parser.add_argument("--style", "--styles", dest="styles", nargs=style_nargs, default=styles,
                            help=f"style image(s) (default: the sample{'s' if len(styles) > 1 else ''} "
                                 f"{' '.join(Path(p).name for p in styles)})")
    add_argument(parser, "size", size)
    if iterations is not None:
        add_argument(parser, "iterations", iterations, help=f"iterations per run (default: {iterations})")
    add_argument(parser, "seed", 0)
