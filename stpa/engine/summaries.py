"""TensorBoard image summaries of attention written during training (`stpa.train`, every --eval_every steps).

The first validation clip (K = 5 frames as in Fig. 4 of Du et al.) goes through the run's outputs model; the
family draws the pictures (`ModelFamily.summary_images`, e.g. STPA's salient receptive fields of Sec. 4.4, ST-attn's
Fig. 4 strips) and names the histograms (`summary_histograms`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf


def write_attention_summary(
    writer: tf.summary.SummaryWriter,
    step: int,
    family: Any,
    outputs_model: Callable,
    raw_dataset: tf.data.Dataset,
    preprocess: Callable[[tf.Tensor], tf.Tensor],
) -> dict[str, np.ndarray]:
    """Runs the attention-outputs model on the first clip of `raw_dataset` and writes the family's pictures.

    Args:
      writer: summary writer.
      step: global step.
      family: the run's `engine.family.ModelFamily` (its `summary_images` and `summary_histograms`).
      outputs_model: the family's `outputs_model(model)`.
      raw_dataset: test dataset of clips in [0, 255] (preprocess=None), batch size 1, with metadata.
      preprocess: the model's input normalisation.

    Returns:
      The images written.
    """
    frames, _, _ = next(iter(raw_dataset.take(1)))
    outputs = outputs_model(preprocess(tf.cast(frames, tf.float32)), training=False)
    outputs = {name: value.numpy() for name, value in outputs.items() if not isinstance(value, (list, tuple))}
    images = family.summary_images(outputs, frames.numpy()[0])
    with writer.as_default(step=step):
        for name, image in images.items():
            tf.summary.image(name, image[None])
        for name, values in family.summary_histograms(outputs).items():
            tf.summary.histogram(name, values)
    return images
