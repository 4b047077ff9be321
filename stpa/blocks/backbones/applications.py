"""`keras.applications` backbones (Inception-ResNet-V2, VGG16, ResNet-50/101/152) as per-frame trunks with taps.

Each builder returns the application's functional model cut to a pooled feature vector (the trunk), and each taps
function finds the pyramid taps in it by structure, not by auto-generated names (which change with every model built
in a session). Tap tables (shapes at the default input size):

Inception-ResNet-V2, 299 x 299 (Sec. 4.1 of Du et al.: "the last layers of Inception-ResNet-A, B, and C without
activation"; Keras 3 has no `block35_10` layer any more -- the residual sum is an auto-named `CustomScaleLayer` --
so the pre-activation tensors are taken as the *inputs* of the activation / next layer):
  S   Conv2d_4a_3x3: input of the 2nd MaxPooling2D          71 x 71 x 192
  A   last Inception-ResNet-A: input of `block35_10_ac`     35 x 35 x 320
  B   last Inception-ResNet-B: input of `block17_20_ac`     17 x 17 x 1088
  C   last Inception-ResNet-C: input of `conv_7b`            8 x 8 x 2080  (block8_10 has no activation)
  fc  global average pool of `conv_7b_ac`                    1536

VGG16, 224 x 224 (Keras fuses the ReLU into the convolution, so the taps are post-activation):
  S conv2_2 `block2_conv2` 112x112x128, A conv3_3 `block3_conv3` 56x56x256, B conv4_3 `block4_conv3` 28x28x512,
  C conv5_3 `block5_conv3` 14x14x512, fc fc7 `fc2` 4096 (the trunk keeps fc6/fc7 as two-stream VGG16 does, so the
  input must be 224 x 224).

ResNet-50/101/152, 224 x 224 (pre-activation outputs of the last block of each stage, the residual `_add`):
  S conv2_x 56x56x256, A conv3_x 28x28x512, B conv4_x 14x14x1024, C conv5_x 7x7x2048, fc avg_pool 2048.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import keras


def build_inception_resnet_v2(input_shape: Sequence[int], weights: str | None = None) -> keras.Model:
    """Inception-ResNet-V2 without its classifier, globally average-pooled: `(B', H, W, C)` -> `(B', 1536)`.

    Args:
      input_shape: `(H, W, C_in)`, H and W >= 75.
      weights: None, "imagenet" (Keras download/cache) or the path of a weights file (e.g. Keras'
        `inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5`).
    """
    return keras.applications.InceptionResNetV2(
        include_top=False, weights=weights, input_shape=tuple(input_shape), pooling="avg"
    )


def inception_resnet_v2_taps(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """S, A, B, C taps of `build_inception_resnet_v2` (see the module docstring)."""
    max_pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    if len(max_pools) < 2:
        raise ValueError(f"{model.name}: expected Inception-ResNet-V2's stem max poolings, found {len(max_pools)}.")
    return {
        "S": max_pools[1].input,  # Conv2d_4a_3x3 (after BN + ReLU, the TF-slim end point).
        "A": model.get_layer("block35_10_ac").input,
        "B": model.get_layer("block17_20_ac").input,
        "C": model.get_layer("conv_7b").input,
    }


def build_vgg16(input_shape: Sequence[int], weights: str | None = None) -> keras.Model:
    """VGG16 up to fc7 (the classifier `predictions` removed): `(B', 224, 224, C)` -> `(B', 4096)`.

    Args:
      input_shape: `(224, 224, C_in)` (fc6 needs a 7 x 7 x 512 pool5).
      weights: None, "imagenet" or the path of a full VGG16 weights file (with top, e.g. Keras'
        `vgg16_weights_tf_dim_ordering_tf_kernels.h5`).
    """
    vgg = keras.applications.VGG16(include_top=True, weights=weights, input_shape=tuple(input_shape))
    return keras.Model(vgg.input, vgg.get_layer("fc2").output, name="vgg16")


def vgg16_taps(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """S, A, B, C taps of `build_vgg16`: conv2_2, conv3_3, conv4_3, conv5_3."""
    names = {"S": "block2_conv2", "A": "block3_conv3", "B": "block4_conv3", "C": "block5_conv3"}
    return {level: model.get_layer(name).output for level, name in names.items()}


_RESNETS = {50: "ResNet50", 101: "ResNet101", 152: "ResNet152"}


def resnet_builder(depth: int) -> Callable[[Sequence[int], str | None], keras.Model]:
    """A builder of ResNet-`depth` (50, 101, 152) without classifier, pooled: `(B', H, W, C)` -> `(B', 2048)`."""
    application = getattr(keras.applications, _RESNETS[depth])

    def build(input_shape: Sequence[int], weights: str | None = None) -> keras.Model:
        return application(include_top=False, weights=weights, input_shape=tuple(input_shape), pooling="avg")

    build.__name__ = f"build_resnet{depth}"
    return build


def resnet_taps(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """S, A, B, C taps of a Keras ResNet: the residual sum (`convN_blockM_add`) of the last block of stages 2-5."""
    last_block: dict[int, tuple[int, str]] = {}
    for layer in model.layers:
        match = re.fullmatch(r"conv(\d)_block(\d+)_add", layer.name)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            if block > last_block.get(stage, (0, ""))[0]:
                last_block[stage] = (block, layer.name)
    if sorted(last_block) != [2, 3, 4, 5]:
        raise ValueError(f"{model.name}: expected ResNet stages conv2..conv5, found {sorted(last_block)}.")
    return {level: model.get_layer(last_block[stage][1]).output for level, stage in zip("SABC", (2, 3, 4, 5))}
