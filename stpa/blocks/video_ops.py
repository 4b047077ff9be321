"""Layers that run a per-frame 2-D network on clips: fold time into the batch and back.

A clip is `(B, K, H, W, C)` with the number of frames K unknown until run time (`None` in the model's input spec), so
a model trained on K = 3 evaluates K = 25 unchanged. Keras' time-distributed wrapper is not used: in Keras 3 it needs
a static K. Instead the frames are folded into the batch with dynamic reshapes:

  FoldTime:          (B, K, ...)                      -> (B*K, ...)
  UnfoldTime:        [(B*K, ...), clip (B, K, ...)]   -> (B, K, ...)   (B and K read from the clip at run time)
  FlattenPositions:  (B, K, H, W, C)                  -> (B, K*H*W, C) (the X of Eq. 4 / `values` of the STPA losses)

All three are registered Keras layers, so models using them survive `.keras` save/load and SavedModel export; the
functions `fold_time`, `unfold_time` and `flatten_positions` are the same operations on tensors.
"""

from __future__ import annotations

import keras
import tensorflow as tf

_PACKAGE = "stpa"


def fold_time(clip: tf.Tensor) -> tf.Tensor:
    """`(B, K, ...)` -> `(B*K, ...)`, frame k of clip b at row `b*K + k`; B and K may be unknown until run time."""
    shape = tf.shape(clip)
    return tf.reshape(clip, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))  # (B*K, ...)


def unfold_time(folded: tf.Tensor, clip: tf.Tensor) -> tf.Tensor:
    """Undoes `fold_time`: `(B*K, *rest)` -> `(B, K, *rest)`, with B and K read from `clip` `(B, K, ...)`."""
    return tf.reshape(folded, tf.concat([tf.shape(clip)[:2], tf.shape(folded)[1:]], axis=0))  # (B, K, *rest)


def flatten_positions(features: tf.Tensor) -> tf.Tensor:
    """Flattens frame features into position-major rows (the X of Eq. 2 and Eq. 4 of Du et al.).

    Args:
      features: `(B, K, H, W, C)` feature maps of K frames.

    Returns:
      `(B, K*H*W, C)`: row `k*H*W + h*W + w` is the channel vector at frame k, row h, column w.
    """
    shape = tf.shape(features)
    return tf.reshape(features, [shape[0], -1, features.shape[-1]])  # (B, K*H*W, C)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FoldTime(keras.layers.Layer):
    """Folds the frame axis into the batch: `(B, K, ...)` -> `(B*K, ...)`; B and K may be `None`."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """Args: inputs `(B, K, ...)`. Returns: `(B*K, ...)`, frame k of clip b at row `b*K + k`."""
        return fold_time(inputs)

    def compute_output_shape(self, input_shape):
        """`(B, K, *rest)` -> `(B*K, *rest)` (None when B or K is unknown)."""
        batch = None if input_shape[0] is None or input_shape[1] is None else input_shape[0] * input_shape[1]
        return (batch, *input_shape[2:])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UnfoldTime(keras.layers.Layer):
    """Undoes `FoldTime`: `[folded (B*K, ...), clip (B, K, ...)]` -> `(B, K, ...)`.

    B and K are read from `clip` at run time, so the same graph serves any number of frames.
    """

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        """Args: inputs `[folded (B*K, *rest), clip (B, K, ...)]`. Returns: `(B, K, *rest)`."""
        folded, clip = inputs
        return unfold_time(folded, clip)

    def compute_output_shape(self, input_shape):
        """`[(B*K, *rest), (B, K, ...)]` -> `(B, K, *rest)`."""
        folded_shape, clip_shape = input_shape
        return (*clip_shape[:2], *folded_shape[1:])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FlattenPositions(keras.layers.Layer):
    """`(B, K, H, W, C)` -> `(B, K*H*W, C)`, positions in (k, h, w) row-major order.

    The layer form of `flatten_positions`, for use inside functional models: the flattened top-layer features X of
    Eq. 4, the `values` argument of `stpa.losses.interaction_loss`.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """Args: inputs `(B, K, H, W, C)`. Returns: `(B, K*H*W, C)`."""
        return flatten_positions(inputs)

    def compute_output_shape(self, input_shape):
        """`(B, K, H, W, C)` -> `(B, K*H*W, C)` (None when K is unknown)."""
        batch, frames, height, width, channels = input_shape
        positions = None if frames is None else frames * height * width
        return (batch, positions, channels)
