"""Style statistics that remove spatial information, and their losses: pure, jittable functions.

A layer's features F are (M, C): M = H·W positions, C channels (f_i is the feature vector at
position i); S is the same for the style image. Each statistic has
  `target(S, key) -> T`  (computed once from the style; blendable across styles where it is a moment)
  `loss(F, T, key) -> scalar` (0 when F's statistic equals the target)
and every one is invariant under a permutation of the M positions: that is what "removing spatial
information" means (tested). Matrix products use precision=HIGHEST in float32.

| name | statistic and loss | source |
|---|---|---|
| gram | G = FᵀF/(C·M); mean over C² of (G − A)² | Gatys et al. 2016 |
| mean_std | μ_c, σ_c = √(var_c + 1e-5); (1/C) Σ_c (μ_c − μ_c^S)² + (σ_c − σ_c^S)² | Huang & Belongie 2017 (AdaIN); Li et al. 2017 "BN statistics" |
| covariance | centred Gram (F − μ)ᵀ(F − μ)/(C·M); mean over C² of squared difference | Li et al. 2017 (centred Gram) |
| w2 | ‖μ − μ_S‖² + tr(Σ + Σ_S − 2(Σ_S^½ Σ Σ_S^½)^½), Σ = cov + εI, ε = 1e-4; divided by C; Σ_S^½ precomputed; the trace of the root from clamped eigenvalues with the gradient ½M^{-½} (`trace_sqrtm`) | Wasserstein-2 between Gaussians (Dowson & Landau 1982; Mroueh 2019 for style) |
| mmd-linear | k(x, y) = xᵀy: MMD² = ‖μ − μ_S‖² | Li et al. 2017, "Demystifying NST" |
| mmd-poly | k(x, y) = (xᵀy)²: MMD² = ‖FᵀF/M − SᵀS/M_S‖²_F (the Gram loss up to scale) | Li et al. 2017 |
| mmd-gauss | k = exp(−‖x − y‖²/2σ²), σ² = mean squared pairwise distance of S (estimated from 1024 sampled pairs); MMD² through D = 512 random Fourier features (Rahimi & Recht 2007): ‖mean φ(F) − mean φ(S)‖², linear in M | Li et al. 2017 |
| sliced_wasserstein | C random unit directions V: mean over directions and quantiles of (sort(F V) − sort(S V))², S's sorted projections resampled to M quantiles when sizes differ | Heitz et al. CVPR 2021 |
| histogram | per-channel histogram matching R(F) of F to S (rank → S's quantile), treated as a constant: mean (F − R(F))² | Risser et al. 2017 |

The random statistics (mmd-gauss: the Fourier features; sliced_wasserstein: the directions) take a
PRNG key; see `transfer.py` for how the key is chosen per step.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST
EPS_STD = 1e-5
EPS_COV = 1e-4
FOURIER_FEATURES = 512


def _mm(a, b):
    return jnp.matmul(a, b, precision=HIGHEST)


def _check(f):
    if f.ndim != 2:
        raise ValueError(f"statistics take features of shape (M, C), got {tuple(f.shape)}")
    return f.astype(jnp.float32)


# ------------------------------------------------------------------------------------------ moments

@jax.custom_vjp
def _gram(f):
    return _mm(f.T, f)


def _gram_fwd(f):
    return _mm(f.T, f), f


def _gram_bwd(f, g):
    # d(FᵀF) = dFᵀF + FᵀdF, so the cotangent is F(G̅ + G̅ᵀ): one (M×C)·(C×C) product instead of the
    # two (with transposed copies of F) that autodiff gives — 40 % of the Gram's value+grad at 256².
    return (_mm(f, g + g.T),)


_gram.defvjp(_gram_fwd, _gram_bwd)


def gram_matrix(f):
    """FᵀF / (C·M) for features (M, C)."""
    f = _check(f)
    m, c = f.shape
    return _gram(f) / (c * m)


def mean_std(f):
    """Per-channel mean and standard deviation √(var + 1e-5) of features (M, C)."""
    f = _check(f)
    mu = jnp.mean(f, axis=0)
    return mu, jnp.sqrt(jnp.mean(jnp.square(f - mu), axis=0) + EPS_STD)


def covariance(f):
    """(centred Gram (F − μ)ᵀ(F − μ)/(C·M), mean μ) of features (M, C)."""
    f = _check(f)
    m, c = f.shape
    mu = jnp.mean(f, axis=0)
    fc = f - mu
    return _mm(fc.T, fc) / (c * m), mu


@jax.custom_vjp
def trace_sqrtm(a):
    """tr(A^½) for a symmetric PSD matrix: Σ √λ_i with eigenvalues clamped at 0.

    The gradient is ½ A^{-½} (eigenvalues clamped at 1e-6·λ_max), written from the eigenvectors
    alone: unlike differentiating `eigh`, it never divides by gaps between eigenvalues, so it stays
    finite for repeated eigenvalues and for the rank-deficient covariances of dead ReLU channels."""
    return _trace_sqrtm_fwd(a)[0]


def _trace_sqrtm_fwd(a):
    w, v = jnp.linalg.eigh(0.5 * (a + a.T))
    return jnp.sum(jnp.sqrt(jnp.clip(w, 0.0))), (w, v)


def _trace_sqrtm_bwd(res, g):
    w, v = res
    floor = 1e-6 * jnp.maximum(jnp.max(w), 1e-30)
    return (g * _mm(v * (0.5 / jnp.sqrt(jnp.maximum(w, floor))), v.T),)


trace_sqrtm.defvjp(_trace_sqrtm_fwd, _trace_sqrtm_bwd)


def _sqrtm_eigh(a):
    """Square root of a symmetric PSD matrix by eigen-decomposition, eigenvalues clamped at 0 (targets only)."""
    w, v = jnp.linalg.eigh(a)
    return _mm(v * jnp.sqrt(jnp.clip(w, 0.0)), v.T)


def gaussian(f):
    """(μ, Σ + εI) of features (M, C): the Gaussian that w2 compares."""
    f = _check(f)
    m, c = f.shape
    mu = jnp.mean(f, axis=0)
    fc = f - mu
    return mu, _mm(fc.T, fc) / m + EPS_COV * jnp.eye(c, dtype=f.dtype)


def w2_distance(mu1, cov1, mu2, cov2, cov2_sqrt=None):
    """Squared Wasserstein-2 distance between N(μ₁, Σ₁) and N(μ₂, Σ₂)."""
    r = _sqrtm_eigh(cov2) if cov2_sqrt is None else cov2_sqrt
    inner = _mm(_mm(r, cov1), r)
    cross = trace_sqrtm(inner)
    return jnp.sum(jnp.square(mu1 - mu2)) + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * cross


# ----------------------------------------------------------------------------------- sample-based

def gauss_bandwidth(s, key=None, pairs: int = 1024):
    """σ² of the Gaussian kernel: the mean squared distance between pairs of style positions."""
    s = _check(s)
    key = jax.random.PRNGKey(0) if key is None else key
    i = jax.random.randint(key, (pairs,), 0, s.shape[0])
    j = jax.random.randint(jax.random.fold_in(key, 1), (pairs,), 0, s.shape[0])
    return jnp.maximum(jnp.mean(jnp.sum(jnp.square(s[i] - s[j]), axis=1)), 1e-12)


def fourier_features(f, sigma2, key, dim: int = FOURIER_FEATURES):
    """Mean random Fourier feature √(2/D)·cos(W f + b) over positions, W ~ N(0, I/σ²)."""
    f = _check(f)
    c = f.shape[1]
    w = jax.random.normal(key, (c, dim), f.dtype) / jnp.sqrt(sigma2)
    b = jax.random.uniform(jax.random.fold_in(key, 1), (dim,), f.dtype, 0.0, 2 * jnp.pi)
    return jnp.sqrt(2.0 / dim) * jnp.mean(jnp.cos(_mm(f, w) + b), axis=0)


def _resample_sorted(sorted_cols, m):
    """Sorted columns (M_s, K) resampled to m quantiles by linear interpolation."""
    ms = sorted_cols.shape[0]
    if ms == m:
        return sorted_cols
    q = (jnp.arange(m, dtype=jnp.float32) + 0.5) / m * ms - 0.5
    q = jnp.clip(q, 0.0, ms - 1.0)
    lo = jnp.floor(q).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, ms - 1)
    t = (q - lo)[:, None]
    return sorted_cols[lo] * (1 - t) + sorted_cols[hi] * t


def random_directions(key, c: int):
    """C random unit directions in R^C, as columns (C, C)."""
    v = jax.random.normal(key, (c, c), jnp.float32)
    return v / jnp.linalg.norm(v, axis=0, keepdims=True)


def histogram_match(f, s_sorted):
    """Each channel of F mapped to the style's value of the same quantile (rank matching)."""
    f = _check(f)
    m = f.shape[0]
    ranks = jnp.argsort(jnp.argsort(f, axis=0), axis=0)
    table = _resample_sorted(s_sorted, m)
    return jnp.take_along_axis(table, ranks, axis=0)


