"""The one exception type users see.

Every problem caused by the user's input (files, names, sizes, options) raises `NSTError` with a
message that fits on one line and names the file or value at fault. The command-line tools print
that line and exit with status 2; any other exception is a bug in nst_jax.
"""


class NSTError(Exception):
    """A problem with the user's input, reported as one clear line."""
