"""The interaction-aware spatio-temporal pyramid attention layer (Du et al., ECCV 2018, Sec. 3.1-3.2).

`PyramidAttention` aggregates the feature maps of K frames, taken at N layers of a CNN (the pyramid), into one
group of attention maps of the top layer's size, so the network behind the top layer runs unchanged on it:

  Eq. 1  f'_j = R(f_j)                         max pooling of every lower layer to the top layer's H x W;
  Eq. 2  Y_j  = W_attn_j X_j^T (+) b_attn_j    per-scale attention scores, d = H*W rows;
  Eq. 3  a    = softmax(F(y^1, ..., y^N))      fusion F of the raw scores, softmax over all K*H*W positions,
                                               then each row L2-normalised;
  Eq. 4  M    = A X_top                        reshaped to M' of shape (H, W, C_top).

Shapes: B batch, K frames (may be unknown until run time), N pyramid layers ordered bottom -> top, H, W, C the
top layer's size, d = H*W attention rows, n = K*H*W positions flattened in (k, h, w) row-major order.

`UniformAttention` is the control with the same inputs and outputs and no parameters: A is fixed at the value Eq. 3
gives for scores y^j = 0 (softmax 1/n, then L2 rows: every entry 1/sqrt(n)), so M' is the average of the top layer
over all K*H*W positions, times sqrt(n), at every output position: attention and feature pooling separate.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from stpa.blocks.adaptive_pooling import _bin_rows, adaptive_max_pool, adaptive_max_pool_rows  # noqa: F401
from stpa.blocks.video_ops import flatten_positions  # The one implementation of the (k, h, w) order.

FUSIONS = ("max", "sum", "mul")


def pyramid_downsample(features: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Eq. 1: the down-sampling R(.) of a lower pyramid layer to the top layer's spatial size.

    Max pooling with PyTorch `AdaptiveMaxPool2d` bins (`start = floor(i*H_in/H_out)`,
    `end = ceil((i+1)*H_in/H_out)`), so non-integer ratios such as 35 -> 8 or 17 -> 8 work like 2 -> 1. It has no
    parameters (Sec. 3.4: max pooling beat average pooling and convolution).

    Args:
      features: `(B, K, H_j, W_j, C_j)` feature maps of a lower pyramid layer.
      height: the top layer's H.
      width: the top layer's W.

    Returns:
      `(B, K, height, width, C_j)`.
    """
    shape = tf.shape(features)
    in_height, in_width, channels = features.shape[2:]
    frames = tf.reshape(features, [-1, in_height, in_width, channels])  # (B*K, H_j, W_j, C_j)
    if (in_height, in_width) == (height, width):
        pooled = frames
    elif min(height, width) > 1:
        pooled = adaptive_max_pool(frames, height, width)  # (B*K, H, W, C_j)
    else:
        # Keras 3.15's adaptive pooling pools with a window of in_size + 1 for an output size of 1 and crashes, so
        # 1-pixel outputs (the "fc" top of Table 1(a)) take the PyTorch bins explicitly.
        rows = [
            tf.reduce_max(frames[:, (i * in_height) // height : -(-((i + 1) * in_height) // height)], axis=1)
            for i in range(height)
        ]
        frames = tf.stack(rows, axis=1)  # (B*K, H, W_j, C_j)
        columns = [
            tf.reduce_max(frames[:, :, (i * in_width) // width : -(-((i + 1) * in_width) // width)], axis=2)
            for i in range(width)
        ]
        pooled = tf.stack(columns, axis=2)  # (B*K, H, W, C_j)
    return tf.reshape(pooled, [shape[0], shape[1], height, width, channels])


def fuse_scores(scale_logits: Sequence[tf.Tensor], fusion: str) -> tf.Tensor:
    """The fusion function F of Eq. 3, applied element-wise to the raw per-scale scores before the softmax.

    Args:
      scale_logits: N tensors `(B, d, n)`, the y^j of Eq. 2.
      fusion: "max" (element-wise maximum), "sum" (element-wise sum) or "mul" (element-wise product), Table 1(c).

    Returns:
      `(B, d, n)` fused scores.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}.")
    fused = scale_logits[0]
    for logits in scale_logits[1:]:
        if fusion == "max":
            fused = tf.maximum(fused, logits)
        elif fusion == "sum":
            fused = fused + logits
        else:
            fused = fused * logits
    return fused


def check_pyramid_shapes(shapes: Sequence[Sequence[int | None]], owner: str) -> None:
    """Raises ValueError for an empty pyramid, rank != 5, unknown H, W, C, or inputs whose batch or K disagree.

    Args:
      shapes: the N input shapes `(B, K, H_j, W_j, C_j)`, bottom -> top.
      owner: the layer's class name, for the messages.
    """
    if not shapes:
        raise ValueError(f"{owner} needs a non-empty list of (B, K, H, W, C) tensors, got an empty list.")
    for index, shape in enumerate(shapes):
        if len(shape) != 5:
            raise ValueError(f"{owner} input {index} must have rank 5 (B, K, H, W, C), got shape {tuple(shape)}.")
        if any(dim is None for dim in shape[2:]):
            raise ValueError(
                f"{owner} input {index} needs static H, W, C (only B and K may be None), got shape {tuple(shape)}."
            )
    for axis, name in ((0, "batch size"), (1, "number of frames K")):
        known = {tuple(shape)[axis] for shape in shapes} - {None}
        if len(known) > 1:
            raise ValueError(f"{owner} inputs must share the {name}; got shapes {[tuple(s) for s in shapes]}.")


@keras.saving.register_keras_serializable(package="stpa")
class PyramidAttention(keras.layers.Layer):
    """Interaction-aware spatio-temporal pyramid attention, Eq. 1-4 of Du et al. (ECCV 2018).

    Call with a list of N >= 1 tensors ordered bottom -> top, each `(B, K, H_j, W_j, C_j)`; the last one is the top
    layer of the pyramid whose features are aggregated. K may be unknown when the layer is traced, and the
    parameters do not depend on K (Sec. 3.2): a layer built with K = 3 runs unchanged on K = 25.

    Weights, in `get_weights()` order, bottom -> top: `kernel_j` `(C_j, d)` (the transposed W_attn_j of Eq. 2) then
    `bias_j` `(d,)`, with d = H*W of the top layer.

    In mixed precision the scores are fused, soft-maxed and normalised in float32; `M = A X` runs in the compute
    dtype.

    Args:
      fusion: the fusion function F of Eq. 3: "max", "sum" or "mul" (the paper's default, Table 1(c)).
      kernel_initializer: initializer of the `kernel_j`.
      bias_initializer: initializer of the `bias_j`.
      **kwargs: standard `keras.layers.Layer` arguments (name, dtype, ...).
    """

    def __init__(
        self,
        fusion: str = "mul",
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if fusion not in FUSIONS:
            raise ValueError(f"PyramidAttention fusion must be one of {FUSIONS}, got {fusion!r}.")
        self.fusion = fusion
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @staticmethod
    def _check_shapes(shapes: Sequence[Sequence[int | None]]) -> None:
        """Raises ValueError for an empty pyramid, rank != 5, or inputs whose batch or K disagree."""
        check_pyramid_shapes(shapes, "PyramidAttention")

    def build(self, input_shape):
        """Creates `kernel_j` `(C_j, d)` and `bias_j` `(d,)` for every pyramid layer j, bottom -> top."""
        if not input_shape:
            self._check_shapes([])
        if isinstance(input_shape, dict) or not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(
                f"PyramidAttention expects a list of (B, K, H, W, C) tensors, got a single shape {input_shape}."
            )
        shapes = [tuple(shape) for shape in input_shape]
        self._check_shapes(shapes)
        _, _, height, width, _ = shapes[-1]
        num_rows = height * width  # d of Eq. 2
        self.num_scales = len(shapes)
        for index, shape in enumerate(shapes):
            # One attribute per variable (not a Python list), so `tf.train.Checkpoint` tracks them by name too.
            setattr(
                self,
                f"kernel_{index}",
                self.add_weight(
                    name=f"kernel_{index}", shape=(shape[-1], num_rows), initializer=self.kernel_initializer
                ),
            )
            setattr(
                self,
                f"bias_{index}",
                self.add_weight(name=f"bias_{index}", shape=(num_rows,), initializer=self.bias_initializer),
            )
        self.built = True

    @property
    def kernels(self) -> list[keras.Variable]:
        """The `kernel_j` `(C_j, d)`, bottom -> top."""
        return [getattr(self, f"kernel_{index}") for index in range(self.num_scales)]

    @property
    def biases(self) -> list[keras.Variable]:
        """The `bias_j` `(d,)`, bottom -> top."""
        return [getattr(self, f"bias_{index}") for index in range(self.num_scales)]

    def scale_scores(self, inputs: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """Eq. 1-2: per-scale attention scores y^j = W_attn_j X_j^T (+) b_attn_j.

        Args:
          inputs: N tensors `(B, K, H_j, W_j, C_j)`, bottom -> top.

        Returns:
          N float32 tensors `(B, d, K*H*W)`.
        """
        top = inputs[-1]
        height, width = top.shape[2], top.shape[3]
        scores = []
        for index, features in enumerate(inputs):
            if index < len(inputs) - 1:
                features = pyramid_downsample(features, height, width)  # Eq. 1: (B, K, H, W, C_j)
            values = flatten_positions(features)  # (B, n, C_j)
            kernel = tf.cast(self.kernels[index], values.dtype)
            bias = tf.cast(self.biases[index], values.dtype)
            logits = tf.matmul(values, kernel) + bias  # (B, n, d)
            scores.append(tf.transpose(tf.cast(logits, tf.float32), [0, 2, 1]))  # (B, d, n)
        return scores

    def call(self, inputs: Sequence[tf.Tensor], return_attention: bool = False):
        """Aggregates the K frames of the top layer with pyramid attention.

        Args:
          inputs: list of N tensors `(B, K, H_j, W_j, C_j)`, bottom -> top.
          return_attention: also return the attention matrix and the per-scale scores.

        Returns:
          `M'` `(B, H, W, C)`; with `return_attention`, the tuple `(M', A, scale_logits)` where `A` is
          `(B, d, K*H*W)` float32 with L2-normalised rows (Eq. 3) and `scale_logits` the N float32 `(B, d, K*H*W)`
          scores y^j of Eq. 2, before fusion.
        """
        if not isinstance(inputs, (list, tuple)):
            raise ValueError("PyramidAttention expects a list of (B, K, H, W, C) tensors, got a single tensor.")
        inputs = list(inputs)
        self._check_shapes([tuple(x.shape) for x in inputs])
        if len(inputs) != len(self.kernels):
            raise ValueError(f"PyramidAttention was built for {len(self.kernels)} pyramid layers, got {len(inputs)}.")
        top = inputs[-1]
        _, _, height, width, channels = top.shape
        scale_logits = self.scale_scores(inputs)
        fused = fuse_scores(scale_logits, self.fusion)  # Eq. 3: (B, d, n)
        attention = tf.math.l2_normalize(tf.nn.softmax(fused, axis=-1), axis=-1)  # Eq. 3: (B, d, n)
        values = flatten_positions(top)  # (B, n, C)
        aggregated = tf.matmul(tf.cast(attention, values.dtype), values)  # Eq. 4: (B, d, C)
        outputs = tf.reshape(aggregated, [-1, height, width, channels])  # (B, H, W, C)
        if return_attention:
            return outputs, attention, scale_logits
        return outputs

    def get_config(self) -> dict:
        """Returns the constructor arguments."""
        config = super().get_config()
        config.update(
            {
                "fusion": self.fusion,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="stpa")
class UniformAttention(keras.layers.Layer):
    """The uniform-attention control of `PyramidAttention`: the same inputs and outputs, A fixed, no parameters.

    A is what Eq. 3 gives when every score y^j is 0 (for any fusion F, F(0, ..., 0) = 0): the softmax over the
    n = K*H*W positions is 1/n, and after each row's L2 normalisation every entry is 1/sqrt(n). Eq. 4 then gives
    every output position m the same row `M_m = sum_(k,h,w) X_(k,h,w) / sqrt(n) = sqrt(n) * mean_(k,h,w) X`: the
    average pooling of the top layer over frames and positions, scaled exactly as `PyramidAttention` with constant
    scores would scale it, so "learned" vs "uniform" changes the attention and nothing else.

    Call with the list of N >= 1 pyramid tensors `(B, K, H_j, W_j, C_j)` that `PyramidAttention` takes (or the top
    tensor alone); only the top one (the last) is read. K may be unknown when the layer is traced. The average is
    taken in float32 and cast to the compute dtype (no float16 overflow of the sum under mixed precision).

    Args:
      **kwargs: standard `keras.layers.Layer` arguments (name, dtype, ...).
    """

    def build(self, input_shape):
        """Checks the shapes (as `PyramidAttention` does); creates no weights."""
        if not input_shape:  # Keras passes None for an empty list.
            check_pyramid_shapes([], "UniformAttention")
        # A list or tuple of shapes (PyramidAttention's input), or one shape (the top tensor alone).
        is_list = isinstance(input_shape, (list, tuple)) and all(
            isinstance(shape, (list, tuple)) for shape in input_shape
        )
        shapes = [tuple(shape) for shape in input_shape] if is_list else [tuple(input_shape)]
        check_pyramid_shapes(shapes, "UniformAttention")
        self.built = True

    def call(self, inputs: Sequence[tf.Tensor] | tf.Tensor, return_attention: bool = False):
        """Averages the top layer over its K*H*W positions; see the class docstring.

        Args:
          inputs: list of N tensors `(B, K, H_j, W_j, C_j)`, bottom -> top, or the top tensor alone (N = 1).
          return_attention: also return the attention matrix and the per-scale scores.

        Returns:
          `M'` `(B, H, W, C)`, every position `sqrt(n) * mean(X)`; with `return_attention`, the tuple
          `(M', A, scale_logits)` as `PyramidAttention` returns them: `A` `(B, d, n)` float32, every entry
          1/sqrt(n), and `scale_logits` N float32 zero tensors `(B, d, n)` (the scores y^j = 0 that give this A).
        """
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        check_pyramid_shapes([tuple(x.shape) for x in inputs], "UniformAttention")
        top = inputs[-1]
        _, _, height, width, channels = top.shape
        values = tf.cast(flatten_positions(top), tf.float32)  # (B, n, C)
        positions = tf.cast(tf.shape(values)[1], tf.float32)  # n = K*H*W
        pooled = tf.reduce_mean(values, axis=1) * tf.sqrt(positions)  # A X with A = 1/sqrt(n): (B, C)
        outputs = tf.broadcast_to(
            tf.cast(pooled, self.compute_dtype)[:, None, None, :], [tf.shape(top)[0], height, width, channels]
        )  # M' (B, H, W, C)
        if not return_attention:
            return outputs
        shape = [tf.shape(top)[0], height * width, tf.shape(values)[1]]  # (B, d, n)
        attention = tf.fill(shape, tf.math.rsqrt(positions))  # Eq. 3 with y^j = 0: (B, d, n)
        scale_logits = [tf.zeros(shape, tf.float32) for _ in inputs]  # y^j = 0: N x (B, d, n)
        return outputs, attention, scale_logits
