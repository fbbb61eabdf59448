"""Style statistics that remove spatial information, and their losses: pure, jittable functions.

A layer's features F are (M, C): M = H·W positions, C channels (f_i is the feature vector at
position i); S is the same for the style image. Each statistic is one module in this package that
registers a `Statistic`:
  `target(S, key, mask) -> T`   computed once from the style (blendable across styles where it is a moment)
  `loss(F, T, key, mask) -> scalar`  0 when F's statistic equals the target
and every one is invariant under a permutation of the M positions: that is what "removing spatial
information" means (tested). `mask` is None, or (M,) weights in [0, 1] for statistics that support
spatial control (`Statistic.masks`; Gatys et al. 2017): the statistic is then taken over the masked
positions only. Matrix products use precision=HIGHEST in float32. The Gram has a native variant
(`get('gram', native=True)`: FᵀF by nst_jax's native library, `model.fused`), which runs planned with
the fused convolution forms use; its values agree with XLA's product to float32 rounding.

| name | statistic and loss | source |
|---|---|---|
| gram | G = FᵀF/(C·M); mean over C² of (G − A)²; with a mask Σ m_i f_i f_iᵀ/(C·Σ m_i) | Gatys et al. 2016, 2017 |
| mean_std | μ_c, σ_c = √(var_c + 1e-5); (1/C) Σ_c (μ_c − μ_c^S)² + (σ_c − σ_c^S)² | Huang & Belongie 2017 (AdaIN); Li et al. 2017 "BN statistics" |
| covariance | centred Gram (F − μ)ᵀ(F − μ)/(C·M); mean over C² of squared difference | Li et al. 2017 (centred Gram) |
| w2 | ‖μ − μ_S‖² + tr(Σ + Σ_S − 2(Σ_S^½ Σ Σ_S^½)^½), Σ = cov + εI, ε = 1e-4; divided by C; Σ_S^½ precomputed; the trace of the root from clamped eigenvalues with the gradient ½M^{-½} (`trace_sqrtm`) | Wasserstein-2 between Gaussians (Dowson & Landau 1982; Mroueh 2019 for style) |
| mmd-linear | k(x, y) = xᵀy: MMD² = ‖μ − μ_S‖² | Li et al. 2017, "Demystifying NST" |
| mmd-poly | k(x, y) = (xᵀy)²: MMD² = ‖FᵀF/M − SᵀS/M_S‖²_F (the Gram loss up to scale) | Li et al. 2017 |
| mmd-gauss | k = exp(−‖x − y‖²/2σ²), σ² = mean squared pairwise distance of S (estimated from 1024 sampled pairs); MMD² through D = 512 random Fourier features (Rahimi & Recht 2007): ‖mean φ(F) − mean φ(S)‖², linear in M | Li et al. 2017 |
| sliced_wasserstein | C random unit directions V: mean over directions and quantiles of (sort(F V) − sort(S V))², S's sorted projections resampled to M quantiles when sizes differ | Heitz et al. CVPR 2021 |
| histogram | per-channel histogram matching R(F) of F to S (rank → S's quantile), treated as a constant: mean (F − R(F))² | Risser et al. 2017 |

Each statistic carries a `scale`: the multiplier that gives it the same style loss as the Gram loss
at the default initial image (the content image) on the sample images (chelsea/ihc, 256 px, default
layers, embedded weights), so that k has a comparable effect; measured by
`python -m bench.calibrate_statistics` (2026-11-27: unscaled, the values span 15 orders of magnitude).

The random statistics (mmd-gauss: the Fourier features; sliced_wasserstein: the directions) take a
PRNG key; the run loop chooses it per step (see `solvers.SolverInfo.fresh_key_per_step`).
To add a statistic, add one module here that calls `_base.register`.
"""

from __future__ import annotations

from nst_jax.base import catalogue
from nst_jax.base.registry import import_modules
from nst_jax.objective.statistics._base import REGISTRY, Statistic

STATISTICS = REGISTRY.entries


def get(name: str, native: bool = False) -> Statistic:
    """The statistic called `name` (ValueError for another name); `native`: its variant by nst_jax's native
    library (`Statistic.native`) where it has one. The variants' values agree to float32 rounding."""
    stat = REGISTRY.get(name)
    return stat.native if native and stat.native is not None else stat


# Gatys et al.'s Gram first, then every other module of the package in name order.
import_modules(__name__, __path__, first="gram")
NAMES = REGISTRY.names()
if NAMES != catalogue.statistic_names():  # the command line reads the names from the modules' source
    raise ImportError(f"{__name__}: registered {NAMES}, but nst_jax.catalogue reads {catalogue.statistic_names()}")

from nst_jax.objective.statistics.gram import gram_matrix, masked_gram_matrix  # noqa: E402  (the helpers users call)
from nst_jax.objective.statistics.histogram import histogram_match  # noqa: E402
from nst_jax.objective.statistics.mmd import fourier_features, gauss_bandwidth  # noqa: E402
from nst_jax.objective.statistics.moments import covariance, mean_std  # noqa: E402
from nst_jax.objective.statistics.sliced_wasserstein import random_directions  # noqa: E402
from nst_jax.objective.statistics.w2 import gaussian, trace_sqrtm, w2_distance  # noqa: E402

__all__ = ["Statistic", "STATISTICS", "NAMES", "get", "gram_matrix", "masked_gram_matrix",
           "mean_std", "covariance", "gaussian", "w2_distance", "trace_sqrtm", "gauss_bandwidth",
           "fourier_features", "random_directions", "histogram_match"]
