"""Per-frame backbone CNNs of the STPA / TSN networks and their pyramid tap tables (Sec. 3.4, 4.1 of Du et al.).

A backbone is built as a *trunk*: a functional `keras.Model` mapping one frame `(B', H, W, C_in)` to its pooled
feature vector `(B', F)`, plus the tensors of its pyramid *taps* inside that graph. `stpa.models` runs the trunk
up to the taps on all K frames, aggregates them with `PyramidAttention`, and runs the rest of the same trunk on the
aggregated maps.

Every backbone exposes the same five levels, bottom -> top (`LEVELS`):

  S   a stem-level map (the "4th scale" of Table 1(b), e.g. Conv2d_4a_3x3 of Inception-ResNet-V2)
  A   "Block A"  (Table 1(a)), e.g. the last Inception-ResNet-A block without activation, 35 x 35 x 320
  B   "Block B",  e.g. the last Inception-ResNet-B block without activation, 17 x 17 x 1088
  C   "Block C",  e.g. the last Inception-ResNet-C block without activation,  8 x 8 x 2080
  fc  the pooled feature vector ("FC (1536)" of Table 1(a)), an H = W = 1 map

`top` picks the top of the pyramid among A, B, C, fc and `scales` takes that many levels from the top down.
The per-backbone layers are listed in `BackboneSpec.tap_table` and in BUILD.md.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence

import keras

from stpa.blocks.backbones import applications, bn_inception, tiny
from stpa.blocks.backbones.weights import (
    WeightsUnavailableError,
    cross_modality_init,
    freeze_all_but_first_batch_norm,
    is_download_failure,
    normalize_weights,
)

LEVELS = ("S", "A", "B", "C", "fc")
TOP_LEVELS = ("A", "B", "C", "fc")
MODALITIES = ("rgb", "flow")


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What `stpa.models` needs to know about one backbone.

    Attributes:
      name: registry name, e.g. "inception_resnet_v2".
      build_fn: `(input_shape (H, W, C_in), weights None | "imagenet" | path) -> trunk`.
      taps_fn: `trunk -> {"S", "A", "B", "C": tensor in the trunk's graph}`.
      default_input_size: square input size of the pretrained network.
      min_input_size: smallest input the architecture accepts.
      fixed_input_size: the input must be `default_input_size` (VGG16's fc6).
      imagenet: True if `weights="imagenet"` can be fetched by Keras.
      imagenet_hint: what to do instead when it cannot.
      tap_table: level -> "layer, shape at the default size" (documentation, BUILD.md).
    """

    name: str
    build_fn: Callable[[Sequence[int], str | None], keras.Model]
    taps_fn: Callable[[keras.Model], dict[str, keras.KerasTensor]]
    default_input_size: int
    min_input_size: int
    fixed_input_size: bool
    imagenet: bool
    imagenet_hint: str
    tap_table: Mapping[str, str]


