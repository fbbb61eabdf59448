"""The one exception type users see.

Every problem caused by the user's input (files, names, sizes, options) raises `NSTError` with a
message that fits on one line and names the file or value at fault. The command-line tools print
that line and exit with status 2; any other exception is a bug in nst_jax.
"""


import argparse
import functools
import os
import sys


class NSTError(Exception):
    """A problem with the user's input, reported as one clear line."""


def cli(main=None, *, interrupted: str | None = None):
    """Decorate a command-line `main`: an NSTError prints `error: …` on stderr and returns 2; with
    `interrupted`, Ctrl-C prints that line and returns 130. Use as `@cli` or `@cli(interrupted=…)`."""
    def decorate(main):
        @functools.wraps(main)
        def wrapper(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except NSTError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:
                if interrupted is None:
                    raise
                print(f"interrupted: {interrupted}", file=sys.stderr)
                return 130
        return wrapper
    return decorate if main is None else decorate(main)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one `error: …` line (and exit 2) instead of the whole usage."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def exit_with(main) -> None:
    """`sys.exit(main())` for a tool run as a program; after Ctrl-C (exit 130) the process ends at once
    instead of running interpreter shutdown, during which a compile still running in XLA's threads
    could crash it (a segmentation fault after the 'interrupted' line). Every file is closed by then."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)
