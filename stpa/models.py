"""The STPA and TSN networks (Du et al., ECCV 2018, Sec. 3.2-3.4, Fig. 2) and the terms of their loss (Eq. 9).

`build_model` makes one stream (RGB or optical flow) of a two-stream network as a functional `keras.Model` on clips
`(B, K, H, W, C)` with K = None, so a model trained on K = 3 frames evaluates K = 25 unchanged:

  model="stpa"  frames -> backbone up to the pyramid taps (per frame, time folded into the batch)
                -> `PyramidAttention` over all K frames (Eq. 1-4) -> M' of the top tap's size
                   (attention="uniform": `UniformAttention`, A fixed at 1/sqrt(n), no parameters: the control that
                   separates the attention from the pooling of features over K frames x positions)
                -> the rest of the *same* backbone after the top tap, unchanged (Sec. 3.1: "preserve the
                   architecture of the network behind the i-th layer"), ending in its global pooling
                -> dropout -> dense logits.
  model="tsn"   the backbone per frame -> dropout -> dense -> class scores averaged over the K frames (TSN's
                segmental consensus): the "without our layer" baseline of Table 1(e).

ST-attn (Meng et al.) is another family (`st_attn.family`); this module never imports it. The families are
registered with the engine in `stpa.family` / `stpa.families`.

The "rest of the backbone" is not re-implemented: the backbone's own functional graph is cut at the top tap and its
layers are re-applied to M' (`_apply_subgraph`), so pretrained weights and the exact architecture carry over for
every backbone in `BACKBONES`.

`attention_outputs_model(model)` exposes the attention tensors the losses and visualisations need, and
`loss_terms(...)` returns every term of Eq. 9 separately so training can log each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf

from stpa import losses as stpa_losses
from stpa.blocks import backbones as backbones_lib
from stpa.blocks.backbones import LEVELS, MODALITIES, TOP_LEVELS, Backbone, WeightsUnavailableError, build_backbone
from stpa.blocks.preprocessing import preprocess_for
from stpa.blocks.video_ops import FlattenPositions, FoldTime, UnfoldTime
from stpa.engine.family import classification_loss, total_loss, weight_decay_loss
from stpa.layers import FUSIONS, PyramidAttention, UniformAttention

MODELS = ("stpa", "tsn")
ATTENTIONS = ("learned", "uniform")  # STPA's A: Eq. 1-3's learned scores, or the uniform control (no parameters).
# Initialisers of W_attn_j (Eq. 2): Keras' default, or zeros (with zero biases every score y^j is 0 at step 0, so A
# starts as the uniform control's; with fusion "mul" the product of zero scores has no gradient: use "sum").
SCORE_INITS = ("glorot_uniform", "zeros")
BACKBONES: Mapping[str, backbones_lib.BackboneSpec] = backbones_lib.BACKBONES
TOPS: dict[str, tuple[str, ...]] = {name: TOP_LEVELS for name in BACKBONES}
DEFAULT_DROPOUT = {"rgb": 0.5, "flow": 0.7}  # Sec. 3.4.
ATTENTION_LAYER = "pyramid_attention"

__all__ = [
    "ATTENTIONS",
    "SCORE_INITS",
    "ATTENTION_LAYER",
    "BACKBONES",
    "DEFAULT_DROPOUT",
    "FUSIONS",
    "MODALITIES",
    "MODELS",
    "TOPS",
    "WeightsUnavailableError",
    "attention_outputs_model",
    "build_model",
    "default_input_size",
    "loss_terms",
    "max_scales",
    "preprocess_for",
    "pyramid_levels",
    "validate_config",
    "weight_decay_loss",
]


def default_input_size(backbone: str) -> int:
    """The square frame size a backbone was pretrained at (299 for Inception-ResNet-V2, 224, 64 for tiny)."""
    return backbones_lib.get_spec(backbone).default_input_size


def max_scales(top: str) -> int:
    """How many levels lie below and including `top` ("A": 2, "B": 3, "C": 4, "fc": 5; fc takes one scale only)."""
    return LEVELS.index(top) + 1


def pyramid_levels(top: str, scales: int) -> tuple[str, ...]:
    """The tap levels of a pyramid, bottom -> top, e.g. ("A", "B", "C") for top="C", scales=3 (Table 1(b))."""
    end = LEVELS.index(top) + 1
    return LEVELS[end - scales : end]


def validate_config(
    model: str,
    backbone: str,
    scales: int,
    top: str,
    modality: str,
    *,
    fusion: str | None = None,
    input_size: int | None = None,
    flow_length: int | None = None,
    attention: str = "learned",
    score_init: str = "glorot_uniform",
) -> None:
    """Fails fast on a network description `build_model` cannot build, listing the allowed values.

    Args:
      model: one of `MODELS`.
      backbone: one of `BACKBONES`.
      scales: number of pyramid layers N (stpa only).
      top: top of the pyramid, one of `TOPS[backbone]` (stpa only).
      modality: "rgb" or "flow".
      fusion: optional, one of `FUSIONS`.
      input_size: optional frame size to check against the backbone.
      flow_length: optional, >= 1.
      attention: one of `ATTENTIONS`; "uniform" for model="stpa" only.
      score_init: one of `SCORE_INITS`; "zeros" for model="stpa" with learned attention and fusion "sum" or "max".

    Raises:
      ValueError: naming the bad argument and its allowed values.
    """
    if model not in MODELS:
        raise ValueError(
            f"Unknown model {model!r} for stpa.models; allowed: {list(MODELS)} (other families, e.g. "
            "st_attn, build through their registered ModelFamily: stpa.engine.family.get_family)."
        )
    if attention not in ATTENTIONS:
        raise ValueError(f"Unknown attention {attention!r}; allowed: {list(ATTENTIONS)}.")
    if attention != "learned" and model != "stpa":
        raise ValueError(
            f"attention={attention!r} applies to model='stpa' only ({model!r} has no attention); use "
            "attention='learned' (the default)."
        )
    if score_init not in SCORE_INITS:
        raise ValueError(f"Unknown score_init {score_init!r}; allowed: {list(SCORE_INITS)}.")
    if score_init != SCORE_INITS[0] and (model != "stpa" or attention != "learned" or fusion == "mul"):
        raise ValueError(
            f"score_init={score_init!r} initialises STPA's learned scores: it needs model='stpa', "
            "attention='learned' and fusion 'sum' or 'max' (a product of zero scores has no gradient, so with "
            "'mul' the scores would never leave zero)."
        )
    spec = backbones_lib.get_spec(backbone)
    if modality not in MODALITIES:
        raise ValueError(f"Unknown modality {modality!r}; allowed: {list(MODALITIES)}.")
    if flow_length is not None and int(flow_length) < 1:
        raise ValueError(f"flow_length must be >= 1; got {flow_length}.")
    backbones_lib.check_input_size(spec, input_size)
    if model != "stpa":
        return
    if fusion is not None and fusion not in FUSIONS:
        raise ValueError(f"Unknown fusion {fusion!r}; allowed: {list(FUSIONS)}.")
    if top not in TOPS[backbone]:
        table = "; ".join(f"{level}: {spec.tap_table[level]}" for level in TOPS[backbone])
        raise ValueError(
            f"top={top!r} is not a pyramid top of {backbone!r}; allowed: {list(TOPS[backbone])} ({table})."
        )
    if top == "fc" and scales != 1:
        raise ValueError(
            f"scales={scales!r} with top='fc': allowed 1 only (Table 1(a)'s X^{{F x 1}} is read as the F pooled "
            "features as F positions of one channel, a layout no lower tap can share); for a multi-scale pyramid "
            f"use top in {[level for level in TOPS[backbone] if level != 'fc']}."
        )
    limit = max_scales(top)
    if not isinstance(scales, int) or not 1 <= scales <= limit:
        raise ValueError(
            f"scales={scales!r} with top={top!r}: allowed 1..{limit} (the levels {list(LEVELS[:limit])} of "
            f"{backbone!r}, taken from the top down)."
        )


def _apply_subgraph(inputs: keras.KerasTensor, outputs, new_inputs: keras.KerasTensor):
    """Re-applies the layers of a functional graph between `inputs` and `outputs` to `new_inputs`.

    The layers are shared, not copied: their weights stay the pretrained ones, and the new graph contains each of
    them once, so the resulting model saves and reloads like any functional model. `inputs` may be an intermediate
    tensor (e.g. a pyramid tap): `keras.Function` then fails if any layer between it and `outputs` needs another
    tensor (a residual branch from before the tap), which never happens for the taps of `stpa.blocks.backbones`.

    Args:
      inputs: a tensor of a functional graph (the graph's input or an intermediate tensor).
      outputs: a tensor or list of tensors of that graph computed from `inputs` alone.
      new_inputs: the tensor to run the same layers on.

    Returns:
      The tensors corresponding to `outputs`, computed from `new_inputs`.
    """
    subgraph = keras.Function(inputs, outputs)
    return subgraph.call(new_inputs)  # `call` runs the layers one by one (a flat graph), unlike `__call__`.


def _classifier(features, num_classes: int, dropout: float):
    """Dropout -> dense logits (float32 also under mixed precision)."""
    if dropout:
        features = keras.layers.Dropout(dropout, name="dropout")(features)
    return keras.layers.Dense(num_classes, dtype="float32", name="classifier")(features)


def _stpa_head(
    backbone: Backbone,
    clip: keras.KerasTensor,
    num_classes: int,
    levels: Sequence[str],
    fusion: str,
    dropout: float,
    attention: str = "learned",
    score_init: str = "glorot_uniform",
) -> keras.KerasTensor:
    """Builds the STPA graph on `clip` (B, K, H, W, C); returns logits (B, num_classes).

    attention="uniform" swaps `PyramidAttention` for `UniformAttention` (same name, inputs and outputs) and leaves
    every other layer as it is.
    """
    top = levels[-1]
    trunk = backbone.trunk
    frames = FoldTime(name="fold_time")(clip)  # (B*K, H, W, C)
    folded_taps = _apply_subgraph(trunk.input, [backbone.taps[level] for level in levels], frames)
    pyramid = []
    for level, tap in zip(levels, folded_taps):
        if level == "fc":  # Table 1(a)'s X^{F x 1}: the F pooled features as F positions of one channel.
            tap = keras.layers.Reshape((tap.shape[-1], 1, 1), name="fc_map")(tap)  # (B*K, F, 1, 1)
        pyramid.append(UnfoldTime(name=f"unfold_{level}")([tap, clip]))  # (B, K, H_j, W_j, C_j)
    if attention == "uniform":
        attention_layer = UniformAttention(name=ATTENTION_LAYER)
    else:
        attention_layer = PyramidAttention(fusion=fusion, kernel_initializer=score_init, name=ATTENTION_LAYER)
    attended, _, _ = attention_layer(pyramid, return_attention=True)
    # attended: M' (B, H, W, C) of the top tap's size.
    if top == "fc":
        features = keras.layers.Flatten(name="attended_features")(attended)  # M' (B, F, 1, 1) -> (B, F)
    else:
        features = _apply_subgraph(backbone.taps[top], trunk.output, attended)  # Rest of the backbone: (B, F)
    return _classifier(features, num_classes, dropout)


def _tsn_head(backbone: Backbone, clip: keras.KerasTensor, num_classes: int, dropout: float) -> keras.KerasTensor:
    """Builds the TSN graph on `clip` (B, K, H, W, C); returns the K-frame average of the logits (B, num_classes)."""
    frames = FoldTime(name="fold_time")(clip)  # (B*K, H, W, C)
    features = _apply_subgraph(backbone.trunk.input, backbone.trunk.output, frames)  # (B*K, F)
    frame_logits = _classifier(features, num_classes, dropout)  # (B*K, num_classes)
    frame_logits = UnfoldTime(name="unfold_logits")([frame_logits, clip])  # (B, K, num_classes)
    return keras.layers.GlobalAveragePooling1D(dtype="float32", name="consensus")(frame_logits)  # (B, num_classes)


def build_model(
    model: str = "stpa",
    backbone: str = "inception_resnet_v2",
    num_classes: int = 101,
    modality: str = "rgb",
    scales: int = 3,
    top: str = "C",
    fusion: str = "mul",
    flow_length: int = 5,
    dropout: float | None = None,
    weights: str | None = None,
    input_size: int | None = None,
    *,
    partial_bn: bool = False,
    frozen_bn: bool = False,
    attention: str = "learned",
    score_init: str = "glorot_uniform",
    **extra,
) -> keras.Model:
    """Builds one stream of an STPA or TSN two-stream network.

    Args:
      model: "stpa" or "tsn".
      backbone: a key of `BACKBONES` ("inception_resnet_v2", "vgg16", "bn_inception", "resnet50", "resnet101",
        "resnet152", "tiny").
      num_classes: number of classes.
      modality: "rgb" (input channels 3) or "flow" (2 * flow_length channels, x/y interleaved as in TSN).
      scales: pyramid layers N (Table 1(b)); stpa only.
      top: top of the pyramid (Table 1(a)): "A", "B", "C" or "fc" (see `BACKBONES[backbone].tap_table`); "fc" reads
        the paper's X^{1536 x 1} as the F pooled features as F positions of one channel (d = F, n = K*F) and takes
        scales=1 only.
      fusion: fusion F of Eq. 3: "mul" (default, Table 1(c)), "sum" or "max"; no effect with attention="uniform".
      flow_length: optical-flow frames per stack.
      dropout: dropout before the classifier; None: 0.5 for RGB, 0.7 for flow (Sec. 3.4).
      weights: None / "none", "imagenet" or the path of a backbone weights file (see `stpa.blocks.backbones`); a flow
        stream built from RGB weights gets TSN's cross-modality initialisation.
      input_size: square frame size (None: the backbone's default, `default_input_size`).
      partial_bn: freeze every BatchNormalization of the backbone but the first (TSN's partial BN).
      frozen_bn: freeze every BatchNormalization of the backbone (`--frozen_bn`):
        each clip's output then depends on that clip only, so data-parallel training over any number of replicas
        or workers equals one device on the global batch (tests/stpa/test_multi_worker.py).
      attention: stpa only, one of `ATTENTIONS`: "learned" (Eq. 1-3, the paper) or "uniform" (the control: A fixed
        at its uniform value under Eq. 3's normalisation, 1/sqrt(n) with n = K*H*W, so M' is sqrt(n) times the
        average of the top tap over frames and positions; no score parameters, the rest of the network unchanged;
        see `stpa.layers.UniformAttention`).
      score_init: stpa with learned attention only, one of `SCORE_INITS`: the initialiser of W_attn_j (Eq. 2).
        "zeros" with fusion="sum" starts A exactly at the uniform control's value, so training moves it away from
        uniform only where that lowers the loss.
      **extra: not allowed (a clear error names them).

    Returns:
      A functional `keras.Model`: frames `(B, K, H, W, C)` with K = None -> logits `(B, num_classes)`.

    Raises:
      ValueError: invalid combination (see `validate_config`) or unknown extra arguments.
      FileNotFoundError, stpa.blocks.backbones.WeightsUnavailableError: weights that cannot be loaded.
    """
    validate_config(
        model,
        backbone,
        scales,
        top,
        modality,
        fusion=fusion,
        input_size=input_size,
        flow_length=flow_length,
        attention=attention,
        score_init=score_init,
    )
    if extra:
        raise ValueError(f"Unknown build_model arguments for model={model!r}: {sorted(extra)}.")
    if dropout is None:
        dropout = DEFAULT_DROPOUT[modality]
    built = build_backbone(
        backbone,
        input_size=input_size,
        modality=modality,
        flow_length=flow_length,
        weights=weights,
        partial_bn=partial_bn,
    )
    if frozen_bn:
        for layer in built.trunk.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # Inference mode: moving statistics, no gamma/beta updates.
    frame_shape = tuple(built.trunk.input.shape[1:])
    clip = keras.Input((None, *frame_shape), name="frames")  # (B, K, H, W, C)
    if model == "stpa":
        levels = pyramid_levels(top, scales)
        logits = _stpa_head(built, clip, num_classes, levels, fusion, dropout, attention, score_init)
    else:
        logits = _tsn_head(built, clip, num_classes, dropout)
    return keras.Model(clip, logits, name=f"{model}_{backbone}_{modality}")


def _find_layer(model: keras.Model, layer_type: type | tuple[type, ...]) -> keras.layers.Layer | None:
    """The first top-level layer of `layer_type` in `model`, or None."""
    return next((layer for layer in model.layers if isinstance(layer, layer_type)), None)


def attention_outputs_model(model: keras.Model) -> keras.Model:
    """A model with the same inputs and weights as `model` and dict outputs for the losses and visualisations.

    Outputs:
      "logits": `(B, num_classes)`, always;
      STPA: "attention" `(B, d, n)` (A of Eq. 3, d = H*W, n = K*H*W), "scale_logits" list of N `(B, d, n)` (y^j of
        Eq. 2), "values" `(B, n, C)` (the flattened top-layer features X of Eq. 4); with attention="uniform" A is
        1/sqrt(n) everywhere and the y^j are zeros (the scores that give that A).

    The tensors are taken from the model's own functional graph (the attention layer's outputs), so one forward pass
    computes everything, and it works as well on a model reloaded from `.keras`.

    Args:
      model: a model from `build_model` (or reloaded from one), not wrapped in another model.

    Returns:
      A functional `keras.Model`.
    """
    outputs = {"logits": model.output}
    attention_layer = _find_layer(model, (PyramidAttention, UniformAttention))
    if attention_layer is not None:
        pyramid = keras.tree.flatten(attention_layer.input)  # N tensors (B, K, H_j, W_j, C_j), bottom -> top
        node_outputs = keras.tree.flatten(attention_layer.output)  # [M', A, y^1, ..., y^N]
        if len(node_outputs) != 2 + len(pyramid):
            raise ValueError(
                f"The {type(attention_layer).__name__} layer of {model.name!r} was not called with "
                "return_attention=True; build the model with stpa.models.build_model."
            )
        attention, scale_logits = node_outputs[1], node_outputs[2:]
        outputs["attention"] = attention
        outputs["scale_logits"] = list(scale_logits)
        outputs["values"] = FlattenPositions(name="values")(pyramid[-1])  # (B, n, C)
    return keras.Model(model.input, outputs, name=f"{model.name}_outputs")


def loss_terms(
    outputs: Mapping[str, tf.Tensor],
    labels: tf.Tensor,
    model: keras.Model,
    *,
    weight_decay: float = 4e-5,
    beta: float = 1e-4,
    gamma: float = 1e-4,
    multi_label: bool = False,
    interaction_gradient: str = "attention",
    interaction_normalization: str = "covariance",
) -> dict[str, tf.Tensor]:
    """Every term of the training objective, each already multiplied by its coefficient.

    STPA, Eq. 9: `L = CE + lambda sum w^2 + beta l_interactive (Eq. 6) + gamma l_attn (Eq. 7-8)`, with the paper's
    lambda = 4e-5 and beta = gamma = 1e-4 (Sec. 3.4). TSN outputs (no "attention") give CE + lambda sum w^2.

    Args:
      outputs: the dict of `attention_outputs_model(model)(frames)`.
      labels: int `(B,)` or multi-hot `(B, num_classes)` when `multi_label`.
      model: the model whose trainable kernels are decayed.
      weight_decay: lambda of Eq. 9 (0: no term).
      beta: coefficient of the interaction loss (0: no term; Table 1(d)).
      gamma: coefficient of the attention loss (0: no term; Table 1(d)).
      multi_label: sigmoid instead of softmax cross-entropy.
      interaction_gradient: `stpa.losses.interaction_loss`'s `gradient`: "attention" (X is data in Eq. 5's argmin,
        the default) or "both" (the gradient also reaches X: the behaviour before this option existed).
      interaction_normalization: `stpa.losses.interaction_loss`'s `normalization`: "covariance" (X X^T / C, the
        default) or "none" (the printed X X^T).

    Returns:
      float32 scalars: "classification", "weight_decay", "interaction", "attention" (STPA) -- a term whose
      coefficient is 0 is absent -- and "total", their sum.
    """
    terms = {"classification": classification_loss(labels, outputs["logits"], multi_label)}
    if weight_decay:
        terms["weight_decay"] = weight_decay * weight_decay_loss(model)
    if "attention" in outputs:
        if beta:
            terms["interaction"] = beta * stpa_losses.interaction_loss(
                outputs["attention"],
                outputs["values"],
                gradient=interaction_gradient,
                normalization=interaction_normalization,
            )
        if gamma:
            terms["attention"] = gamma * stpa_losses.attention_loss(outputs["attention"], outputs["scale_logits"])
    return total_loss(terms)