_KERAS_HINT = (
    "Keras downloads it once into ~/.keras/models: run the same command on a machine with internet (or copy that "
    "cache), or download the file named in the error and pass its local path as weights=PATH (--weights=PATH)."
)

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            name="inception_resnet_v2",
            build_fn=applications.build_inception_resnet_v2,
            taps_fn=applications.inception_resnet_v2_taps,
            default_input_size=299,
            min_input_size=75,
            fixed_input_size=False,
            imagenet=True,
            imagenet_hint=_KERAS_HINT,
            tap_table={
                "S": "Conv2d_4a_3x3 (input of the 2nd MaxPooling2D), 71x71x192",
                "A": "last Inception-ResNet-A before activation (input of block35_10_ac), 35x35x320",
                "B": "last Inception-ResNet-B before activation (input of block17_20_ac), 17x17x1088",
                "C": "last Inception-ResNet-C, no activation (input of conv_7b), 8x8x2080",
                "fc": "global average pool of conv_7b_ac, 1536",
            },
        ),
        BackboneSpec(
            name="vgg16",
            build_fn=applications.build_vgg16,
            taps_fn=applications.vgg16_taps,
            default_input_size=224,
            min_input_size=224,
            fixed_input_size=True,
            imagenet=True,
            imagenet_hint=_KERAS_HINT,
            tap_table={
                "S": "conv2_2 (block2_conv2), 112x112x128",
                "A": "conv3_3 (block3_conv3), 56x56x256",
                "B": "conv4_3 (block4_conv3), 28x28x512",
                "C": "conv5_3 (block5_conv3), 14x14x512",
                "fc": "fc7 (fc2), 4096",
            },
        ),
        BackboneSpec(
            name="bn_inception",
            build_fn=bn_inception.build_bn_inception,
            taps_fn=bn_inception.bn_inception_taps,
            default_input_size=224,
            min_input_size=32,
            fixed_input_size=False,
            imagenet=False,
            imagenet_hint=(
                "Keras has no BN-Inception. Convert TSN's ImageNet model bn_inception-9f5701afb96c8044.pth with "
                "`python -m stpa.convert_weights --input=bn_inception-9f5701afb96c8044.pth "
                "--output=bn_inception.weights.h5` (needs torch) and pass weights=bn_inception.weights.h5."
            ),
            tap_table={
                "S": "conv2_3x3 after ReLU (conv2_relu_3x3), 56x56x192",
                "A": "inception_3b_output, 28x28x320",
                "B": "inception_4d_output, 14x14x608",
                "C": "inception_5b_output, 7x7x1024",
                "fc": "global_pool, 1024",
            },
        ),
        *(
            BackboneSpec(
                name=f"resnet{depth}",
                build_fn=applications.resnet_builder(depth),
                taps_fn=applications.resnet_taps,
                default_input_size=224,
                min_input_size=32,
                fixed_input_size=False,
                imagenet=True,
                imagenet_hint=_KERAS_HINT,
                tap_table={
                    "S": "conv2 stage, last block before ReLU (conv2_block3_add), 56x56x256",
                    "A": f"conv3 stage, last block before ReLU (conv3_block{4 if depth < 152 else 8}_add), 28x28x512",
                    "B": f"conv4 stage, last block before ReLU (conv4_block{ {50: 6, 101: 23, 152: 36}[depth] }_add), "
                    "14x14x1024",
                    "C": "conv5 stage, last block before ReLU (conv5_block3_add), 7x7x2048",
                    "fc": "avg_pool, 2048",
                },
            )
            for depth in (50, 101, 152)
        ),
        BackboneSpec(
            name="tiny",
            build_fn=tiny.build_tiny,
            taps_fn=tiny.tiny_taps,
            default_input_size=64,
            min_input_size=16,
            fixed_input_size=False,
            imagenet=False,
            imagenet_hint="The tiny backbone is trained from scratch: pass weights=None.",
            tap_table={
                "S": "s_bn2 (stage S before ReLU), 32x32x16",
                "A": "a_bn2 (stage A before ReLU), 16x16x32",
                "B": "b_bn2 (stage B before ReLU), 8x8x64",
                "C": "c_bn1 (stage C before ReLU), 4x4x128",
                "fc": "avg_pool, 128",
            },
        ),
        BackboneSpec(
            name="tiny_deep",
            build_fn=tiny.build_tiny_deep,
            taps_fn=tiny.tiny_deep_taps,
            default_input_size=64,
            min_input_size=16,
            fixed_input_size=False,
            imagenet=False,
            imagenet_hint=(
                "tiny_deep has no ImageNet weights; its stand-in is `python -m stpa.pretrain_backbone` (supervised "
                "pretraining on still frames of the synthetic generator): pass that file as weights=PATH."
            ),
            tap_table={
                "S": "s_bn2 (stage S before ReLU), 32x32x16",
                "A": "a_bn2 (stage A before ReLU), 16x16x32",
                "B": "b_bn2 (stage B before ReLU), 8x8x64",
                "C": "c_bn2 (stage C before ReLU; stage D follows: conv 3x3 128, conv 1x1 256), 4x4x128",
                "fc": "avg_pool of stage D, 256",
            },
        ),
    )
}


@dataclasses.dataclass
class Backbone:
    """A built trunk and where its pyramid taps are.

    Attributes:
      spec: the backbone's `BackboneSpec`.
      trunk: `(B', H, W, C_in)` -> pooled features `(B', F)`.
      taps: level -> tensor of the trunk's graph for S, A, B, C (`(B', H_j, W_j, C_j)`), and "fc" -> the pooled
        features `(B', F)`.
      feature_map: the last convolutional feature map, the input of the global pooling (`(B', h, w, F')`; for
        VGG16 pool5), e.g. what ST-attn consumes.
      modality: "rgb" or "flow".
    """

    spec: BackboneSpec
    trunk: keras.Model
    taps: dict[str, keras.KerasTensor]
    feature_map: keras.KerasTensor
    modality: str


def get_spec(name: str) -> BackboneSpec:
    """The `BackboneSpec` of a backbone name; ValueError listing the allowed names otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; allowed: {sorted(BACKBONES)}.")
    return BACKBONES[name]


def input_channels(modality: str, flow_length: int) -> int:
    """3 for RGB, 2 * flow_length for a flow stack (x/y interleaved)."""
    if modality not in MODALITIES:
        raise ValueError(f"Unknown modality {modality!r}; allowed: {list(MODALITIES)}.")
    return 3 if modality == "rgb" else 2 * flow_length


def check_input_size(spec: BackboneSpec, input_size: int | None) -> int:
    """Returns the input size to use (the backbone default for None); ValueError when the backbone can't take it."""
    size = spec.default_input_size if input_size is None else int(input_size)
    if spec.fixed_input_size and size != spec.default_input_size:
        raise ValueError(
            f"Backbone {spec.name!r} needs input_size={spec.default_input_size} (its fully connected layers fix the "
            f"feature map size); got {size}."
        )
    if size < spec.min_input_size:
        raise ValueError(f"Backbone {spec.name!r} needs input_size >= {spec.min_input_size}; got {size}.")
    return size


