"""The style-transfer losses as pure functions, and the one place that combines them.

Shapes: features are NHWC arrays (B, H, W, C); a dict of features maps layer names to such arrays.
Every loss returns a float32 scalar. Normalisations (chosen so that loss values do not depend on the
image size, and documented here because weights do not carry over between conventions):

- `gram(F)` = Fᵀ F / (C·H·W) per batch item, F reshaped to (H·W, C): shape (B, C, C).
  (Gatys et al. 2016 use the raw Fᵀ F and divide the loss by 4 N² M²; dividing the Gram by C·H·W
  is the neural-style convention, which makes k comparable across image sizes.)
- `content_loss` = Σ_layers mean((F − P)²)   (mean over B, H, W, C).
- `style_loss`   = Σ_layers w_l · mean((G(F) − A)²)   (mean over B, C, C); A precomputed.
- `total_variation(x)` = mean((x[:, 1:] − x[:, :-1])²) + mean((x[:, :, 1:] − x[:, :, :-1])²).
- `temporal_loss(x, T)` = Σ_j mean(c_j · (255·(x − ω_j))²) over earlier frames j warped to this one
  (ω_j) with their consistency weights c_j (Ruder et al., *Artistic style transfer for videos*): pixel
  levels 0–255, as the network sees them.
- The objective = content_weight·L_content + style_weight·L_style + tv_weight·TV
  (+ temporal_weight·L_temporal when the targets hold earlier frames).
- With `ObjectiveSpec.normalize_gradients` (neural-style's -normalize_gradients) the value is the same, but
  each content and style layer's term passes back its own gradient g (w.r.t. that layer's features)
  divided by ‖g‖₁ + 1e-8, which its weights then multiply: a style layer contributes k·w_l·g/(‖g‖₁+1e-8).
  TV and temporal gradients stay as they are. The result is no longer the gradient of any function.

`make_objective(spec)` is the closure every solver optimises: `fun(x, aux) -> (total, parts)` with
`aux` an `ObjectiveAux` (parameters, targets, loss weights, PRNG key) — the arrays that may change
between runs without recompiling, or be batched over runs.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from nst_jax.objective import statistics
from nst_jax.model import vgg
from nst_jax.model.preprocessing import Preprocessing, preprocess


def _check_nhwc(name: str, x: jnp.ndarray) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: expected NHWC features (B, H, W, C), got shape {tuple(x.shape)}")


def gram(features: jnp.ndarray) -> jnp.ndarray:
    """Gram matrices (B, C, C) of NHWC features, divided by C·H·W (the number of elements)."""
    _check_nhwc("gram", features)
    b, h, w, c = features.shape
    return jax.vmap(statistics.gram_matrix)(features.reshape(b, h * w, c))


L1_EPSILON = 1e-8   # neural-style's: gradInput:div(torch.norm(gradInput, 1) + 1e-8)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def l1_normalised_gradient(term: Callable, f: jnp.ndarray, args) -> jnp.ndarray:
    """`term(f, args)` (a scalar), whose gradient w.r.t. f is g/(‖g‖₁ + 1e-8) with g = ∇_f term: what
    multiplies the value afterwards (the loss weights) multiplies the unit-norm gradient. The arrays in
    `args` (targets, masks, key) get no gradient; `term` must close over no arrays."""
    return term(f, args)


def _l1_forward(term, f, args):
    value, g = jax.value_and_grad(term)(f, args)
    g = g.astype(jnp.float32)
    return value, (g / (jnp.sum(jnp.abs(g)) + L1_EPSILON)).astype(f.dtype)


def _l1_backward(term, unit_gradient, weight):
    return (weight * unit_gradient).astype(unit_gradient.dtype), None


l1_normalised_gradient.defvjp(_l1_forward, _l1_backward)


def _layer_term(term: Callable, f: jnp.ndarray, args, normalize: bool) -> jnp.ndarray:
    return l1_normalised_gradient(term, f, args) if normalize else term(f, args)


def _content_term(f, target):
    return jnp.mean(jnp.square(f.astype(jnp.float32) - target))


def content_loss(features: Mapping[str, jnp.ndarray], targets: Mapping[str, jnp.ndarray],
                 normalize: bool = False) -> jnp.ndarray:
    """Σ over the target layers of the mean squared error between features and targets (same shapes);
    `normalize`: each layer's gradient L1-normalised (`l1_normalised_gradient`)."""
    total = jnp.float32(0.0)
    for name, target in targets.items():
        f = features[name]
        if f.shape != target.shape:
            raise ValueError(f"content_loss: layer {name}: features {f.shape} vs target {target.shape}")
        total = total + _layer_term(_content_term, f, target, normalize)
    return total


def style_loss(features: Mapping[str, jnp.ndarray], target_grams: Mapping[str, jnp.ndarray],
               layer_weights: Mapping[str, float] | None = None) -> jnp.ndarray:
    """Σ_l w_l · mean((gram(F_l) − A_l)²); A_l (B or 1, C, C) precomputed; w_l default 1."""
    total = jnp.float32(0.0)
    for name, target in target_grams.items():
        g = gram(features[name])
        if g.shape[1:] != target.shape[1:]:
            raise ValueError(f"style_loss: layer {name}: gram {g.shape} vs target {target.shape}")
        w = 1.0 if layer_weights is None else layer_weights[name]
        total = total + w * jnp.mean(jnp.square(g - target))
    return total


