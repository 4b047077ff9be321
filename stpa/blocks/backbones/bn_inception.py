"""BN-Inception (Ioffe & Szegedy, ICML 2015) as used by TSN (Wang et al., ECCV 2016), in Keras.

The architecture and every layer name follow TSN's released Caffe/PyTorch model (`tf_model_zoo/bninception`,
weights `bn_inception-9f5701afb96c8044.pth`), so converting its state dict is mechanical: the PyTorch module
`inception_3a_1x1` (keys `inception_3a_1x1.weight`, `.bias`) is the Keras `Conv2D` named `inception_3a_1x1`, and
`inception_3a_1x1_bn` (keys `.weight`, `.bias`, `.running_mean`, `.running_var`) the `BatchNormalization` of the same
name (see `stpa.convert_weights`).

Input 224 x 224 BGR, mean [104, 117, 128], std 1 (`stpa.blocks.preprocessing`). Output shapes at 224:

  conv1_7x7_s2 112x112x64 -> pool1 56x56 -> conv2_3x3_reduce 64 -> conv2_3x3 56x56x192 -> pool2 28x28x192
  inception_3a 28x28x256, 3b 28x28x320, 3c (stride 2) 14x14x576,
  inception_4a 14x14x576, 4b 576, 4c 608, 4d 14x14x608, 4e (stride 2) 7x7x1056,
  inception_5a 7x7x1024, 5b 7x7x1024 -> global_pool 1024 (-> fc 1000 with include_top).

Every convolution has a bias and is followed by BatchNormalization (eps 1e-5, as PyTorch) and ReLU. PyTorch
semantics are reproduced exactly: stride-2 convolutions pad symmetrically (explicit `ZeroPadding2D`, not Keras
"same", which pads bottom/right only), max pooling uses Caffe's `ceil_mode`, and the 3x3 average pooling of the
inception branches counts the zero padding (`count_include_pad=True`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import keras

BN_EPSILON = 1e-5  # PyTorch's BatchNorm2d default, used by TSN's model.
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1.


@dataclasses.dataclass(frozen=True)
class InceptionBlock:
    """Widths of one BN-Inception module (Table 1 of Ioffe & Szegedy; TSN's bn_inception.yaml).

    Attributes:
      name: e.g. "inception_3a".
      conv_1x1: width of the 1x1 branch (0: no such branch, as in the stride-2 modules 3c and 4e).
      reduce_3x3: width of the 1x1 before the 3x3 branch.
      conv_3x3: width of the 3x3 branch.
      reduce_double: width of the 1x1 before the double-3x3 branch.
      conv_double: width of both 3x3s of the double-3x3 branch.
      pool_proj: width of the 1x1 after the pooling branch (0: the pooled input is concatenated as is).
      pool: "avg" or "max" pooling in the pooling branch.
      stride: 2 for the grid-reduction modules 3c and 4e.
    """

    name: str
    conv_1x1: int
    reduce_3x3: int
    conv_3x3: int
    reduce_double: int
    conv_double: int
    pool_proj: int
    pool: str = "avg"
    stride: int = 1


BN_INCEPTION_BLOCKS: tuple[InceptionBlock, ...] = (
    InceptionBlock("inception_3a", 64, 64, 64, 64, 96, 32),
    InceptionBlock("inception_3b", 64, 64, 96, 64, 96, 64),
    InceptionBlock("inception_3c", 0, 128, 160, 64, 96, 0, pool="max", stride=2),
    InceptionBlock("inception_4a", 224, 64, 96, 96, 128, 128),
    InceptionBlock("inception_4b", 192, 96, 128, 96, 128, 128),
    InceptionBlock("inception_4c", 160, 128, 160, 128, 160, 128),
    InceptionBlock("inception_4d", 96, 128, 192, 160, 192, 128),
    InceptionBlock("inception_4e", 0, 128, 192, 192, 256, 0, pool="max", stride=2),
    InceptionBlock("inception_5a", 352, 192, 320, 160, 224, 128),
    InceptionBlock("inception_5b", 352, 192, 320, 192, 224, 128, pool="max"),
)

# Pyramid taps (see stpa/blocks/backbones/__init__.py): the stem and the last module before each grid reduction, so that
# consecutive levels differ by a factor 2 in size as the paper's Inception-ResNet-V2 taps do (Sec. 4.1).
BN_INCEPTION_TAP_LAYERS = {
    "S": "conv2_relu_3x3",
    "A": "inception_3b_output",
    "B": "inception_4d_output",
    "C": "inception_5b_output",
}


def _conv_bn_relu(x, filters: int, kernel_size: int, name: str, stride: int = 1, relu_name: str | None = None):
    """Conv (with bias) -> BN -> ReLU with PyTorch padding `kernel_size // 2` on both sides."""
    pad = kernel_size // 2
    if stride == 1:
        x = keras.layers.Conv2D(filters, kernel_size, padding="same", name=name)(x)
    else:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        x = keras.layers.Conv2D(filters, kernel_size, strides=stride, padding="valid", name=name)(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=relu_name or f"{name}_relu")(x)


def _max_pool_ceil(x, pool_size: int, stride: int, name: str):
    """Caffe/PyTorch `MaxPool2d(pool_size, stride, ceil_mode=True)` without padding.

    The output has `ceil((n - pool_size) / stride) + 1` rows; the last window may hang over the bottom/right edge
    and then covers only the rows inside. Zero padding of that overhang is exact here because every pooled tensor of
    BN-Inception comes out of a ReLU (>= 0).
    """
    height, width = x.shape[1], x.shape[2]
    pads = []
    for size in (height, width):
        out = math.ceil((size - pool_size) / stride) + 1
        pads.append(max((out - 1) * stride + pool_size - size, 0))
    if any(pads):
        x = keras.layers.ZeroPadding2D(((0, pads[0]), (0, pads[1])), name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(pool_size, strides=stride, padding="valid", name=name)(x)


def _inception_block(x, block: InceptionBlock):
    """One BN-Inception module; branches concatenated as [1x1, 3x3, double 3x3, pool] like TSN's model."""
    name = block.name
    branches = []
    if block.conv_1x1:
        branches.append(_conv_bn_relu(x, block.conv_1x1, 1, f"{name}_1x1", relu_name=f"{name}_relu_1x1"))
    branch = _conv_bn_relu(x, block.reduce_3x3, 1, f"{name}_3x3_reduce", relu_name=f"{name}_relu_3x3_reduce")
    branches.append(
        _conv_bn_relu(branch, block.conv_3x3, 3, f"{name}_3x3", stride=block.stride, relu_name=f"{name}_relu_3x3")
    )
    branch = _conv_bn_relu(
        x, block.reduce_double, 1, f"{name}_double_3x3_reduce", relu_name=f"{name}_relu_double_3x3_reduce"
    )
    branch = _conv_bn_relu(branch, block.conv_double, 3, f"{name}_double_3x3_1", relu_name=f"{name}_relu_double_3x3_1")
    branches.append(
        _conv_bn_relu(
            branch,
            block.conv_double,
            3,
            f"{name}_double_3x3_2",
            stride=block.stride,
            relu_name=f"{name}_relu_double_3x3_2",
        )
    )
    if block.stride == 2:
        pooled = _max_pool_ceil(x, 3, 2, name=f"{name}_pool")
    elif block.pool == "max":
        pooled = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    else:
        padded = keras.layers.ZeroPadding2D(1, name=f"{name}_pool_pad")(x)  # count_include_pad=True
        pooled = keras.layers.AveragePooling2D(3, strides=1, padding="valid", name=f"{name}_pool")(padded)
    if block.pool_proj:
        pooled = _conv_bn_relu(pooled, block.pool_proj, 1, f"{name}_pool_proj", relu_name=f"{name}_relu_pool_proj")
    branches.append(pooled)
    return keras.layers.Concatenate(axis=-1, name=f"{name}_output")(branches)


def build_bn_inception(
    input_shape: Sequence[int] = (224, 224, 3),
    weights: str | None = None,
    include_top: bool = False,
    classes: int = 1000,
    name: str = "bn_inception",
) -> keras.Model:
    """Builds BN-Inception with TSN's layer names.

    Args:
      input_shape: `(H, W, C_in)`; 224 x 224 x 3 for ImageNet, C_in = 2 * flow_length for a flow stream.
      weights: None (random) or the path of a Keras weights file of this architecture (e.g. written by
        `python -m stpa.convert_weights`).
      include_top: add the ImageNet classifier `fc` (1024 -> classes), as in the released model.
      classes: classifier width with `include_top`.
      name: the model's name.

    Returns:
      A functional model `(B', H, W, C_in)` -> pooled features `(B', 1024)` (or logits `(B', classes)`).
    """
    inputs = keras.Input(tuple(input_shape), name="frames")
    x = _conv_bn_relu(inputs, 64, 7, "conv1_7x7_s2", stride=2, relu_name="conv1_relu_7x7")  # (112, 112, 64)
    x = _max_pool_ceil(x, 3, 2, name="pool1_3x3_s2")  # (56, 56, 64)
    x = _conv_bn_relu(x, 64, 1, "conv2_3x3_reduce", relu_name="conv2_relu_3x3_reduce")
    x = _conv_bn_relu(x, 192, 3, "conv2_3x3", relu_name="conv2_relu_3x3")  # (56, 56, 192)
    x = _max_pool_ceil(x, 3, 2, name="pool2_3x3_s2")  # (28, 28, 192)
    for block in BN_INCEPTION_BLOCKS:
        x = _inception_block(x, block)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)  # (1024,)
    if include_top:
        x = keras.layers.Dense(classes, name="fc")(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def bn_inception_taps(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """The S, A, B, C pyramid taps of a `build_bn_inception` trunk."""
    return {level: model.get_layer(layer).output for level, layer in BN_INCEPTION_TAP_LAYERS.items()}
