"""nst_jax: optimisation-based neural style transfer (Gatys et al. 2016) in pure-functional JAX."""

from nst_jax.base.errors import NSTError

__version__ = "0.1.0"
__all__ = ["NSTError", "__version__"]
