"""The ST-attn layers: the spatial importance mask (Eq. 1, Table 1) and the attentive ConvLSTM (Eq. 2-5).

Meng et al., "Interpretable Spatio-temporal Attention for Video Action Recognition", 2019, Sec. 3.2-3.3.

Every layer takes per-frame feature maps `(B, n, h, w, C)` with the number of frames `n` unknown at trace time
(`None`): time is folded into the batch with dynamic reshapes (never Keras' time-distributed wrapper), and the
recurrence over `n` steps is a `tf.while_loop`, so one set of weights trained with n = 25 evaluates any other n.

Layers:
  SpatialAttentionMask: Table 1's three 3x3 convolutions -> mask `M` (B, n, h, w, 1) in [0, 1].
  ApplySpatialMask: Eq. 1, `X~ = X * M`.
  TemporalAttentionConvLSTM: Eq. 2-5 -> the mean hidden state `H_bar` (B, h, w, units) and the temporal attention
    weights `w` (B, n_steps, n) (step x frame).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import tensorflow as tf

from stpa.blocks.video_ops import fold_time, unfold_time

_PACKAGE = "st_attn"
ENERGIES = ("tanh", "linear")
# Batch-norm moving-average momentum: PyTorch's default (0.1 there, 1 - 0.1 here), which the authors trained with;
# Keras' 0.99 leaves the inference statistics far from the data for the first thousand steps.
BN_MOMENTUM = 0.9


def _conv_bn_relu(filters: int, name: str, dtype) -> list[keras.layers.Layer]:
    """Conv 3x3 (no bias) + BN + ReLU, every sublayer with the owner's dtype policy `dtype`."""
    return [
        keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv", dtype=dtype),
        keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn", dtype=dtype),
        keras.layers.ReLU(name=f"{name}_relu", dtype=dtype),
    ]


