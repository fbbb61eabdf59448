"""The one exception type users see.

Every problem caused by the user's input (files, names, sizes, options) raises `NSTError` with a
message that fits on one line and names the file or value at fault. The command-line tools print
that line and exit with status 2; any other exception is a bug in nst_jax.
"""


import argparse
import functools
import os
import signal
import sys
import threading


class NSTError(Exception):
    """A problem with the user's input, reported as one clear line."""


def one_line(message: str) -> str:
    """`message` on one line: line breaks and other control characters (from a file name, or a value read
    from a file) written as escapes, so a name cannot print a second line that looks like nst_jax's own."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _terminate(signum, frame):
    raise KeyboardInterrupt


def cli(main=None, *, interrupted: str | None = None, interrupted_early: str | None = None):
    """Decorate a command-line `main`: an NSTError prints `error: …` on stderr and returns 2; with
    `interrupted`, Ctrl-C — and SIGTERM, as schedulers and `kill` send it — prints that line and returns
    130 (`interrupted_early` instead when the interrupt came before any image was written: the run loop
    marks the interrupt it re-raises with `image_written`). Use as `@cli` or `@cli(interrupted=…)`."""
    def decorate(main):
        @functools.wraps(main)
        def wrapper(*args, **kwargs):
            previous = None
            if interrupted is not None and threading.current_thread() is threading.main_thread():
                previous = signal.signal(signal.SIGTERM, _terminate)
            try:
                return main(*args, **kwargs)
            except NSTError as err:
                print(f"error: {one_line(str(err))}", file=sys.stderr)
                return 2
            except KeyboardInterrupt as err:
                if interrupted is None:
                    raise
                early = interrupted_early is not None and not getattr(err, "image_written", False)
                print(f"interrupted: {interrupted_early if early else interrupted}", file=sys.stderr)
                return 130
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
        return wrapper
    return decorate if main is None else decorate(main)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one `error: …` line (and exit 2) instead of the whole usage."""

    def error(self, message):
        print(f"error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
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