def temporal_loss(x: jnp.ndarray, frames: jnp.ndarray) -> jnp.ndarray:
    """Σ_j mean(c_j (255·(x − ω_j))²) for images x (B, H, W, C) in [0, 1] and `frames` (J, H, W, C + 1):
    earlier stylised frames warped to this one (ω_j, C channels) and their consistency weights c_j in
    [0, 1] (the last channel); the mean is over B, H, W and C (the D of Ruder et al.)."""
    _check_nhwc("temporal_loss", x)
    if frames.ndim != 4 or frames.shape[1:3] != x.shape[1:3] or frames.shape[3] != x.shape[3] + 1:
        raise ValueError(f"temporal_loss: frames {tuple(frames.shape)} do not match images {tuple(x.shape)} "
                         f"(expected (J, H, W, C + 1))")
    warped, c = frames[None, ..., :-1], frames[None, ..., -1:]
    diff = (x[:, None] - warped) * 255.0
    return jnp.sum(jnp.mean(c * jnp.square(diff), axis=(0, 2, 3, 4)))


def total_variation(x: jnp.ndarray) -> jnp.ndarray:
    """Mean squared difference of vertically and horizontally neighbouring pixels of NHWC images."""
    _check_nhwc("total_variation", x)
    dy = jnp.mean(jnp.square(x[:, 1:] - x[:, :-1])) if x.shape[1] > 1 else 0.0
    dx = jnp.mean(jnp.square(x[:, :, 1:] - x[:, :, :-1])) if x.shape[2] > 1 else 0.0
    return jnp.float32(dy + dx)


class ObjectiveSpec(NamedTuple):
    """The static (shape-defining, hashable) part of an objective: layers, pooling, preprocessing,
    and the style statistic (see `nst_jax.objective.statistics`; 'gram' is Gatys et al.'s)."""

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...]
    pooling: str
    preprocessing: Preprocessing
    statistic: str = "gram"
    remat: bool = False          # rematerialise VGG19's blocks in the backward pass (see vgg.features)
    precision: str = "float32"   # the network's activations: float32, or bfloat16 (statistics stay float32)
    normalize_gradients: bool = False   # each layer term's gradient L1-normalised (see the module docstring)
    native_statistic: bool = False      # the statistic's variant by nst_jax's native library where it has one


class LossWeights(NamedTuple):
    """The dynamic weights of the objective (arrays, so a change or a batch of them does not recompile)."""

    content: Any
    style: Any
    tv: Any
    temporal: Any = 0.0


class StyleTarget(NamedTuple):
    """One style's target at one layer: its blend weight, the statistic's target, and the content
    mask at the layer's resolution (None: the statistic is taken over every position)."""

    weight: float
    value: Any
    mask: Any = None


class Targets(NamedTuple):
    """Precomputed targets: content features per layer, and per style layer a tuple of
    `StyleTarget`s — one when the statistic's targets blend (moments), one per style otherwise,
    and one per style with its region's mask under spatial control."""

    content: dict[str, jnp.ndarray]
    style: dict[str, tuple[StyleTarget, ...]]
    temporal: Any = None   # (J, H, W, C + 1) earlier frames warped to this one, and their weights (video)


class ObjectiveAux(NamedTuple):
    """The objective's array arguments: what a solver passes through to `fun(x, aux)`."""

    params: Any
    targets: Targets
    loss_weights: LossWeights
    key: Any


def features(params, x, spec: ObjectiveSpec, layers: Sequence[str]):
    """The named VGG19 activations of images x (B, H, W, 3 or 1) in [0, 1], as the objective sees them
    (a one-channel image is the luminance-only transfer: the network sees it as grey RGB)."""
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    return vgg.features(params, preprocess(x, spec.preprocessing), tuple(layers), spec.pooling,
                        remat=spec.remat, dtype=jnp.dtype(spec.precision))


def _positions(f):
    """(B, H, W, C) → (M, C) for B = 1 (targets are computed per image)."""
    return f.reshape(-1, f.shape[-1])


