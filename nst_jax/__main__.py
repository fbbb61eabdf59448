"""`nst-jax COMMAND …` (or `python -m nst_jax COMMAND …`): the one command line of nst_jax.

`nst-jax --help` lists the commands; `nst-jax COMMAND --help` shows one command's options. A first
argument that names no command is a run's content image, so `nst-jax photo.jpg painting.jpg` runs the
transfer as `nst-jax run photo.jpg painting.jpg` does. A command's module is imported only when it is
chosen, so `--help` stays quick.
"""

from __future__ import annotations

import importlib
import sys

# command → (module with its `main(argv)`, what it does)
COMMANDS = {
    "run": ("nst_jax.run", "style transfer of one image (the default command)"),
    "video": ("nst_jax.apps.video.__main__", "style transfer of a video, a GIF or a folder of frames, "
                                             "with temporal consistency"),
    "sweep": ("nst_jax.studies.sweep", "a resumable grid of runs, locally or on a Ray cluster"),
    "studio": ("nst_jax.apps.studio.__main__", "a local web app: upload images, start and watch runs"),
    "paper": ("nst_jax.studies.paper", "the results of Dissecting Neural Style Transfer, written as a report"),
    "dissect": ("nst_jax.studies.dissect", "take the transfer apart: reconstructions, layers, statistics"),
    "gallery": ("nst_jax.studies.gallery", "the same transfer under each style statistic, side by side"),
    "report": ("nst_jax.studies.report", "loss curves, contact sheets and a sweep's page from what runs wrote"),
    "tune": ("nst_jax.apps.tune", "measure, show or forget this machine's convolution forms"),
    "convert": ("nst_jax.model.convert", "convert other projects' VGG19 weights; show a weights file"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())
    return ("usage: nst-jax COMMAND [options]   (or: python -m nst_jax COMMAND …)\n"
            "       nst-jax CONTENT STYLE [STYLE …] [options]   (the same as nst-jax run …)\n\n"
            f"nst_jax: neural style transfer (Gatys et al. 2016) in JAX. Commands:\n{rows}\n\n"
            "nst-jax COMMAND --help shows a command's options.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    name = argv[0] if argv[0] in COMMANDS else "run"
    rest = argv[1:] if argv[0] in COMMANDS else argv
    return importlib.import_module(COMMANDS[name][0]).main(rest)


def entry() -> None:
    """The `nst-jax` console script: `main`, ended as `exit_with` ends a command (after Ctrl-C at once)."""
    from nst_jax.base.errors import exit_with
    exit_with(main)


if __name__ == "__main__":
    entry()
