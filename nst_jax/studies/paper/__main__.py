"""`nst-jax paper` (see the package's docstring)."""

import sys

from nst_jax.studies.paper import main

sys.exit(main())
