"""The ST-attn network (Fig. 1 of Meng et al., 2019): frame features -> spatial mask -> attentive ConvLSTM -> logits.

Two input modes:
  - frames: `(B, n, H, W, C_in)` preprocessed frames run through a per-frame `feature_extractor` (the last conv block
    of a ResNet in the paper, 7x7x2048 at 224; Table 4) by folding time into the batch, trained end to end;
  - cached features: `(B, n, h, w, C)` backbone features extracted once (`st_attn.features`), how the authors trained.

The ST-attn family (`st_attn.family.StAttnFamily.build`) builds the backbone's feature extractor
(`stpa.blocks.backbones.feature_extractor`) and calls `build_st_attn_network`, or calls it on cached features. The layer
names are part of the interface: `spatial_attention_mask` outputs the mask `(B, n, h, w, 1)`, `temporal_attention`
outputs `[H_bar (B, h, w, units), weights (B, n_steps, n)]`; `attention_endpoints(model)` returns them by name, also
for a model reloaded from `.keras`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from st_attn import layers as st_layers
from stpa.blocks.video_ops import FoldTime, UnfoldTime

MASK_LAYER = "spatial_attention_mask"
TEMPORAL_LAYER = "temporal_attention"
AVERAGE_LAYER = "frame_and_position_average"
POOLINGS = ("attention", "average")
NO_ATTENTION_ERROR = (
    'this is the average-pooling baseline (--pooling=average, Meng et al. Table 2 "w/o attention"): '
    "it has no attention to localise or visualise."
)


def build_st_attn_network(
    num_classes: int,
    *,
    feature_extractor: keras.Model | None = None,
    feature_shape: Sequence[int | None] | None = None,
    spatial_attention: bool = True,
    temporal_attention: bool = True,
    mask_filters: Sequence[int] = (1024, 512),
    initial_mask: float = 0.5,
    lstm_units: int = 512,
    init_filters: int = 1024,
    attention_units: int = 256,
    energy: str = "tanh",
    dropout: float | None = 0.5,
    name: str = "st_attn",
    project_frames: bool = True,
    parallel_iterations: int = 1,
    pooling: str = "attention",
) -> keras.Model:
    """Builds the spatio-temporal attention network of Meng et al. (Sec. 3, Fig. 1).

    features X (B, n, h, w, C) -> [spatial_attention_mask: M (B, n, h, w, 1); Eq. 1: X~ = X ⊙ M]
    -> temporal_attention (Eq. 2-5): H_bar (B, h, w, units) -> global average pooling -> dropout -> dense logits.

    Args:
      num_classes: number of classes.
      feature_extractor: a per-frame network `(B', H, W, C_in) -> (B', h, w, C)` (e.g. a ResNet without its top);
        the model input is then frames `(B, n, H, W, C_in)`. Exclusive with `feature_shape`.
      feature_shape: `(h, w, C)` of cached features (h, w may be None); the model input is `(B, n, h, w, C)`.
      spatial_attention: False for Table 2's "w/o spatial attention" (X~ = X, no mask layer).
      temporal_attention: False for Table 2's "w/o temporal attention" (the ConvLSTM reads frame t at step t).
      mask_filters: widths of the mask's hidden convolutions (Table 1: 1024, 512).
      initial_mask: the mask's value at initialisation (see `SpatialAttentionMask`).
      lstm_units: ConvLSTM hidden channels (Sec. 4.1: 512).
      init_filters: width of the first conv of g_c / g_h (Eq. 5).
      attention_units: width of Φ_H / Φ_X (Eq. 2).
      energy: "tanh" (default) or "linear" (see `TemporalAttentionConvLSTM`).
      dropout: dropout rate before the classifier (None or 0 for none).
      name: the model's name.
      project_frames: the ConvLSTM's input convolution once over all frames (see `TemporalAttentionConvLSTM`).
      parallel_iterations: the ConvLSTM loop's parallel iterations (see `TemporalAttentionConvLSTM`).
      pooling: "attention" (the model above) or "average": Table 2's "w/o attention" baseline, X (B, n, h, w, C) ->
        mean over n, h, w (B, C) -> dropout -> dense logits; no mask, no ConvLSTM, the attention options unused.

    Returns:
      A functional `keras.Model` with n = None: `(B, n, ...)` -> logits `(B, num_classes)`.
    """
    if (feature_extractor is None) == (feature_shape is None):
        raise ValueError("Pass exactly one of feature_extractor (frames input) or feature_shape (cached features).")
    if feature_extractor is not None:
        frame_shape = tuple(feature_extractor.input_shape[1:])
        inputs = keras.Input((None, *frame_shape), name="frames")
        folded = FoldTime(name="fold_time")(inputs)  # (B*n, H, W, C_in)
        folded_features = feature_extractor(folded)  # (B*n, h, w, C)
        features = UnfoldTime(name="unfold_time")([folded_features, inputs])  # (B, n, h, w, C)
    else:
        if len(feature_shape) != 3:
            raise ValueError(f"feature_shape must be (h, w, C); got {feature_shape}.")
        inputs = keras.Input((None, *feature_shape), name="features")
        features = inputs

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
    if pooling == "average":
        pooled = st_layers.FrameAndPositionAveragePooling(name=AVERAGE_LAYER)(features)  # (B, C)
        return _classifier(inputs, pooled, num_classes, dropout, name)
    if spatial_attention:
        mask = st_layers.SpatialAttentionMask(filters=mask_filters, initial_mask=initial_mask, name=MASK_LAYER)(
            features
        )
        masked = st_layers.ApplySpatialMask(name="masked_features")([features, mask])
    else:
        masked = features
    mean_hidden, _ = st_layers.TemporalAttentionConvLSTM(
        units=lstm_units,
        init_filters=init_filters,
        attention_units=attention_units,
        energy=energy,
        temporal_attention=temporal_attention,
        project_frames=project_frames,
        parallel_iterations=parallel_iterations,
        name=TEMPORAL_LAYER,
    )(masked)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(mean_hidden)  # (B, units)
    return _classifier(inputs, pooled, num_classes, dropout, name)


def _classifier(inputs, pooled, num_classes: int, dropout: float | None, name: str) -> keras.Model:
    """`pooled (B, C)` -> dropout (if any) -> Dense "logits" `(B, num_classes)`; the model from `inputs`."""
    if dropout:
        pooled = keras.layers.Dropout(dropout, name="dropout")(pooled)
    logits = keras.layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(inputs, logits, name=name)


def require_attention(model: keras.Model) -> None:
    """Raises the one-line `NO_ATTENTION_ERROR` for the average-pooling baseline (it has nothing to localise)."""
    if AVERAGE_LAYER in {layer.name for layer in model.layers}:
        raise ValueError(NO_ATTENTION_ERROR)


def attention_endpoints(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """The attention tensors of an ST-attn functional model, by layer name.

    Args:
      model: a model from `build_st_attn_network` (possibly nested in or reloaded from `.keras`).

    Returns:
      {"mask": (B, n, h, w, 1) if the model has spatial attention, "temporal_weights": (B, n_steps, n)}; {} for the
      average-pooling baseline (`pooling="average"`), which has no attention.
    """
    endpoints = {}
    names = {layer.name for layer in model.layers}
    if AVERAGE_LAYER in names:
        return endpoints
    if MASK_LAYER in names:
        endpoints["mask"] = model.get_layer(MASK_LAYER).output
    if TEMPORAL_LAYER not in names:
        raise ValueError(f"Model {model.name!r} has no {TEMPORAL_LAYER!r} layer: is it an ST-attn model?")
    endpoints["temporal_weights"] = model.get_layer(TEMPORAL_LAYER).output[1]
    return endpoints


def attention_model(model: keras.Model) -> keras.Model:
    """Same inputs and weights as `model`; dict outputs "logits", "temporal_weights" and (if any) "mask"."""
    outputs = {"logits": model.output, **attention_endpoints(model)}
    return keras.Model(model.input, outputs, name=f"{model.name}_attention")