# ------------------------------------------------------------------------------ the statistic table

class Statistic(NamedTuple):
    """A style statistic: its target from style features, its loss, and how targets blend."""

    name: str
    target: Callable[[Any, Any], Any]          # (S (M, C), key) -> target pytree
    loss: Callable[[Any, Any, Any], Any]       # (F (M, C), target, key) -> scalar
    blendable: bool                            # targets are moments: blend by weighted average
    stochastic: bool                           # the loss depends on the key


def _gram_loss(f, t, key):
    return jnp.mean(jnp.square(gram_matrix(f) - t))


def _mean_std_loss(f, t, key):
    mu, sd = mean_std(f)
    return jnp.mean(jnp.square(mu - t[0]) + jnp.square(sd - t[1]))


def _cov_loss(f, t, key):
    return jnp.mean(jnp.square(covariance(f)[0] - t))


def _w2_target(s, key):
    mu, cov = gaussian(s)
    return mu, cov, _sqrtm_eigh(cov)


def _w2_loss(f, t, key):
    mu, cov = gaussian(f)
    return w2_distance(mu, cov, t[0], t[1], t[2]) / f.shape[1]


def _mmd_linear_loss(f, t, key):
    return jnp.sum(jnp.square(jnp.mean(_check(f), axis=0) - t))