def _build_trunk(spec: BackboneSpec, input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """`spec.build_fn` with clear errors for ImageNet weights that cannot be had."""
    if weights == "imagenet" and not spec.imagenet:
        raise WeightsUnavailableError(f"No ImageNet weights for backbone {spec.name!r}. {spec.imagenet_hint}")
    try:
        with warnings.catch_warnings():
            # keras.applications warns about inputs with other than 3 channels: flow stacks are meant to have them.
            warnings.filterwarnings("ignore", message=".*input channels.*")
            return spec.build_fn(input_shape, weights)
    except Exception as error:  # Keras raises a bare Exception("URL fetch failure ...") when offline.
        if weights == "imagenet" and is_download_failure(error):
            raise WeightsUnavailableError(
                f"Could not download the ImageNet weights of {spec.name!r} ({error}). {spec.imagenet_hint}"
            ) from error
        raise


def build_backbone(
    name: str,
    *,
    input_size: int | None = None,
    modality: str = "rgb",
    flow_length: int = 5,
    weights: str | None = None,
    partial_bn: bool = False,
) -> Backbone:
    """Builds a backbone trunk for one stream and finds its pyramid taps.

    Args:
      name: a key of `BACKBONES`.
      input_size: square frame size (None: the backbone's default).
      modality: "rgb" (3 channels) or "flow" (2 * flow_length channels, x/y interleaved).
      flow_length: flow frames per stack.
      weights: None / "none" (random), "imagenet", or the path of a weights file for this trunk. For a flow stream,
        a file with 2 * flow_length input channels is loaded as is; RGB weights (ImageNet or a 3-channel file) are
        turned into flow weights by `cross_modality_init`.
      partial_bn: freeze every BatchNormalization but the first (TSN).

    Returns:
      A `Backbone`.

    Raises:
      ValueError: unknown backbone or modality, bad input size.
      FileNotFoundError: `weights` is a path that does not exist.
      WeightsUnavailableError: "imagenet" when no ImageNet weights exist for the backbone or they cannot be
        downloaded.
    """
    spec = get_spec(name)
    size = check_input_size(spec, input_size)
    channels = input_channels(modality, flow_length)
    weights = normalize_weights(weights)
    if modality == "rgb" or weights is None:
        trunk = _build_trunk(spec, (size, size, channels), weights)
    else:
        trunk = None
        if weights != "imagenet":
            try:  # A flow-stream weights file (e.g. TSN's flow model, converted).
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # Keras warns about every layer of a partial load.
                    trunk = _build_trunk(spec, (size, size, channels), weights)
            except ValueError:
                trunk = None  # RGB weights: the first convolution's kernel has 3 input channels.
        if trunk is None:
            rgb_trunk = _build_trunk(spec, (size, size, 3), weights)
            trunk = _build_trunk(spec, (size, size, channels), None)
            cross_modality_init(rgb_trunk, trunk)
            del rgb_trunk
    if partial_bn:
        freeze_all_but_first_batch_norm(trunk)
    taps = dict(spec.taps_fn(trunk))
    taps["fc"] = trunk.output
    pooling = trunk.output._keras_history.operation
    if isinstance(pooling, keras.layers.GlobalAveragePooling2D):
        feature_map = pooling.input
    else:  # VGG16: the trunk ends with fc7; its last feature map is pool5.
        feature_map = trunk.get_layer("block5_pool").output
    return Backbone(spec=spec, trunk=trunk, taps=taps, feature_map=feature_map, modality=modality)


__all__ = [
    "BACKBONES",
    "LEVELS",
    "MODALITIES",
    "TOP_LEVELS",
    "Backbone",
    "BackboneSpec",
    "WeightsUnavailableError",
    "build_backbone",
    "check_input_size",
    "cross_modality_init",
    "freeze_all_but_first_batch_norm",
    "get_spec",
    "input_channels",
    "normalize_weights",
]


def feature_extractor(
    name: str,
    *,
    input_size: int | None = None,
    modality: str = "rgb",
    flow_length: int = 5,
    weights: str | None = None,
    partial_bn: bool = False,
) -> keras.Model:
    """A backbone up to its last convolutional feature map, as a per-frame feature extractor.

    For ResNet-50/101/152 this is the last conv block (7 x 7 x 2048 at 224), the features of Meng et al. (Sec. 3.1,
    Table 4); for VGG16 pool5. The one construction of it: ST-attn's feature extraction (`st_attn.features`) and its
    network on frames (`st_attn.family`) both use it.

    Args:
      name: a key of `BACKBONES`.
      input_size: square frame size S (None: the backbone's default).
      modality: "rgb" or "flow".
      flow_length: flow frames per stack.
      weights: as in `build_backbone`.
      partial_bn: freeze every BatchNormalization but the first (TSN).

    Returns:
      A functional `keras.Model` named "<name>_features": frames `(B', S, S, C_in)` -> feature maps
      `(B', h, w, C)` (`Backbone.feature_map`), sharing the layers and weights of the backbone's trunk.

    Raises:
      As `build_backbone`.
    """
    built = build_backbone(
        name, input_size=input_size, modality=modality, flow_length=flow_length, weights=weights, partial_bn=partial_bn
    )
    return keras.Model(built.trunk.input, built.feature_map, name=f"{name}_features")
