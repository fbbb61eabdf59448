"""The one exception type users see.

Every problem caused by the user's input (files, names, sizes, options) raises `NSTError` with a
message that fits on one line and names the file or value at fault. The command-line tools print
that line and exit with status 2; any other exception is a bug in nst_jax.
"""


import functools
import sys


class NSTError(Exception):
    """A problem with the user's input, reported as one clear line."""


def cli(main):
    """Decorate a command-line `main`: an NSTError prints `error: …` on stderr and returns 2."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except NSTError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return wrapper
