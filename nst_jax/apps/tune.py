"""`nst-jax tune`: prepare or show this machine's convolution forms (`convforms`).

    nst-jax tune                      # measure the forms the main job needs (512 px), once
    nst-jax tune --size 256,1024      # and at other sizes (of the content image's shape)
    nst-jax tune --bf16               # also F(2×2) with bfloat16 products (--conv-forms auto-bf16)
    nst-jax tune --show               # this machine's cached choices and timings
    nst-jax tune --forget             # drop this machine's entry (the next run measures again)

A run measures what it needs by itself; this only moves the few seconds of measuring out of a run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nst_jax.transfer.config import PRESETS, SAMPLE_CONTENT
from nst_jax.base.errors import ArgumentParser, NSTError, cli


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="nst-jax tune", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="512", help="comma-separated --size values to prepare (default: 512)")
    p.add_argument("--content", default=SAMPLE_CONTENT,
                   help=f"an image of the shape to prepare for (default: the sample {Path(SAMPLE_CONTENT).name})")
    p.add_argument("--bf16", action="store_true",
                   help="also measure F(2×2) with bfloat16 products (what --conv-forms auto-bf16 chooses among)")
    p.add_argument("--show", action="store_true", help="show this machine's cached forms and timings")
    p.add_argument("--forget", action="store_true", help="remove this machine's entry from the cache")
    return p


_ERRORS = ("f4", "f2b", "f4f", "f4fb", "f4fa", "f4fa3")   # the forms whose error against XLA's convolution is shown


def _show(path: Path, info: dict[str, str]) -> str:
    from nst_jax.model import convforms, layers
    cached, why = convforms.read_cache(path, info)
    if why:
        return f"{path}: not used here ({why})"
    if not cached:
        return f"{path}: nothing measured on this machine yet (nst-jax tune measures the main job's)"
    rows = [f"{path}, this machine ({info['cpu']}):", "",
            "| shape (H×W×in>out) | chosen | " + " | ".join(f"{layers.FORMS[f].short} ms" for f in convforms.FORMS)
            + " | " + " | ".join(f"{layers.FORMS[f].short} error" for f in _ERRORS) + " |",
            "|---|---|" + "---|" * (len(convforms.FORMS) + len(_ERRORS))]
    for shape, c in sorted(cached.items(), key=lambda kv: -int(kv[0].split("x")[0])):
        ms = " | ".join(f"{1000 * c.seconds[f]:.1f}" if f in c.seconds else "—" for f in convforms.FORMS)
        err = " | ".join(f"{c.error[f]:.1e}" if f in c.error else "—" for f in _ERRORS)
        rows.append(f"| {shape} | {layers.FORMS[c.form].short} | {ms} | {err} |")
    return "\n".join(rows)


@cli
def main(argv: list[str] | None = None) -> int:
    from nst_jax.files import image
    from nst_jax.machine import identity
    from nst_jax.model import convforms
    args = _parser().parse_args(argv)
    from nst_jax.machine import command
    command.prepare()   # measures the forms in the process a run has
    path = convforms.cache_path()
    info = identity.machine()
    key = identity.machine_key(info)
    if args.show:
        print(_show(path, info))
        return 0
    if args.forget:
        convforms.forget(path, key)
        print(f"{path}: this machine's forms removed")
        return 0
    try:
        sizes = [int(v) for v in args.size.split(",") if v.strip()]
    except ValueError:
        raise NSTError(f"--size {args.size!r}: expected comma-separated pixel sizes") from None
    if not sizes or any(not 16 <= s <= 8192 for s in sizes):
        raise NSTError(f"--size {args.size!r}: sizes from 16 to 8192 px")
    shape = image.image_size(args.content)
    layers = PRESETS["default"]["content_layers"] + PRESETS["default"]["style_layers"]
    for size in sizes:
        h, w = image.fit_size(shape, size)
        forms = convforms.choose_forms(layers, h, w, path=path, say=lambda line: print(line, file=sys.stderr, flush=True),
                               bf16=args.bf16)
        print(f"{w}×{h} px: {convforms.describe(forms)}")
    print(_show(path, info))
    return 0
