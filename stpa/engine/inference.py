"""The one inference loop: a model over a finite test dataset, for validation, evaluation and localisation.

`run_inference(batch_fn, dataset)` iterates `(inputs, labels, metadata)` batches (`data.pipeline.build_dataset(...,
with_metadata=True)` or an input source's test dataset), calls `batch_fn(inputs, labels)` -> `BatchResult`, and
gathers per-video logits, labels, video ids, metadata and any per-video outputs (e.g. attention maps), plus the
per-video-weighted sums of batch scalars (validation's loss terms). It stops after `max_videos` and shows one
progress bar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tqdm


@dataclasses.dataclass
class BatchResult:
    """What `batch_fn` returns for one batch of B videos.

    Attributes:
      logits: (B, C) float32 scores.
      scalars: batch means to average over videos (e.g. loss terms), {name: scalar}.
      per_video: arrays with a leading B axis to keep (e.g. attention masks), {name: (B, ...)}.
    """

    logits: np.ndarray
    scalars: Mapping[str, float] = dataclasses.field(default_factory=dict)
    per_video: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class InferenceResult:
    """Every video's outputs, in dataset order.

    Attributes:
      logits: (N, C) float32.
      labels: (N,) int or (N, C) multi-hot.
      video_ids: (N,) str.
      metadata: {key: (N, ...)} the dataset's metadata (numpy; video_id decoded).
      per_video: {name: (N, ...)} the `BatchResult.per_video` arrays.
      scalar_means: {name: mean over videos} of `BatchResult.scalars` (each batch weighted by its size).
    """

    logits: np.ndarray
    labels: np.ndarray
    video_ids: np.ndarray
    metadata: dict[str, np.ndarray]
    per_video: dict[str, np.ndarray]
    scalar_means: dict[str, float]

    @property
    def num_videos(self) -> int:
        """N."""
        return len(self.logits)


def run_preprocess(config: Mapping) -> Callable[[tf.Tensor], tf.Tensor]:
    """The one derivation of a trained run's input preprocessing, from its stored config.

    Args:
      config: the run's config.json dict (or a SavedModel's export config): "build" (with "model") and the data
        keys of `stpa.engine.config.data_of_run`.

    Returns:
      The family's `input_spec(...).preprocess`: uint8 frames [..., H, W, C] -> the model's float input.
    """
    from stpa.engine import config as config_lib
    from stpa.engine import family as family_lib

    family = family_lib.get_family(config["build"]["model"])
    return family.input_spec(family.make_config(config["build"]), config_lib.data_of_run(config)).preprocess


def _as_str(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])


def run_inference(
    batch_fn: Callable[[tf.Tensor, tf.Tensor], BatchResult],
    dataset: Iterable,
    *,
    max_videos: int | None = None,
    total: int | None = None,
    progress: bool = True,
    description: str = "inference",
    empty_message: str = "the test dataset is empty.",
    metadata_keys: Sequence[str] = ("video_id",),
) -> InferenceResult:
    """Runs `batch_fn` over a finite dataset of `(inputs, labels, metadata)` batches.

    Args:
      batch_fn: `(inputs, labels) -> BatchResult`.
      dataset: the batches; metadata needs "video_id".
      max_videos: stop after this many videos (the last batch is cut).
      total: number of videos, for the progress bar.
      progress: show a tqdm progress bar.
      description: progress-bar label.
      empty_message: the ValueError's message when no video was read.
      metadata_keys: the metadata entries to keep.

    Returns:
      InferenceResult.

    Raises:
      ValueError: the dataset yielded no video.
    """
    logits, labels, per_video, metadata = [], [], {}, {}
    sums: dict[str, float] = {}
    count = 0
    limit = min(total, max_videos) if total and max_videos else (max_videos or total)
    with tqdm.tqdm(total=limit, desc=description, unit="video", disable=not progress, leave=False) as bar:
        for inputs, batch_labels, batch_metadata in dataset:
            result = batch_fn(inputs, batch_labels)
            batch_logits = np.asarray(result.logits)
            take = len(batch_logits) if max_videos is None else min(len(batch_logits), max_videos - count)
            logits.append(batch_logits[:take])
            labels.append(np.asarray(batch_labels)[:take])
            for name in metadata_keys:
                value = batch_metadata[name]
                metadata.setdefault(name, []).append(np.asarray(value)[:take])
            for name, value in result.per_video.items():
                per_video.setdefault(name, []).append(np.asarray(value)[:take])
            for name, value in result.scalars.items():
                sums[name] = sums.get(name, 0.0) + float(value) * take
            count += take
            bar.update(take)
            if max_videos is not None and count >= max_videos:
                break
    if count == 0:
        raise ValueError(empty_message)
    gathered = {name: np.concatenate(values) for name, values in metadata.items()}
    video_ids = _as_str(gathered["video_id"]) if "video_id" in gathered else np.array([str(i) for i in range(count)])
    gathered["video_id"] = video_ids
    return InferenceResult(
        logits=np.concatenate(logits),
        labels=np.concatenate(labels),
        video_ids=video_ids,
        metadata=gathered,
        per_video={n: np.concatenate(v) for n, v in per_video.items()},
        scalar_means={name: value / count for name, value in sums.items()},
    )
