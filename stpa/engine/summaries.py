"""TensorBoard image summaries of attention written during training (`stpa.train`, every --eval_every steps).

STPA models: the salient receptive fields of Sec. 4.4 on the first validation clip (K = 5 frames as in Fig. 4) for
output position m = 0 (threshold 0.5) and for all output positions (threshold 0.7). ST-attn models: the spatial mask
over each frame as a heat map, and a histogram of the temporal weights.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from stpa import saliency


def attention_images(outputs: dict, frames: np.ndarray) -> dict[str, np.ndarray]:
    """Pictures of one clip's attention.

    Args:
      outputs: the attention-outputs model's dict for a batch of one clip (numpy values).
      frames: (K, H, W, C) frames of that clip in [0, 255].

    Returns:
      {summary name: (h, w, 3) uint8 image}.
    """
    pictures = saliency.enlarge(saliency.displayable(frames))
    images = {}
    if "attention" in outputs:
        attention = np.asarray(outputs["attention"])[0]  # (d, K*H*W)
        images["attention/salient_fields_m0_t0.5"] = saliency.render_salient_fields(
            pictures, [attention], threshold=0.5, positions=0)
        images["attention/salient_fields_all_t0.7"] = saliency.render_salient_fields(
            pictures, [attention], threshold=0.7, positions=None)
    if "mask" in outputs:
        mask = np.asarray(outputs["mask"])[0, ..., 0]  # (K, h, w)
        images["attention/spatial_mask"] = saliency.tile_row(
            [saliency.overlay_mask(pictures[k], mask[k]) for k in range(min(len(pictures), len(mask)))])
    return images


def write_attention_summary(writer: tf.summary.SummaryWriter, step: int, outputs_model: Callable,
                            raw_dataset: tf.data.Dataset, preprocess: Callable[[tf.Tensor], tf.Tensor],
                            *, modality: str = "rgb") -> dict[str, np.ndarray]:
    """Runs the attention-outputs model on the first clip of `raw_dataset` and writes the pictures.

    Args:
      writer: summary writer.
      step: global step.
      outputs_model: `stpa.models.attention_outputs_model(model)`.
      raw_dataset: test dataset of clips in [0, 255] (preprocess=None), batch size 1, with metadata.
      preprocess: the backbone's preprocessing.
      modality: "rgb" or "flow" (flow stacks are shown as colour-coded flow).

    Returns:
      The images written.
    """
    del modality  # `saliency.displayable` tells RGB and flow apart by the channel count.
    frames, _, _ = next(iter(raw_dataset.take(1)))
    outputs = outputs_model(preprocess(tf.cast(frames, tf.float32)), training=False)
    outputs = {name: value.numpy() for name, value in outputs.items() if not isinstance(value, (list, tuple))}
    images = attention_images(outputs, frames.numpy()[0])
    with writer.as_default(step=step):
        for name, image in images.items():
            tf.summary.image(name, image[None])
        if "temporal_weights" in outputs:
            weights = outputs["temporal_weights"][0].mean(axis=0)  # (n,) mean over steps
            tf.summary.histogram("attention/temporal_weights", weights)
    return images
