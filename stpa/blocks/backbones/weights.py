"""Backbone initialisation: ImageNet / local weights, cross-modality flow init, partial batch normalisation.

- `normalize_weights`: the user's `weights` argument (`None`, "none", "imagenet" or a path) checked up front.
- `cross_modality_init` (Sec. 3.4 of Du et al.: "Flow model is initialized by following [54]", Wang et al.,
  "Towards good practices for very deep two-stream ConvNets", and TSN): the flow network starts from the RGB
  network; its first convolution's kernel is the RGB kernel averaged over the 3 colour channels and replicated over
  the 2 * flow_length flow channels.
- `freeze_all_but_first_batch_norm` (TSN's "partial BN"): every BatchNormalization except the first is frozen --
  moving statistics and scale/offset -- which TSN found reduces over-fitting on small video datasets.
"""

from __future__ import annotations

import os
import urllib.error

import keras
import numpy as np


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but cannot be obtained (offline, or none exist for the backbone)."""


def normalize_weights(weights: str | None) -> str | None:
    """Checks a `weights` argument.

    Args:
      weights: None, "" or "none" (random initialisation), "imagenet", or the path of a weights file.

    Returns:
      None, "imagenet" or the absolute path of an existing file.

    Raises:
      FileNotFoundError: a path that does not exist.
    """
    if weights is None or str(weights).strip().lower() in ("", "none"):
        return None
    if str(weights).strip().lower() == "imagenet":
        return "imagenet"
    path = os.path.abspath(os.path.expanduser(str(weights)))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights={weights!r}: no such file. Pass 'imagenet', 'none', or the path of an existing weights file "
            "(e.g. a .weights.h5 written by `python -m stpa.convert_weights`, or a Keras application .h5)."
        )
    return path


def is_download_failure(error: BaseException) -> bool:
    """True for the errors `keras.utils.get_file` raises when a download fails (e.g. no internet)."""
    return isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError)) or (
        "URL fetch failure" in str(error)
    )


def first_convolution(model: keras.Model) -> keras.layers.Conv2D:
    """The first `Conv2D` of a model in topological order (the one reading the image / flow stack)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer
    raise ValueError(f"Model {model.name!r} has no Conv2D layer.")


def cross_modality_kernel(rgb_kernel: np.ndarray, channels: int) -> np.ndarray:
    """TSN's cross-modality initialisation of a first-layer kernel.

    Args:
      rgb_kernel: `(kh, kw, 3, filters)` kernel of the RGB network's first convolution.
      channels: input channels of the flow network (2 * flow_length).

    Returns:
      `(kh, kw, channels, filters)`: the mean over the 3 input channels, replicated `channels` times.
    """
    mean = np.mean(rgb_kernel, axis=2, keepdims=True)  # (kh, kw, 1, filters)
    return np.repeat(mean, channels, axis=2).astype(rgb_kernel.dtype)


def cross_modality_init(rgb_model: keras.Model, flow_model: keras.Model) -> None:
    """Copies an RGB network's weights into the same network built for a flow stack (in place).

    Layers are paired in topological order (the two models come from the same builder). Every weight is copied
    unchanged except the first convolution's kernel, set by `cross_modality_kernel`.

    Args:
      rgb_model: the network with 3 input channels and pretrained weights.
      flow_model: the same architecture with 2 * flow_length input channels.

    Raises:
      ValueError: the two models are not the same architecture.
    """
    rgb_layers = [layer for layer in rgb_model.layers if layer.weights]
    flow_layers = [layer for layer in flow_model.layers if layer.weights]
    if len(rgb_layers) != len(flow_layers):
        raise ValueError(
            f"Cross-modality init needs the same architecture; {rgb_model.name!r} has {len(rgb_layers)} layers with "
            f"weights, {flow_model.name!r} has {len(flow_layers)}."
        )
    first_rgb = first_convolution(rgb_model)
    for rgb_layer, flow_layer in zip(rgb_layers, flow_layers):
        values = rgb_layer.get_weights()
        if rgb_layer is first_rgb:
            channels = flow_layer.kernel.shape[2]
            values[0] = cross_modality_kernel(values[0], channels)
        flow_layer.set_weights(values)


def freeze_all_but_first_batch_norm(model: keras.Model) -> int:
    """TSN's partial BN: freezes every BatchNormalization layer except the first (in place).

    A frozen Keras BatchNormalization (`trainable = False`) runs in inference mode -- it normalises with its
    moving statistics and does not update them -- and its gamma/beta stop training, which is what TSN does
    (`eval()` mode and `requires_grad = False` for all BN layers but the first).

    Args:
      model: the per-frame trunk.

    Returns:
      The number of frozen layers.
    """
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in batch_norms[1:]:
        layer.trainable = False
    return max(len(batch_norms) - 1, 0)
