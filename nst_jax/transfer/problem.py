"""The pure core of a run: from images in memory and a plan, the objective's static spec, its targets,
the initial image and the loss weights (`build_problem`). The bench and the studies call it with
their own arrays; `prepare` also loads the weights and the inputs.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from nst_jax.machine import compiler
from nst_jax.files import image
from nst_jax.model import layers, vgg
from nst_jax.objective import losses
from nst_jax.model import weights as vgg_weights
from nst_jax.transfer.config import Config
from nst_jax.transfer.inputs import Inputs, initial_image, load_inputs
from nst_jax.transfer.planning import RunPlan, plain


class Problem(NamedTuple):
    """Everything a solver needs, computed once: images (H, W, C), x0, the objective's parts."""

    content: np.ndarray
    styles: list[np.ndarray]
    x0: np.ndarray
    spec: losses.ObjectiveSpec
    params: Any
    targets: losses.Targets
    loss_weights: losses.LossWeights
    weights_info: dict
    chroma: np.ndarray | None = None  # the content's I, Q (H, W, 2) when optimising luminance only

    def to_rgb(self, x: np.ndarray) -> np.ndarray:
        """The optimised variable (H, W, 3 or 1) as an RGB image (recombined with the content's chroma)."""
        x = np.asarray(x, np.float32)
        if self.chroma is None:
            return x
        return image.yiq_to_rgb(np.concatenate([x[..., :1], self.chroma], axis=-1))

    def aux(self, key) -> losses.ObjectiveAux:
        return losses.ObjectiveAux(self.params, self.targets, self.loss_weights, key)


def build_problem(cfg: Config, weights: vgg_weights.Weights, inputs: Inputs, plan: RunPlan | None = None) -> Problem:
    """Colour handling, the objective's spec and targets, the initial image and the loss weights, from
    images already in memory. `plan`: the run's (`planning.plan_run`); default the one-device
    `planning.plain`."""
    plan = plan or plain(cfg)
    content, styles = inputs.content, list(inputs.styles)
    chroma = None
    if cfg.original_colors == "histogram":
        styles = [image.match_color_histogram(s, content) for s in styles]
    elif cfg.original_colors == "luminance":
        yiq = image.rgb_to_yiq(content)
        chroma = yiq[..., 1:]
        content = yiq[..., :1]
        styles = [image.match_luminance(image.rgb_to_yiq(s)[..., :1], content) for s in styles]
    spec, params = objective_spec(cfg, weights, plan), run_params(cfg, weights, plan)
    blend = None if cfg.style_blend_weights is None else tuple(cfg.style_blend_weights)
    as_masks = lambda ms: None if ms is None else [jnp.asarray(m) for m in ms]
    targets = targets_fn(spec, blend)(params, jnp.asarray(content[None]), [jnp.asarray(s[None]) for s in styles],
                                      as_masks(inputs.content_masks), as_masks(inputs.style_masks))
    if inputs.temporal is not None:
        frames = inputs.temporal
        if chroma is not None:
            frames = np.concatenate([image.rgb_to_yiq(frames[..., :3])[..., :1], frames[..., 3:]], axis=-1)
        targets = targets._replace(temporal=jnp.asarray(frames))
    x0 = initial_image(cfg, content, styles, weights.preprocessing, inputs.init_image)
    if chroma is not None and x0.shape[-1] == 3:
        x0 = image.rgb_to_yiq(x0)[..., :1]
    loss_weights = losses.LossWeights(*(jnp.float32(v) for v in (cfg.content_weight, cfg.style_weight,
                                                                  cfg.tv_weight, cfg.temporal_weight)))
    return Problem(content, styles, x0, spec, params, targets, loss_weights, weights.info, chroma)


def objective_spec(cfg: Config, weights: vgg_weights.Weights, plan: RunPlan | None = None) -> losses.ObjectiveSpec:
    """The objective's static part; the statistic's native variant (`statistics.get`) as the plan's forms
    say (`Forms.native_gram`: planned with the fused forms, or as a continued run recorded)."""
    plan = plan or plain(cfg)
    return losses.ObjectiveSpec(cfg.content_layers, cfg.style_layers, tuple(cfg.layer_weights), cfg.pooling,
                                weights.preprocessing, cfg.style_statistic, plan.remat, plan.precision,
                                cfg.normalize_gradients, plan.forms.native_gram)


def run_params(cfg: Config, weights: vgg_weights.Weights, plan: RunPlan | None = None):
    """The network's parameters a run uses, with the derived kernels of its convolution forms."""
    plan = plan or plain(cfg)
    return layers.prepare_params(vgg.params_upto(weights.params, cfg.content_layers + cfg.style_layers),
                                 forms=plan.forms.as_dict(), dtype=jnp.dtype(plan.precision))


def prepare(cfg: Config, loaded_weights: vgg_weights.Weights | None = None, plan: RunPlan | None = None) -> Problem:
    """Load weights (unless given) and the inputs, and build the problem."""
    w = loaded_weights if loaded_weights is not None else vgg_weights.load(cfg.weights)
    return build_problem(cfg, w, load_inputs(cfg), plan)


@functools.lru_cache(maxsize=32)
def targets_fn(spec: losses.ObjectiveSpec, blend: tuple | None):
    return compiler.jit(lambda p, c, s, cm, sm: losses.compute_targets(p, spec, c, s, blend, None, cm, sm))
