"""`tiny` and `tiny_deep`: small, fast CNNs with the same pyramid interface as the paper's backbones.

`tiny` (tests, the CPU demo and the first study protocol) ends right after its top tap; `tiny_deep` is the study's
stand-in for the papers' host networks: learned layers run on the attended maps, and it is meant to start from
supervised pretraining on another task (`python -m stpa.pretrain_backbone`).

Four stages halve the resolution each (64 px input: 32, 16, 8, 4); the pre-activation output of each stage is a
pyramid tap, like the "last layer of Inception-ResNet-A/B/C without activation" taps of Inception-ResNet-V2:

  level  layer        shape at 64 px    stage
  S      s_bn2        32 x 32 x 16      conv 3x3/2 -> BN -> ReLU -> conv 3x3 -> BN
  A      a_bn2        16 x 16 x 32      conv 3x3/2 -> BN -> ReLU -> conv 3x3 -> BN
  B      b_bn2         8 x  8 x 64      conv 3x3/2 -> BN -> ReLU -> conv 3x3 -> BN
  C      c_bn1         4 x  4 x 128     conv 3x3/2 -> BN
  fc     avg_pool      128              ReLU -> global average pooling

About 147k parameters and 11M multiply-adds per 64 px frame: an STPA model with K = 3 trains at hundreds of clips/s
on two CPU cores. Batch normalisation after every convolution lets it learn from scratch quickly.

`tiny_deep` puts the pyramid top mid-network, as Inception-ResNet-V2's Block C tap is followed by conv_7b (a learned
1x1 convolution, BN, ReLU) before the pooling: stage C has two convolutions, and a stage D runs after the top tap, so
`PyramidAttention`'s M' is processed by learned (pretrained) layers before the classifier (Du et al. Sec. 3.1: "the
architecture of the network behind the i-th layer unchanged"):

  level  layer        shape at 64 px    stage
  S      s_bn2        32 x 32 x 16      conv 3x3/2 -> BN -> ReLU -> conv 3x3 -> BN
  A      a_bn2        16 x 16 x 32      conv 3x3/2 -> BN -> ReLU -> conv 3x3 -> BN
  B      b_bn2         8 x  8 x 64      conv 3x3/2 -> BN -> ReLU -> conv 3x3 -> BN
  C      c_bn2         4 x  4 x 128     conv 3x3/2 -> BN -> ReLU -> conv 3x3 -> BN
  (D)    d_out         4 x  4 x 256     ReLU -> conv 3x3 -> BN -> ReLU -> conv 1x1 (256) -> BN -> ReLU
  fc     avg_pool      256              global average pooling

About 475k parameters and 18M multiply-adds per 64 px RGB frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

# (level, filters, convolutions in the stage).
TINY_STAGES: tuple[tuple[str, int, int], ...] = (("s", 16, 2), ("a", 32, 2), ("b", 64, 2), ("c", 128, 1))
TINY_TAP_LAYERS = {"S": "s_bn2", "A": "a_bn2", "B": "b_bn2", "C": "c_bn1"}
TINY_DEEP_STAGES: tuple[tuple[str, int, int], ...] = (("s", 16, 2), ("a", 32, 2), ("b", 64, 2), ("c", 128, 2))
TINY_DEEP_TAP_LAYERS = {"S": "s_bn2", "A": "a_bn2", "B": "b_bn2", "C": "c_bn2"}
# Stage D of tiny_deep, after the top tap: (kernel size, filters) of its convolutions.
TINY_DEEP_AFTER_TOP: tuple[tuple[int, int], ...] = ((3, 128), (1, 256))


def _stages(x: keras.KerasTensor, stages: Sequence[tuple[str, int, int]]) -> keras.KerasTensor:
    """Conv/BN stages, each halving the resolution; every stage ends with ReLU after its last (tap) BN."""
    for level, filters, num_convs in stages:
        for index in range(1, num_convs + 1):
            if index > 1:
                x = keras.layers.ReLU(name=f"{level}_relu{index - 1}")(x)
            x = keras.layers.Conv2D(
                filters,
                3,
                strides=2 if index == 1 else 1,
                padding="same",
                use_bias=False,
                name=f"{level}_conv{index}",
            )(x)
            x = keras.layers.BatchNormalization(name=f"{level}_bn{index}")(x)  # the tap of this level when last
        x = keras.layers.ReLU(name=f"{level}_out")(x)
    return x


def build_tiny(input_shape: Sequence[int], weights: str | None = None, name: str = "tiny") -> keras.Model:
    """Builds the tiny per-frame trunk.

    Args:
      input_shape: `(H, W, C_in)`; H and W should be multiples of 16.
      weights: None (random initialisation) or the path of a Keras weights file for this trunk.
      name: the model's name.

    Returns:
      A functional model `(B', H, W, C_in)` -> pooled features `(B', 128)`.
    """
    inputs = keras.Input(tuple(input_shape), name="frames")
    x = _stages(inputs, TINY_STAGES)
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)  # (B', 128)
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def build_tiny_deep(input_shape: Sequence[int], weights: str | None = None, name: str = "tiny_deep") -> keras.Model:
    """Builds the tiny_deep per-frame trunk: tiny's stages with two convolutions in C, then stage D.

    Args:
      input_shape: `(H, W, C_in)`; H and W should be multiples of 16.
      weights: None (random initialisation) or the path of a Keras weights file for this trunk (e.g. the one
        `python -m stpa.pretrain_backbone` writes).
      name: the model's name.

    Returns:
      A functional model `(B', H, W, C_in)` -> pooled features `(B', 256)`.
    """
    inputs = keras.Input(tuple(input_shape), name="frames")
    x = _stages(inputs, TINY_DEEP_STAGES)  # (B', H/16, W/16, 128), after the ReLU of the C tap
    for index, (size, filters) in enumerate(TINY_DEEP_AFTER_TOP, start=1):
        x = keras.layers.Conv2D(filters, size, padding="same", use_bias=False, name=f"d_conv{index}")(x)
        x = keras.layers.BatchNormalization(name=f"d_bn{index}")(x)
        x = keras.layers.ReLU(name="d_out" if index == len(TINY_DEEP_AFTER_TOP) else f"d_relu{index}")(x)
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)  # (B', 256)
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def tiny_taps(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """The S, A, B, C pyramid taps of a `build_tiny` trunk (pre-activation stage outputs)."""
    return {level: model.get_layer(layer).output for level, layer in TINY_TAP_LAYERS.items()}


def tiny_deep_taps(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """The S, A, B, C pyramid taps of a `build_tiny_deep` trunk (pre-activation stage outputs)."""
    return {level: model.get_layer(layer).output for level, layer in TINY_DEEP_TAP_LAYERS.items()}
