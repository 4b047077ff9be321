"""Builds a tiny ST-attn network whose attention is fixed by hand, for the command-line tests.

Every spatial-mask entry is one constant (the last mask convolution's kernel zeroed, its bias the logit of the
constant) and the temporal attention is uniform (softmax of zero energies: v = 0). Optionally the logits are fixed
too (the classifier's kernel zeroed, its bias given), so the tests can compute every output the commands derive.
"""

import keras
import numpy as np

from st_attn import models


def assign(layer: keras.Layer, values: dict[str, np.ndarray | float]) -> None:
    """Sets the weights of `layer` whose paths end with a key of `values` (e.g. "conv2/bias"), broadcasting."""
    assigned = set()
    for variable in layer.weights:
        for suffix, value in values.items():
            if variable.path.endswith(suffix):
                variable.assign(np.broadcast_to(value, variable.shape).astype(variable.dtype))
                assigned.add(suffix)
    assert assigned == set(values), (sorted(assigned), [v.path for v in layer.weights])


def known_attention_model(
    *,
    input_size: int,
    feature_filters: int,
    mask_filters: tuple[int, ...],
    mask_value: float,
    logits_bias: np.ndarray | None = None,
) -> keras.Model:
    """A 2-class network on a one-convolution trunk (stride 4) with constant mask and uniform temporal attention.

    Args:
      input_size: frame side the trunk takes.
      feature_filters: channels of the trunk's feature map.
      mask_filters: hidden widths of the mask convolutions; the last convolution is `conv{len + 1}`.
      mask_value: the value in (0, 1) of every mask entry.
      logits_bias: when given, shape [2]: the logits of every clip (the classifier's kernel is zeroed).

    Returns:
      The built model.
    """
    frames = keras.Input((input_size, input_size, 3))
    extractor = keras.Model(frames, keras.layers.Conv2D(feature_filters, 3, strides=4, padding="same")(frames))
    model = models.build_st_attn_network(
        2, feature_extractor=extractor, mask_filters=mask_filters, lstm_units=4, init_filters=4, attention_units=4
    )
    last = f"conv{len(mask_filters) + 1}"
    assign(
        model.get_layer(models.MASK_LAYER),
        {f"{last}/kernel": 0.0, f"{last}/bias": np.log(mask_value / (1.0 - mask_value))},
    )
    assign(model.get_layer(models.TEMPORAL_LAYER), {"v/kernel": 0.0})
    if logits_bias is not None:
        assign(model.get_layer("logits"), {"logits/kernel": 0.0, "logits/bias": np.asarray(logits_bias)})
    return model