def mask_at(mask: jnp.ndarray, layer: str) -> jnp.ndarray:
    """A mask (H, W) at a layer's resolution: 2×2 averages for each pooling before the layer."""
    m = mask.astype(jnp.float32)
    for _ in range(vgg.pools_before(layer)):
        h, w = m.shape[0] // 2, m.shape[1] // 2
        m = m[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
    return m


def compute_targets(params, spec: ObjectiveSpec, content: jnp.ndarray, styles: Sequence[jnp.ndarray],
                    blend: Sequence[float] | None = None, key=None, content_masks=None,
                    style_masks=None) -> Targets:
    """Content features of `content` (1, H, W, 3) and the style statistic's targets of each style
    image (1, h, w, 3), blended with weights `blend` (normalised; default equal).

    With `content_masks` (one (H, W) mask per style; a statistic with `masks`) region k of the content
    gets style k: its target is style k's statistic over `style_masks[k]` (default: all of it), and
    the result's statistic is taken over content mask k."""
    key = jax.random.PRNGKey(0) if key is None else key
    stat = statistics.get(spec.statistic, spec.native_statistic)
    c_feats = features(params, content, spec, spec.content_layers) if spec.content_layers else {}
    c_feats = {k: v.astype(jnp.float32) for k, v in c_feats.items()}
    if content_masks is not None:
        blend = [1.0] * len(styles)
    else:
        blend = [1.0 / len(styles)] * len(styles) if blend is None else [float(b) / sum(blend) for b in blend]
    per_layer: dict[str, list[StyleTarget]] = {name: [] for name in spec.style_layers}
    for k, (style, w) in enumerate(zip(styles, blend)):
        s_feats = features(params, style, spec, spec.style_layers)
        for name in spec.style_layers:
            s_mask = None if content_masks is None or style_masks is None else mask_at(style_masks[k], name)
            c_mask = None if content_masks is None else mask_at(content_masks[k], name)
            per_layer[name].append(StyleTarget(w, stat.target(_positions(s_feats[name]), key, s_mask), c_mask))
    style_targets = {}
    for name, targets in per_layer.items():
        targets = [t for t in targets if t.weight > 0]
        if content_masks is None and stat.blendable and len(targets) > 1:
            mixed = jax.tree.map(lambda *vs: sum(t.weight * v for t, v in zip(targets, vs)),
                                 *[t.value for t in targets])
            targets = [StyleTarget(1.0, mixed)]
        elif content_masks is None and len(targets) == 1:
            targets = [StyleTarget(1.0, targets[0].value)]
        style_targets[name] = tuple(targets)
    return Targets(dict(c_feats), style_targets)


def _style_term(stat: statistics.Statistic):
    """The style term of one layer, `term(f, (targets, key))` = Σ_targets b · mean over the batch of
    loss_stat(F, T, mask)."""
    def term(f, args):
        layer_targets, k = args
        per_item = lambda fi, t, m: stat.loss(fi.reshape(-1, fi.shape[-1]), t, k, m)
        return sum(t.weight * jnp.mean(jax.vmap(per_item, in_axes=(0, None, None))(f, t.value, t.mask))
                   for t in layer_targets)
    return term


def statistic_style_loss(feats: Mapping[str, jnp.ndarray], targets: Mapping[str, tuple[StyleTarget, ...]],
                         layer_weights: Mapping[str, float], statistic: str = "gram", key=None,
                         normalize: bool = False, native: bool = False) -> jnp.ndarray:
    """Σ_l w_l · Σ_targets b · loss_stat(F_l, T, mask) for NHWC features (mean over the batch), in the
    statistic's calibrated units (× `Statistic.scale`); `normalize`: each layer term's gradient
    L1-normalised before w_l multiplies it (`l1_normalised_gradient`); `native`: the statistic's variant by
    nst_jax's native library (`statistics.get`)."""
    stat = statistics.get(statistic, native)
    term = _style_term(stat)
    key = jax.random.PRNGKey(0) if key is None else key
    total = jnp.float32(0.0)
    for i, (name, layer_targets) in enumerate(targets.items()):
        f = feats[name]
        _check_nhwc("style loss", f)
        args = (tuple(layer_targets), jax.random.fold_in(key, i))
        total = total + layer_weights[name] * _layer_term(term, f, args, normalize)
    return total * stat.scale


def objective(x: jnp.ndarray, params, targets: Targets, loss_weights: LossWeights, spec: ObjectiveSpec,
              key=None):
    """Total loss of images x (B, H, W, 3) RGB in [0, 1] and its parts (content, style, tv; temporal
    when the targets hold earlier frames).

    `key` feeds the random statistics (ignored by the others)."""
    layers = tuple(dict.fromkeys(spec.content_layers + spec.style_layers))
    feats = features(params, x, spec, layers)
    lw = dict(zip(spec.style_layers, spec.style_layer_weights))
    lc = content_loss(feats, targets.content, spec.normalize_gradients)
    ls = statistic_style_loss(feats, targets.style, lw, spec.statistic, key, spec.normalize_gradients,
                              spec.native_statistic)
    tv = total_variation(x)
    total = loss_weights.content * lc + loss_weights.style * ls + loss_weights.tv * tv
    parts = {"content": lc, "style": ls, "tv": tv}
    if targets.temporal is not None:
        parts["temporal"] = temporal_loss(x, targets.temporal)
        total = total + loss_weights.temporal * parts["temporal"]
    return total, parts


def make_objective(spec: ObjectiveSpec):
    """The objective as `fun(x, aux) -> (total, parts)` with aux an `ObjectiveAux`."""
    def fun(x, aux: ObjectiveAux):
        return objective(x, aux.params, aux.targets, aux.loss_weights, spec, aux.key)
    return fun