def _poly_embedding(f):
    f = _check(f)
    return _mm(f.T, f) / f.shape[0]


def _mmd_poly_loss(f, t, key):
    return jnp.sum(jnp.square(_poly_embedding(f) - t))


def _mmd_gauss_target(s, key):
    return _check(s), gauss_bandwidth(s)


def _mmd_gauss_loss(f, t, key):
    s, sigma2 = t
    return jnp.sum(jnp.square(fourier_features(f, sigma2, key) - fourier_features(s, sigma2, key)))


def _sw_loss(f, s, key):
    f = _check(f)
    v = random_directions(key, f.shape[1])
    pf = jnp.sort(_mm(f, v), axis=0)
    ps = _resample_sorted(jnp.sort(_mm(s, v), axis=0), f.shape[0])
    return jnp.mean(jnp.square(pf - ps))


def _hist_loss(f, s_sorted, key):
    f = _check(f)
    return jnp.mean(jnp.square(f - jax.lax.stop_gradient(histogram_match(f, s_sorted))))


def masked_gram_matrix(f, m):
    """Gram matrix over the masked positions: Σ_i m_i f_i f_iᵀ / (C·Σ_i m_i), mask m (M,) in [0, 1]
    (Gatys et al. 2017, "Controlling Perceptual Factors"); equals `gram_matrix` for m = 1."""
    f = _check(f)
    m = m.reshape(-1).astype(jnp.float32)
    return _mm((f * m[:, None]).T, f) / (f.shape[1] * jnp.maximum(jnp.sum(m), 1e-6))


def _masked_gram_loss(f, t, key):
    target, mask = t
    return jnp.mean(jnp.square(masked_gram_matrix(f, mask) - target))


STATISTICS: dict[str, Statistic] = {
    "gram": Statistic("gram", lambda s, k: gram_matrix(s), _gram_loss, True, False),
    "mean_std": Statistic("mean_std", lambda s, k: mean_std(s), _mean_std_loss, True, False),
    "covariance": Statistic("covariance", lambda s, k: covariance(s)[0], _cov_loss, True, False),
    "w2": Statistic("w2", _w2_target, _w2_loss, False, False),
    "mmd-linear": Statistic("mmd-linear", lambda s, k: jnp.mean(_check(s), axis=0), _mmd_linear_loss, True, False),
    "mmd-poly": Statistic("mmd-poly", lambda s, k: _poly_embedding(s), _mmd_poly_loss, True, False),
    "mmd-gauss": Statistic("mmd-gauss", _mmd_gauss_target, _mmd_gauss_loss, False, True),
    "sliced_wasserstein": Statistic("sliced_wasserstein", lambda s, k: _check(s), _sw_loss, False, True),
    "histogram": Statistic("histogram", lambda s, k: jnp.sort(_check(s), axis=0), _hist_loss, False, False),
}
NAMES = tuple(STATISTICS)
# Spatial control (masks) uses the Gram loss over masked positions; its targets carry the content
# mask at the layer's resolution. Chosen by `--content-mask`, not by name.
STATISTICS["gram-masked"] = Statistic("gram-masked", None, _masked_gram_loss, False, False)

# Multipliers that give each statistic the same style loss as the Gram loss at the default initial
# image (the content image) on the sample images (chelsea/ihc, 256 px, default layers, embedded
# weights), so that k has a comparable effect. Measured by `python -m bench.calibrate_statistics`.
# (Measured 2026-11-27: the loss values at the content image span 15 orders of magnitude unscaled.)
SCALE: dict[str, float] = {
    "gram": 1.0,
    "mean_std": 1.34,
    "covariance": 10.09,
    "w2": 0.6485,
    "mmd-linear": 0.004543,
    "mmd-poly": 1.538e-11,
    "mmd-gauss": 6.013e5,
    "sliced_wasserstein": 1.631,
    "histogram": 1.078,
    "gram-masked": 1.0,
}


def get(name: str) -> Statistic:
    """The statistic called `name`; ValueError listing the valid names otherwise."""
    try:
        return STATISTICS[name]
    except KeyError:
        raise ValueError(f"unknown style statistic {name!r}; choose one of {', '.join(NAMES)}") from None