def _run(layers: Sequence[keras.layers.Layer], x, training):
    for layer in layers:
        x = layer(x, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(x)
    return x


def _project(dense: keras.layers.Dense, x):
    """A bias-free Dense layer on `(B, n, C)` as one broadcast matmul -> `(B, n, units)`.

    Keras' Dense goes through a tensordot whose transposes have run-time permutations when n is unknown, which XLA
    cannot compile inside the ConvLSTM loop's gradient.
    """
    return tf.matmul(x, tf.cast(dense.kernel, x.dtype))


def _build_stack(layers: Sequence[keras.layers.Layer], input_shape) -> None:
    shape = tuple(input_shape)
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialAttentionMask(keras.layers.Layer):
    """The importance mask `M_i` of each frame (Sec. 3.2, Fig. 2, Table 1 of Meng et al.).

    Table 1: CONV-(N1024, K3, S1, P1) + BN + ReLU, CONV-(N512, K3, S1, P1) + BN + ReLU, CONV-(N1, K3, S1, P1) +
    sigmoid, applied to every frame's feature map with shared weights. The convolutions followed by batch
    normalisation have no bias (BN's beta is the bias); the last one has a bias, which lets the mask start at any level.

    Args:
      filters: widths of the hidden convolutions (Table 1: 1024, 512); small values make tests fast.
      kernel_size: the convolutions' kernel size (Table 1: 3).
      initial_mask: the mask's value at initialisation, through the last convolution's bias `logit(initial_mask)`
        (the paper does not say; 0.5, a zero bias, is the framework default). A mask that starts closed (e.g. 0.2)
        opens only where the evidence is: on the synthetic benchmark it then selects the actor, while from 0.5 it
        tends to act as a gain control (see BUILD.md).

    Call:
      features: `(B, n, h, w, C)` frame feature maps `X_i`; n may be None.
      Returns the mask `(B, n, h, w, 1)`, every entry in [0, 1].
    """

    def __init__(self, filters: Sequence[int] = (1024, 512), kernel_size: int = 3, initial_mask: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(initial_mask) < 1.0:
            raise ValueError(f"initial_mask must lie strictly between 0 and 1; got {initial_mask}.")
        self.filters = tuple(int(f) for f in filters)
        self.kernel_size = int(kernel_size)
        self.initial_mask = float(initial_mask)
        self._stack: list[keras.layers.Layer] = []

    def build(self, input_shape):
        """Creates Table 1's convolutions and batch normalisations, with this layer's dtype policy."""
        if len(input_shape) != 5:
            raise ValueError(
                f"SpatialAttentionMask expects per-frame feature maps (B, n, h, w, C); got shape {input_shape}."
            )
        stack = []
        for index, width in enumerate(self.filters):
            stack += [
                keras.layers.Conv2D(
                    width,
                    self.kernel_size,
                    padding="same",
                    use_bias=False,
                    name=f"conv{index + 1}",
                    dtype=self.dtype_policy,
                ),
                keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{index + 1}", dtype=self.dtype_policy),
                keras.layers.ReLU(name=f"relu{index + 1}", dtype=self.dtype_policy),
            ]
        stack += [
            keras.layers.Conv2D(
                1,
                self.kernel_size,
                padding="same",
                activation="sigmoid",
                bias_initializer=keras.initializers.Constant(math.log(self.initial_mask / (1.0 - self.initial_mask))),
                name=f"conv{len(self.filters) + 1}",
                dtype=self.dtype_policy,
            )
        ]
        _build_stack(stack, (None, *input_shape[2:]))
        self._stack = stack
        self.built = True

    def call(self, features, training=None):
        """Returns the mask `(B, n, h, w, 1)` of `features` `(B, n, h, w, C)`."""
        mask = _run(self._stack, fold_time(features), training)  # (B*n, h, w, 1)
        mask = unfold_time(mask, features)  # (B, n, h, w, 1)
        return tf.cast(mask, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        """Returns `(B, n, h, w, 1)`."""
        return (*input_shape[:4], 1)

    def get_config(self):
        """Returns the constructor arguments."""
        config = super().get_config()
        config.update(filters=list(self.filters), kernel_size=self.kernel_size, initial_mask=self.initial_mask)
        return config


def apply_spatial_mask(features, mask):
    """Eq. 1 of Meng et al.: the attended features `X~_i = X_i ⊙ M_i`.

    Args:
      features: `(B, n, h, w, C)` frame features `X`.
      mask: `(B, n, h, w, 1)` importance mask `M` (broadcast over the channels).

    Returns:
      `(B, n, h, w, C)` masked features `X~`.
    """
    return features * tf.cast(mask, features.dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ApplySpatialMask(keras.layers.Layer):
    """Eq. 1 as a layer: `[X (B, n, h, w, C), M (B, n, h, w, 1)]` -> `X ⊙ M` (see `apply_spatial_mask`)."""

    def call(self, inputs):
        """Returns `X ⊙ M` `(B, n, h, w, C)` (Eq. 1)."""
        features, mask = inputs
        return apply_spatial_mask(features, mask)

    def compute_output_shape(self, input_shape):
        """Returns the features' shape."""
        return tuple(input_shape[0])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameAndPositionAveragePooling(keras.layers.Layer):
    """Meng et al.'s "w/o attention" (Table 2 "ResNet101-ImageNet", Table 4), cached-feature reading: mean over n, h, w.

    `X (B, n, h, w, C)` -> `(1 / (n h w)) sum_{i, y, x} X_iyx` `(B, C)`. n, h and w may be unknown (None): the mean is
    one reduction over axes 1-3, so no per-frame layer is involved.
    """

    def call(self, inputs):
        """Returns `(B, C)`: the mean of `inputs` `(B, n, h, w, C)` over n, h and w."""
        return tf.reduce_mean(inputs, axis=[1, 2, 3])  # (B, C)

    def compute_output_shape(self, input_shape):
        """Returns `(B, C)`; raises for an input that is not `(B, n, h, w, C)`."""
        if len(input_shape) != 5:
            raise ValueError(f"FrameAndPositionAveragePooling expects (B, n, h, w, C) features; got {input_shape}.")
        return (input_shape[0], input_shape[-1])


def temporal_context(weights, masked_features):
    """Eq. 4 of Meng et al.: the ConvLSTM input `Y_t = (1/n) Σ_i w_ti X~_i`.

    Args:
      weights: `(B, n)` attention weights `w_t` of one step over the n frames (Eq. 3).
      masked_features: `(B, n, h, w, C)` masked frame features `X~`.

    Returns:
      `(B, h, w, C)` `Y_t`. The factor 1/n is the paper's (the released code drops it).
    """
    weights = tf.cast(weights, masked_features.dtype)
    num_frames = tf.cast(tf.shape(masked_features)[1], masked_features.dtype)
    return tf.einsum("bn,bnhwc->bhwc", weights, masked_features) / num_frames


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TemporalAttentionConvLSTM(keras.layers.Layer):
    """Temporal attention over frames feeding a ConvLSTM (Sec. 3.3, Eq. 2-5 of Meng et al.).

    For t = 1..n (one step per frame, as in the paper):
      - Eq. 2, energies for every frame i: `e_ti = v·tanh(Φ_H(H_{t-1}) + Φ_X(X~_i))` (`energy="tanh"`, default)
        or literally `e_ti = Φ_H(H_{t-1}) + Φ_X(X~_i)` (`energy="linear"`). Φ_H and Φ_X are bias-free dense layers on
        the spatially averaged maps (as the authors implemented the paper's "feed-forward networks").
        Why the default adds a tanh and a projection v (Bahdanau et al.'s form, the paper's ref. [1]): with scalar
        additive energies, Φ_H(H_{t-1}) is the same for every frame i and cancels in Eq. 3's softmax, so Φ_H gets
        exactly zero gradient and w_t is the same at every step. The "linear" mode exists to show this (see tests).
      - Eq. 3: `w_t = softmax_i(e_t)`, computed in float32.
      - Eq. 4: `Y_t = (1/n) Σ_i w_ti X~_i` (`temporal_context`).
      - ConvLSTM step (Shi et al., 3x3 kernels, no peepholes) on `Y_t`: `H_t, C_t`.
    Eq. 5 initial state: `C_0 = g_c(mean_i X~_i)`, `H_0 = g_h(mean_i X~_i)`, g = two conv 3x3 + BN + ReLU layers.
    Output: `H_bar = (1/n) Σ_t H_t` and the weights `w` (B, n, n).

    With `temporal_attention=False` (Table 2's "w/o temporal attention" ablation) the ConvLSTM reads the frames in
    order, `Y_t = X~_t`, and the returned weights are the identity (step t looks at frame t).

    Args:
      units: ConvLSTM hidden channels (paper: 512).
      kernel_size: ConvLSTM kernel size (3).
      init_filters: width of the first convolution of g_c and g_h (1024 in the authors' code).
      attention_units: width of Φ_H and Φ_X's outputs for `energy="tanh"` (ignored for "linear", where it is 1).
      energy: "tanh" or "linear" (see above).
      temporal_attention: False for the ablation without temporal attention.
      project_frames: compute the ConvLSTM's input convolution once on every frame, `Z_i = W_x * X~_i`, outside
        the loop, and per step `W_x * Y_t + b = (1/n) Σ_i w_ti Z_i + b` (Eq. 4 is linear, so this is the same
        function): one convolution over B·n frames instead of n over B, and in backprop one kernel gradient instead
        of n accumulated in the loop. False computes `W_x * Y_t` per step (the textbook order). Same weights either
        way; see BUILD.md "Performance" for what each costs.
      parallel_iterations: iterations of the `tf.while_loop` TensorFlow may run at once (its default is 10). The
        recurrence makes the steps sequential anyway; 1 keeps at most one step's temporaries alive in backprop.

    Call:
      masked_features: `(B, n, h, w, C)` the masked frame features `X~`; n may be None.
      training: BN mode of g_c / g_h.
      return_contexts: also return the ConvLSTM inputs `Y` (B, n_steps, h, w, C) (for tests and inspection).
      Returns `(H_bar (B, h, w, units), weights (B, n_steps, n))`, plus `Y` if `return_contexts`.
    """

    def __init__(
        self,
        units: int = 512,
        kernel_size: int = 3,
        init_filters: int = 1024,
        attention_units: int = 256,
        energy: str = "tanh",
        temporal_attention: bool = True,
        project_frames: bool = True,
        parallel_iterations: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if energy not in ENERGIES:
            raise ValueError(f"energy must be one of {ENERGIES}; got {energy!r}.")
        if int(parallel_iterations) < 1:
            raise ValueError(f"parallel_iterations must be >= 1; got {parallel_iterations}.")
        self.project_frames = bool(project_frames)
        self.parallel_iterations = int(parallel_iterations)
        self.units = int(units)
        self.kernel_size = int(kernel_size)
        self.init_filters = int(init_filters)
        self.attention_units = int(attention_units)
        self.energy = energy
        self.temporal_attention = bool(temporal_attention)

    def build(self, input_shape):
        """Creates g_c, g_h (Eq. 5), the ConvLSTM convolutions and Φ_X, Φ_H, v (Eq. 2), with this layer's dtype policy.

        Under a mixed policy every sublayer computes in the same dtype as the layer, whatever the global policy.
        """
        if len(input_shape) != 5 or input_shape[-1] is None:
            raise ValueError(
                "TemporalAttentionConvLSTM expects masked frame features (B, n, h, w, C) with C known; "
                f"got shape {input_shape}."
            )
        channels = int(input_shape[-1])
        frame_shape = (None, input_shape[2], input_shape[3], channels)
        state_shape = (None, input_shape[2], input_shape[3], self.units)
        # Eq. 5: g_c and g_h.
        dtype = self.dtype_policy
        self.init_cell = _conv_bn_relu(self.init_filters, "g_c1", dtype) + _conv_bn_relu(self.units, "g_c2", dtype)
        self.init_hidden = _conv_bn_relu(self.init_filters, "g_h1", dtype) + _conv_bn_relu(self.units, "g_h2", dtype)
        _build_stack(self.init_cell, frame_shape)
        _build_stack(self.init_hidden, frame_shape)
        # ConvLSTM cell: gates i, f, g, o; forget-gate bias initialised to 1 (Jozefowicz et al.).
        self.input_conv = keras.layers.Conv2D(
            4 * self.units,
            self.kernel_size,
            padding="same",
            bias_initializer=UnitForgetBias(self.units),
            name="W_x",
            dtype=dtype,
        )
        self.recurrent_conv = keras.layers.Conv2D(
            4 * self.units,
            self.kernel_size,
            padding="same",
            use_bias=False,
            kernel_initializer="orthogonal",
            name="W_h",
            dtype=dtype,
        )
        self.input_conv.build(frame_shape)
        self.recurrent_conv.build(state_shape)
        if self.temporal_attention:
            width = self.attention_units if self.energy == "tanh" else 1
            self.phi_x = keras.layers.Dense(width, use_bias=False, name="phi_x", dtype=dtype)
            self.phi_h = keras.layers.Dense(width, use_bias=False, name="phi_h", dtype=dtype)
            self.phi_x.build((None, None, channels))
            self.phi_h.build((None, self.units))
            if self.energy == "tanh":
                self.energy_projection = keras.layers.Dense(1, use_bias=False, name="v", dtype=dtype)
                self.energy_projection.build((None, None, width))
        self.built = True

    def _energies(self, keys, hidden):
        """Eq. 2: energies `e_t` (B, n) from keys `Φ_X(X~_i)` (B, n, d) and `H_{t-1}` (B, h, w, units)."""
        query = self.phi_h(tf.reduce_mean(hidden, axis=[1, 2]))  # (B, d)
        energies = keys + query[:, None, :]  # (B, n, d)
        if self.energy == "tanh":
            energies = _project(self.energy_projection, tf.tanh(energies))  # (B, n, 1)
        return tf.cast(energies[..., 0], tf.float32)  # (B, n)

    def _lstm_step(self, input_gates, hidden, cell):
        """One ConvLSTM step from the input's gate pre-activations `W_x * Y_t + b` (B, h, w, 4*units)."""
        gates = input_gates + self.recurrent_conv(hidden)  # (B, h, w, 4*units)
        i, f, g, o = tf.split(gates, 4, axis=-1)
        cell = tf.sigmoid(f) * cell + tf.sigmoid(i) * tf.tanh(g)
        hidden = tf.sigmoid(o) * tf.tanh(cell)
        return hidden, cell

    def call(self, masked_features, training=None, return_contexts=False):
        """Runs Eq. 2-5 over the n frames (see the class docstring)."""
        x = masked_features
        num_frames = tf.shape(x)[1]
        mean_x = tf.reduce_mean(x, axis=1)  # (B, h, w, C): (1/n) Σ_i X~_i
        hidden = _run(self.init_hidden, mean_x, training)  # Eq. 5, H_0 (B, h, w, units)
        cell = _run(self.init_cell, mean_x, training)  # Eq. 5, C_0
        keys = _project(self.phi_x, tf.reduce_mean(x, axis=[2, 3])) if self.temporal_attention else None  # (B, n, d)

        weights_ta = tf.TensorArray(tf.float32, size=num_frames, element_shape=tf.TensorShape([None, None]))
        # The contexts are carried only when asked for (XLA cannot differentiate through an empty TensorArray).
        contexts = (tf.TensorArray(x.dtype, size=num_frames),) if return_contexts else ()
        if self.project_frames:
            kernel = tf.cast(self.input_conv.kernel, x.dtype)
            bias = tf.cast(self.input_conv.bias, x.dtype)
            projected = unfold_time(tf.nn.conv2d(fold_time(x), kernel, 1, "SAME"), x)  # Z: (B, n, h, w, 4*units)

        def body(t, hidden, cell, hidden_sum, weights_ta, *contexts_ta):
            y = None
            if self.temporal_attention:
                weights = tf.nn.softmax(self._energies(keys, hidden), axis=-1)  # Eq. 3, (B, n)
                if self.project_frames:
                    input_gates = temporal_context(weights, projected) + bias  # W_x * Y_t + b, (B, h, w, 4*units)
                if return_contexts or not self.project_frames:
                    y = temporal_context(weights, x)  # Eq. 4, (B, h, w, C)
            else:
                weights = tf.one_hot(tf.fill(tf.shape(x)[:1], t), num_frames, dtype=tf.float32)  # (B, n)
                if self.project_frames:
                    input_gates = tf.gather(projected, t, axis=1) + bias  # (B, h, w, 4*units)
                if return_contexts or not self.project_frames:
                    y = tf.gather(x, t, axis=1)  # (B, h, w, C)
            if not self.project_frames:
                input_gates = self.input_conv(y)  # (B, h, w, 4*units)
            hidden, cell = self._lstm_step(input_gates, hidden, cell)
            weights_ta = weights_ta.write(t, weights)
            if return_contexts:
                contexts_ta = (contexts_ta[0].write(t, y),)
            return (t + 1, hidden, cell, hidden_sum + hidden, weights_ta, *contexts_ta)

        _, _, _, hidden_sum, weights_ta, *contexts = tf.while_loop(
            lambda t, *_: t < num_frames,
            body,
            (tf.constant(0), hidden, cell, tf.zeros_like(hidden), weights_ta, *contexts),
            parallel_iterations=self.parallel_iterations,
            maximum_iterations=num_frames,  # XLA needs the bound to size the loop's gradient accumulators
        )
        mean_hidden = hidden_sum / tf.cast(num_frames, hidden_sum.dtype)  # H_bar, (B, h, w, units)
        weights = tf.transpose(weights_ta.stack(), [1, 0, 2])  # (B, n_steps, n)
        if return_contexts:
            return mean_hidden, weights, tf.transpose(contexts[0].stack(), [1, 0, 2, 3, 4])
        return mean_hidden, weights

    def compute_output_shape(self, input_shape):
        """Returns `((B, h, w, units), (B, n, n))`."""
        batch, frames, height, width, _ = input_shape
        return (batch, height, width, self.units), (batch, frames, frames)

    def compute_output_spec(self, masked_features, training=None, return_contexts=False):
        """Symbolic outputs (weights are float32 under mixed precision)."""
        batch, frames, height, width, channels = masked_features.shape
        outputs = [
            keras.KerasTensor((batch, height, width, self.units), dtype=self.compute_dtype),
            keras.KerasTensor((batch, frames, frames), dtype="float32"),
        ]
        if return_contexts:
            outputs.append(keras.KerasTensor((batch, frames, height, width, channels), dtype=self.compute_dtype))
        return tuple(outputs)

    def get_config(self):
        """Returns the constructor arguments."""
        config = super().get_config()
        config.update(
            units=self.units,
            kernel_size=self.kernel_size,
            init_filters=self.init_filters,
            attention_units=self.attention_units,
            energy=self.energy,
            temporal_attention=self.temporal_attention,
            project_frames=self.project_frames,
            parallel_iterations=self.parallel_iterations,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UnitForgetBias(keras.initializers.Initializer):
    """Bias initialiser for the gates (i, f, g, o): 1 for the forget gate, 0 elsewhere."""

    def __init__(self, units: int):
        self.units = int(units)

    def __call__(self, shape, dtype=None):
        """Returns the bias `(4*units,)` for the gates (i, f, g, o)."""
        dtype = dtype or "float32"
        return keras.ops.concatenate(
            [
                keras.ops.zeros((self.units,), dtype),
                keras.ops.ones((self.units,), dtype),
                keras.ops.zeros((2 * self.units,), dtype),
            ]
        )

    def get_config(self):
        """Returns the constructor arguments."""
        return {"units": self.units}
