"""Input normalisation per backbone and stream: what each pretrained network expects of a frame.

`preprocess_for(backbone, modality)` returns a function that maps float32 frames with values in [0, 255] -- any
leading dimensions, channels last; RGB in R, G, B order, flow as the quantised u8 values of x/y interleaved
stacks (`u8 = 255 * (clip(v, -20, 20) + 20) / 40`, zero motion = 127.5) -- to the network's input. It is pure
TensorFlow, so the data pipeline runs it inside `tf.data`, and SavedModel signatures can embed it.

  backbone                      RGB                                           flow
  inception_resnet_v2, tiny     x / 127.5 - 1 (Keras "tf" mode, [-1, 1])      x / 127.5 - 1
  vgg16, resnet50/101/152       RGB -> BGR, minus [103.939, 116.779, 123.68]  x - 128
                                (Keras "caffe" mode)
  bn_inception                  RGB -> BGR, minus [104, 117, 128] (TSN)       x - 128 (TSN)

The flow mapping keeps the RGB stream's input scale, so a flow network initialised from RGB weights by
cross-modality averaging (`stpa.blocks.backbones.cross_modality_init`) sees inputs of the magnitude its first layer was
trained on, and zero motion maps to (about) zero, as in TSN (flow mean 128, std 1 for BN-Inception).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from stpa.blocks.backbones import BACKBONES, MODALITIES

# Per-backbone RGB normalisation style.
_STYLE = {
    "inception_resnet_v2": "tf",
    "tiny": "tf",
    "tiny_deep": "tf",
    "vgg16": "caffe",
    "resnet50": "caffe",
    "resnet101": "caffe",
    "resnet152": "caffe",
    "bn_inception": "tsn",
}
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # Keras applications, "caffe" mode (B, G, R).
TSN_BGR_MEAN = (104.0, 117.0, 128.0)  # TSN's BN-Inception (B, G, R).
FLOW_MEAN = 128.0  # TSN's flow mean for caffe-style networks.


def _tf_mode(frames: tf.Tensor) -> tf.Tensor:
    """[0, 255] -> [-1, 1]."""
    return frames / 127.5 - 1.0


def _bgr_minus_mean(mean: tuple[float, float, float]) -> Callable[[tf.Tensor], tf.Tensor]:
    def preprocess(frames: tf.Tensor) -> tf.Tensor:
        bgr = tf.reverse(frames, axis=[-1])  # (..., 3) B, G, R
        return bgr - tf.constant(mean, dtype=frames.dtype)

    return preprocess


def _minus_flow_mean(frames: tf.Tensor) -> tf.Tensor:
    return frames - FLOW_MEAN


def preprocess_for(backbone: str, modality: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """The input normalisation of a backbone and stream (see the module docstring).

    Args:
      backbone: a key of `stpa.blocks.backbones.BACKBONES`.
      modality: "rgb" or "flow".

    Returns:
      A function `frames (..., C) float in [0, 255] -> (..., C) float32` normalised input.

    Raises:
      ValueError: unknown backbone or modality.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; allowed: {sorted(BACKBONES)}.")
    if modality not in MODALITIES:
        raise ValueError(f"Unknown modality {modality!r}; allowed: {list(MODALITIES)}.")
    style = _STYLE[backbone]
    if style == "tf":
        normalise = _tf_mode
    elif modality == "flow":
        normalise = _minus_flow_mean
    elif style == "caffe":
        normalise = _bgr_minus_mean(CAFFE_BGR_MEAN)
    else:
        normalise = _bgr_minus_mean(TSN_BGR_MEAN)

    def preprocess(frames: tf.Tensor) -> tf.Tensor:
        frames = tf.cast(frames, tf.float32)
        if modality == "rgb" and frames.shape[-1] not in (None, 3):
            raise ValueError(f"RGB frames must have 3 channels, got shape {frames.shape}.")
        return normalise(frames)

    preprocess.__name__ = f"preprocess_{backbone}_{modality}"
    preprocess.__doc__ = f"Normalises [0, 255] {modality} frames for {backbone} ({style} style)."
    return preprocess
