"""Precise BN: re-estimates batch-norm moving statistics as exact averages over training batches.

A Keras `BatchNormalization` keeps exponential moving averages of its batch statistics (momentum 0.99). After a
short schedule those averages still hold part of their initial values (0.99^200 = 13 % after 200 steps), so a
model evaluated in inference mode normalises with statistics that no batch ever had: on the study benchmark's
200-step `--quick` run this made every video's features alike and one class win every video
(experiments/results/quick/why_constant.md). Precise BN (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021;
mmaction2's `PreciseBNHook`, fvcore's `update_bn_stats`) replaces them, after training, by the plain mean over N
training batches of each batch's mean and (biased) variance, with the trained weights unchanged.

`trainer.Trainer` calls it at the last step when `--precise_bn_batches` > 0, before the final validation and
checkpoint. Only trainable BatchNormalization layers are re-estimated: a frozen one (`trainable = False`, e.g. TSN's
partial BN) normalises in inference mode and keeps its statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The trainable BatchNormalization layers of `model`, nested models and layers' sublayers included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)  # Keras' own traversal of sublayers
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]


def recompute_statistics(
    layers: list[keras.layers.BatchNormalization],
    make_forward: Callable[[], Callable[[], None]],
    num_batches: int,
) -> None:
    """Sets each layer's moving mean and variance to the mean of its statistics over `num_batches` batches.

    With momentum 0 a training-mode forward pass leaves exactly the batch's statistics in the moving variables;
    they are read after each batch and averaged (a running mean over batches, in float64).

    Args:
      layers: the BatchNormalization layers to re-estimate (`batch_norm_layers`).
      make_forward: returns a function that runs ONE training batch through the model in training mode. It is
        called after the layers' momentum is set to 0, so a `tf.function` it builds is traced with momentum 0.
      num_batches: N >= 1 batches to average over.

    Raises:
      ValueError: `num_batches` < 1. An error of a forward pass is re-raised with the statistics restored.
    """
    if num_batches < 1:
        raise ValueError(f"precise BN needs at least one batch, got num_batches={num_batches}")
    momenta = [layer.momentum for layer in layers]
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    means = [np.zeros(layer.moving_mean.shape, np.float64) for layer in layers]
    variances = [np.zeros(layer.moving_variance.shape, np.float64) for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        forward = make_forward()
        for index in range(num_batches):
            forward()
            for layer, mean, variance in zip(layers, means, variances):
                mean += (keras.ops.convert_to_numpy(layer.moving_mean) - mean) / (index + 1)
                variance += (keras.ops.convert_to_numpy(layer.moving_variance) - variance) / (index + 1)
    except BaseException:  # a failed pass (e.g. the stream ran out) leaves the statistics as they were
        for layer, (mean, variance) in zip(layers, saved):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    for layer, mean, variance in zip(layers, means, variances):
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
