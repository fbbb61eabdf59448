"""`python -m nst_jax.paper` (see the package's docstring)."""

import sys

from nst_jax.paper import main

sys.exit(main())
