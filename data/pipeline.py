"""The TSN `tf.data` input pipeline over the records written by `data.prepare`.

Per video: choose the K segment frames (`data.sampling`) -> read and decode only their JPEGs -> augment
(`data.augment`) -> batch -> ``preprocess`` (the backbone's normalisation) -> prefetch. Two readers produce the same
clips (equal frame indices, crops and flips; pixels equal to about 1e-2, see tests/data/test_pipeline.py):

  ``offsets`` (default when every shard has a current ``.offsets`` index, `data.frame_offsets`): parses the small
      index entry, reads just the sampled JPEGs by byte offset and decodes / crops / resizes them with OpenCV
      (`data.clip_reader`). Reads about K / T of each video and is several times faster (benchmarks/pipeline.py).
  ``records``: parses the whole `tf.train.SequenceExample` and uses TensorFlow ops only (training:
      `tf.image.decode_and_crop_jpeg` decodes just the crop window): serialisable, for the tf.data service.

Every random choice of a clip (segment offsets, crop size and position, flip) comes from one per-clip seed drawn from
`tf.data.Dataset.random(seed)`, through stateless random ops, so ``seed`` + ``deterministic=True`` reproduce a
training stream exactly, with either reader, and make the stream a pure function of (seed, position): a resumed
run continues it with ``skip`` (the consumed clips are dropped before their frames are read). Test datasets are
always read in a fixed order (one pass, no shuffling), so their scores line up with ``metadata["video_id"]``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from data import augment, clip_reader, frame_offsets, sampling
from data import records as record_format
from data.records import read_manifest

__all__ = ["build_dataset", "clip_metadata", "label_targets", "read_manifest"]

MODALITIES = ("rgb", "flow")
READERS = ("auto", "offsets", "records")
DEFAULT_SHUFFLE_BUFFER = 64
# libjpeg's accurate integer IDCT, as OpenCV and PIL (TSN) decode; TF's default is the faster, coarser IFAST.
DCT_METHOD = "INTEGER_ACCURATE"
MAX_UNROLLED_DECODES = 64
# Shards read concurrently; more only costs memory once the decode work is parallel.
MAX_CYCLE_LENGTH = 8


def decode_jpegs(encoded: tf.Tensor, count: int, channels: int, crop_window: tf.Tensor | None) -> tf.Tensor:
    """Decodes (count,) JPEG strings to uint8 (count, h, w, channels), only ``crop_window`` (y, x, h, w) if given.

    Up to `MAX_UNROLLED_DECODES` decodes are separate ops (parallel, no loop overhead); more go through `tf.map_fn`.
    """

    def decode_one(data):
        if crop_window is None:
            return tf.io.decode_jpeg(data, channels=channels, dct_method=DCT_METHOD)
        return tf.image.decode_and_crop_jpeg(data, crop_window, channels=channels, dct_method=DCT_METHOD)

    if count <= MAX_UNROLLED_DECODES:
        return tf.stack([decode_one(encoded[i]) for i in range(count)])
    return tf.map_fn(decode_one, encoded, fn_output_signature=tf.TensorSpec([None, None, channels], tf.uint8))


def _interleave_flow(flow_x: tf.Tensor, flow_y: tf.Tensor, num_segments: int, flow_length: int) -> tf.Tensor:
    """(K*L, H, W, 1) x and y -> (K, H, W, 2L) with channels x0, y0, x1, y1, ... (TSN's flow stack order); any dtype.

    One concatenation of 2L slices along channels (faster here than stack + 5-D transpose).
    """
    shape = tf.shape(flow_x)
    x = tf.reshape(flow_x, [num_segments, flow_length, shape[1], shape[2], 1])  # (K, L, H, W, 1)
    y = tf.reshape(flow_y, [num_segments, flow_length, shape[1], shape[2], 1])
    return tf.concat([t for step in range(flow_length) for t in (x[:, step], y[:, step])], axis=-1)  # (K, H, W, 2L)


def _parse_fn(modality: str, reader: str) -> Callable[..., tuple]:
    """(serialized record or ``.offsets`` entry, shard path, seed) -> (context, frame lists, shard path, seed).

    The frame lists are encoded JPEGs (T,) per key for ``reader="records"``, (offset, length) spans (T, 2) per key
    for ``reader="offsets"``.
    """

    def parse(serialized: tf.Tensor, shard: tf.Tensor, seed: tf.Tensor):
        if reader == "offsets":
            context, frames = frame_offsets.parse_offsets(serialized, modality)
        else:
            context, frames = record_format.parse_sequence_example(serialized, modality)
        return context, frames, shard, seed

    return parse


def _make_clip_fn(
    *,
    training: bool,
    reader: str,
    num_frames: int,
    modality: str,
    flow_length: int,
    input_size: int,
    crops: int,
    multi_label: bool,
    num_classes: int | None,
    scales: Sequence[float],
    more_fix_crop: bool,
    max_distort: int,
    with_metadata: bool,
    frames_dtype: tf.DType,
    flip: bool,
    flip_targets: np.ndarray | None,
) -> Callable[[dict, dict, tf.Tensor, tf.Tensor], tuple]:
    """The per-clip function of testing (both readers) and of training with ``reader="records"``.

    It maps (parsed context, frame lists, shard path, int64 (2,) seed) to (frames, label[, metadata]); training with
    ``reader="offsets"`` goes through `_make_training_batch_fn` instead, with the same draws.
    """
    new_length = 1 if modality == "rgb" else flow_length
    channels = 3 if modality == "rgb" else 2 * flow_length
    depth = 3 if modality == "rgb" else 1
    keys = [record_format.IMAGE] if modality == "rgb" else [record_format.FLOW_X, record_format.FLOW_Y]

    def clip_fn(context: dict, frame_lists: dict, shard: tf.Tensor, seed: tf.Tensor):
        # One draw per random choice of the clip: K segment offsets, crop size and position, flip.
        uniforms = tf.random.stateless_uniform([num_frames + 3], seed, dtype=tf.float64)
        available = tf.shape(frame_lists[keys[0]])[0]
        with tf.control_dependencies(
            [tf.debugging.assert_positive(available, message=f"a record has no {modality} frames")]
        ):
            available = tf.identity(available)
        if training:
            offsets = sampling.train_offsets_tf(available, num_frames, uniforms[:num_frames], new_length)  # (K,)
        else:
            offsets = sampling.centre_offsets_tf(available, num_frames, new_length)  # (K,)
        indices = tf.reshape(sampling.stack_indices_tf(offsets, new_length, available), [-1])  # (K*L,)
        # Only the sampled frames: JPEG strings (K*L,) per key, or their byte spans (K*L, 2) for the offsets reader.
        selected = [tf.gather(frame_lists[key], indices) for key in keys]
        crop_uniforms = uniforms[num_frames : num_frames + 2]
        label_index = context[record_format.LABEL_INDEX]  # (n,)
        if training and flip:
            mirror, label_index = augment.flip_with_labels_tf(uniforms[num_frames + 2] < 0.5, label_index, flip_targets)

        count = num_frames * new_length
        if reader == "offsets":  # testing (offsets training is batched): whole frames, cropped below
            decoded = [clip_reader.full_frames_tf(shard, s, depth) for s in selected]  # (K*L, H, W, depth)
        elif training:
            image_shape = tf.image.extract_jpeg_shape(selected[0][0])
            window = augment.multiscale_crop_window_tf(
                image_shape[0], image_shape[1], input_size, crop_uniforms, scales, max_distort, more_fix_crop
            )
            decoded = [decode_jpegs(s, count, depth, window) for s in selected]  # each uint8 (K*L, h, w, depth)
        else:
            decoded = [decode_jpegs(s, count, depth, None) for s in selected]  # each uint8 (K*L, H, W, depth)
        if modality == "rgb":
            frames = decoded[0]  # (K, h, w, 3) uint8
        else:
            frames = _interleave_flow(decoded[0], decoded[1], num_frames, flow_length)  # (K, h, w, 2L) uint8

        if training:
            # Flip the small uint8 crop, then resize: bilinear resizing (half-pixel centres) commutes with
            # mirroring and with u -> 255 - u, and costs the same either way.
            if flip:
                frames = tf.cond(mirror, lambda: augment.flip_horizontally(frames, modality), lambda: frames)
            frames = tf.image.resize(frames, [input_size, input_size], method="bilinear")  # (K, S, S, C) float32
            frames = tf.ensure_shape(frames, [num_frames, input_size, input_size, channels])
        else:
            frames = augment.eval_crops(tf.cast(frames, tf.float32), input_size, crops, modality)
            frames = tf.ensure_shape(frames, [crops, num_frames, input_size, input_size, channels])
            if crops == 1:
                frames = frames[0]  # (K, S, S, C)
        if frames_dtype == tf.uint8:
            frames = tf.saturate_cast(tf.round(frames), tf.uint8)

        labels = label_targets(tf.RaggedTensor.from_tensor(label_index[None]), multi_label, num_classes)[0]
        if not with_metadata:
            return frames, labels
        return frames, labels, clip_metadata(context, offsets)

    return clip_fn


def label_targets(label_index: tf.RaggedTensor, multi_label: bool, num_classes: int | None) -> tf.Tensor:
    """Class indices (B, None) -> int32 (B,) first label (-1 for an unlabelled video) or float32 (B, C) multi-hot."""
    label_index = tf.cast(label_index, tf.int32)
    if multi_label:
        return tf.minimum(tf.reduce_sum(tf.one_hot(label_index, num_classes, dtype=tf.float32), axis=1), 1.0)
    return label_index.to_tensor(default_value=-1, shape=[None, 1])[:, 0]


def clip_metadata(context: dict, starts: tf.Tensor) -> dict[str, tf.Tensor]:
    """The metadata dict of `build_dataset` from a parsed context (one clip or a batch) and the sampled starts."""
    return {
        "video_id": context[record_format.VIDEO_ID],
        "frame_indices": starts,
        "num_frames": tf.cast(context[record_format.NUM_FRAMES], tf.int32),
        "fps": context[record_format.FPS],
        "height": tf.cast(context[record_format.HEIGHT], tf.int32),
        "width": tf.cast(context[record_format.WIDTH], tf.int32),
    }


def _make_training_batch_fn(
    *,
    num_frames: int,
    modality: str,
    multi_label: bool,
    num_classes: int | None,
    with_metadata: bool,
    flip: bool,
    flip_targets: np.ndarray | None,
    **clip_settings,
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple]:
    """The offsets reader's training function, applied per batch, with the same draws per clip as ``clip_fn``.

    The function maps (serialized ``.offsets`` entries (B,), shard paths (B,), int64 seeds (B, 2)) to
    (frames float32 (B, K, S, S, C), labels[, metadata]).
    """
    keys = [record_format.IMAGE] if modality == "rgb" else [record_format.FLOW_X, record_format.FLOW_Y]

    def batch_fn(serialized: tf.Tensor, shards: tf.Tensor, seeds: tf.Tensor):
        context, spans = frame_offsets.parse_offsets(serialized, modality)  # values (B,); spans (B, None, 2)
        uniforms = tf.map_fn(
            lambda seed: tf.random.stateless_uniform([num_frames + 3], seed, dtype=tf.float64),
            seeds,
            fn_output_signature=tf.float64,
        )  # (B, K + 3)
        label_index = context[record_format.LABEL_INDEX]  # (B, None)
        if flip:
            mirror, label_index = augment.flip_with_labels_tf(
                uniforms[:, num_frames + 2] < 0.5, label_index, flip_targets
            )
        else:
            mirror = tf.zeros_like(uniforms[:, 0], tf.bool)
        frames, starts = clip_reader.training_batch_tf(
            shards,
            context[record_format.VIDEO_ID],
            uniforms,
            [spans[key] for key in keys],
            flips=mirror,
            modality=modality,
            num_segments=num_frames,
            **clip_settings,
        )  # (B, K, S, S, C), (B, K)
        labels = label_targets(label_index, multi_label, num_classes)
        if not with_metadata:
            return frames, labels
        return frames, labels, clip_metadata(context, starts)

    return batch_fn


def _repeat_clips(*element, clips: int) -> tf.data.Dataset:
    """``clips`` copies of one video's element (..., int64 (2,) seed), each with its own seed split from it."""
    *video, seed = element
    return tf.data.Dataset.zip(
        (
            *(tf.data.Dataset.from_tensors(part).repeat(clips) for part in video),
            tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_split(seed, clips)),
        )
    )


def choose_reader(files: list[str], reader: str) -> str:
    """Resolves ``reader`` ("auto", "offsets" or "records") for the shard ``files``.

    Raises:
      ValueError: an unknown reader.
      FileNotFoundError: ``reader="offsets"`` and a shard has no current ``.offsets`` index (with the fix).
    """
    if reader not in READERS:
        raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
    if reader == "records":
        return reader
    stale = [path for path in files if not frame_offsets.is_current(path)]
    if not stale:
        return "offsets"
    hint = (
        f"{len(stale)} of {len(files)} shards (e.g. {stale[0]}) have no current {frame_offsets.OFFSETS_SUFFIX} index: "
        f"write them with `python -m data.frame_offsets --records={os.path.dirname(stale[0])}`"
    )
    if reader == "offsets":
        raise FileNotFoundError(hint + ", or use reader='records'.")
    logging.warning("%s; reading whole records meanwhile (several times slower).", hint)
    return "records"


def record_stream(
    files: Sequence[str],
    *,
    training: bool,
    seed: int | None,
    ordered: bool,
    input_context: tf.distribute.InputContext | None,
    shuffle_buffer: int,
    repeat: int | None,
    sources: Sequence[str] | None = None,
) -> tf.data.Dataset:
    """The record-level skeleton every split reader shares (frames here, cached features in `st_attn.features`).

    Shard files -> this input pipeline's share (by file when there are enough files, else by record) -> shuffled
    file order (training) -> interleaved records -> record shuffle (training) -> repeat -> one int64 (2,) seed per
    element, from `tf.data.Dataset.random(seed)` (training) or zeros (testing), for the stateless random ops of
    the clip functions. A resumed run `skip`s elements of this stream: nothing has been parsed or decoded yet.

    Args:
      files: the shard files (their order is the split's).
      training: shuffle, repeat forever (unless `repeat`) and draw per-element seeds.
      seed: seed of the file order, the shuffles and the per-element seeds.
      ordered: deterministic interleave (element order fixed by `seed`).
      input_context: `tf.distribute.InputContext` of a per-replica input pipeline, or None.
      shuffle_buffer: records in the record shuffle buffer.
      repeat: passes over the data; None = forever for training, once for testing.
      sources: what to read instead of each file, in the same order (e.g. its `.offsets` index); the element then
        carries the shard path as well.

    Returns:
      Elements `(serialized, seed)`, or `((serialized, shard_path), seed)` with `sources`.
    """
    pipelines, pipeline_id = 1, 0
    if input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
    if sources is None:
        dataset = tf.data.Dataset.from_tensor_slices(list(files))
        read = tf.data.TFRecordDataset
    else:
        dataset = tf.data.Dataset.from_tensor_slices((list(sources), list(files)))

        def read(source: tf.Tensor, shard: tf.Tensor) -> tf.data.Dataset:
            return tf.data.TFRecordDataset(source).map(lambda serialized: (serialized, shard))

    shard_by_file = pipelines > 1 and len(files) >= pipelines
    if shard_by_file:
        dataset = dataset.shard(pipelines, pipeline_id)
    elif pipelines > 1:
        logging.info("fewer shard files (%d) than input pipelines (%d): sharding by record", len(files), pipelines)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        read,
        cycle_length=min(len(files), MAX_CYCLE_LENGTH),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=ordered,
    )
    if pipelines > 1 and not shard_by_file:
        dataset = dataset.shard(pipelines, pipeline_id)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    passes = repeat if repeat is not None else (None if training else 1)
    if passes != 1:
        dataset = dataset.repeat(passes)
    if training:
        element_seeds = tf.data.Dataset.random(seed=seed).batch(2)
    else:
        element_seeds = tf.data.Dataset.from_tensors(tf.zeros([2], tf.int64)).repeat()
    return tf.data.Dataset.zip((dataset, element_seeds))


def training_flip_targets(manifest: dict | None, flip_label_map: str | Mapping[str, str | None]) -> np.ndarray | None:
    """`augment.flip_targets` of a split's training flips (None: the identity map).

    Raises:
      ValueError: an explicit map for records without a manifest (no class names), or names that are not classes.
    """
    manifest_map = (manifest or {}).get("flip_label_map")
    mapping = augment.resolve_flip_label_map(flip_label_map, manifest_map)
    if not mapping:
        return None
    if manifest is None:
        raise ValueError("a flip label map needs the class names of the records' manifest.json, which is missing.")
    return augment.flip_targets(manifest["class_names"], mapping)


def per_replica_batch_size(batch_size: int, input_context: tf.distribute.InputContext | None) -> int:
    """The batch one input pipeline yields: `batch_size` is global when an input context is given."""
    return batch_size if input_context is None else input_context.get_per_replica_batch_size(batch_size)


def finish_dataset(
    dataset: tf.data.Dataset, *, ordered: bool, input_context: tf.distribute.InputContext | None
) -> tf.data.Dataset:
    """Options every split reader sets (determinism; no auto-sharding under a strategy: done above), prefetch."""
    options = tf.data.Options()
    options.deterministic = ordered
    if input_context is not None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _validate_arguments(
    *,
    training: bool,
    modality: str,
    crops: int,
    frames_dtype: tf.DType | str,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None,
    num_frames: int,
    batch_size: int,
    input_size: int,
    flow_length: int,
    clips_per_video: int,
    skip: int,
) -> tf.DType:
    """Checks the arguments of `build_dataset` that need no records.

    Args:
      training: whether a training stream is built.
      modality: "rgb" or "flow".
      crops: test crops, 1, 3 or 10 (training: 1).
      frames_dtype: requested dtype of the frames, float32 or uint8 (a `tf.DType` or its name).
      preprocess: the normalisation applied to float32 frames, or None.
      num_frames: K, segments per clip.
      batch_size: the global batch size.
      input_size: S, the square model input side.
      flow_length: flow frames per stack.
      clips_per_video: clips drawn per video read.
      skip: consumed clips to drop (training only).

    Returns:
      ``frames_dtype`` as a `tf.DType` (float32 or uint8).

    Raises:
      ValueError: a bad argument (named, with the allowed values).
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if crops not in (1, 3, 10):
        raise ValueError(f"crops must be 1, 3 or 10, got {crops}")
    if training and crops != 1:
        raise ValueError("crops > 1 is a test-time option; training uses one random multi-scale crop.")
    frames_dtype = tf.as_dtype(frames_dtype)
    if frames_dtype not in (tf.float32, tf.uint8):
        raise ValueError(f"frames_dtype must be float32 or uint8, got {frames_dtype.name}")
    if frames_dtype == tf.uint8 and preprocess is not None:
        raise ValueError("frames_dtype=uint8 yields raw [0, 255] clips: apply `preprocess` in the model instead.")
    if num_frames < 1 or batch_size < 1 or input_size < 1 or flow_length < 1 or clips_per_video < 1:
        raise ValueError("num_frames, batch_size, input_size, flow_length and clips_per_video must be >= 1.")
    if skip < 0 or (skip and not training):
        raise ValueError(f"skip={skip}: skipping consumed clips is for training streams, and must be >= 0.")
    return frames_dtype


def _resolve_split(
    records: str | list[str],
    *,
    training: bool,
    modality: str,
    multi_label: bool,
    num_classes: int | None,
    flip: bool,
    flip_label_map: str | Mapping[str, str | None],
) -> tuple[list[str], int | None, np.ndarray | None]:
    """The shard files, number of classes and training flip targets of a split.

    Args:
      records: a split directory, a glob, or a list of shard files (as `build_dataset`).
      training: whether a training stream is built (flip targets are only resolved for training).
      modality: "rgb" or "flow" (flow needs records prepared with flow).
      multi_label: multi-hot labels requested.
      num_classes: classes given by the caller, or None (then the manifest's).
      flip: training flips requested.
      flip_label_map: the flip label map (`build_dataset`).

    Returns:
      ``(files, num_classes, flip_targets)``: the shard paths (the split's order); the classes (None without a
      manifest or an explicit value); int32 (num_classes,) class of each mirrored class, or None (identity map,
      no flips or testing).

    Raises:
      ValueError: flow of a split prepared without flow; multi-hot labels without a class count; a bad flip map.
      FileNotFoundError: no shards.
    """
    files = record_format.record_files(records)
    split_dir = record_format.split_dir_of(records)
    manifest = read_manifest(split_dir) if split_dir else None
    if manifest is not None:
        if modality == "flow" and not manifest.get("has_flow", True):
            raise ValueError(
                f"{split_dir} was prepared without flow (--flow=none): re-run data.prepare with --flow=tvl1 (or dis, "
                "farneback) to train the flow stream."
            )
        if num_classes is None:
            num_classes = int(manifest["num_classes"])
        if bool(manifest.get("multi_label")) and not multi_label:
            logging.warning("%s is multi-label; using each video's first label (pass multi_label=True).", split_dir)
    if multi_label and not num_classes:
        raise ValueError("multi_label=True needs num_classes (no manifest.json next to the records).")
    targets = training_flip_targets(manifest, flip_label_map) if training and flip else None
    return files, num_classes, targets


def _video_stream(
    files: list[str],
    *,
    reader: str,
    training: bool,
    seed: int | None,
    ordered: bool,
    input_context: tf.distribute.InputContext | None,
    shuffle_buffer: int,
    repeat: int | None,
    skip: int,
    clips_per_video: int,
) -> tuple[tf.data.Dataset, str]:
    """The per-video element stream, with consumed videos skipped when each video gives one clip.

    Args:
      files: the shard files.
      reader: "auto", "offsets" or "records" (resolved by `choose_reader`).
      training: whether a training stream is built.
      seed: seed of the file order, shuffles and per-element seeds.
      ordered: deterministic element order.
      input_context: the per-replica input context, or None.
      shuffle_buffer: records in the record shuffle buffer.
      repeat: passes over the data (None: forever for training, once for testing).
      skip: consumed clips of this pipeline's stream (dropped here only when ``clips_per_video == 1``).
      clips_per_video: clips drawn per video read.

    Returns:
      ``(dataset, reader)``: elements (serialized record or ``.offsets`` entry string (), shard path string (),
      int64 (2,) seed), and the resolved reader, "offsets" or "records".
    """
    reader = choose_reader(files, reader)
    sources = [frame_offsets.offsets_path(f) for f in files] if reader == "offsets" else files
    dataset = record_stream(
        files, training=training, seed=seed, ordered=ordered, input_context=input_context,
        shuffle_buffer=shuffle_buffer, repeat=repeat, sources=sources,
    )  # fmt: skip
    # (serialized record or .offsets entry, shard path, seed)
    dataset = dataset.map(lambda item, seed: (*item, seed))
    if skip and clips_per_video == 1:
        # (.offsets entry or record, shard, seed) elements: nothing is read from the frames or decoded yet.
        dataset = dataset.skip(skip)
    return dataset, reader


@dataclasses.dataclass(frozen=True)
class _Batching:
    """How the clips of one input pipeline are drawn and batched; shared by both batch builders.

    Attributes:
      clip_settings: keyword arguments shared by `_make_training_batch_fn` and `_make_clip_fn`.
      frames_dtype: float32 or uint8.
      batch_size: B, this input pipeline's batch size.
      drop_remainder: drop a last partial batch.
      ordered: deterministic element order.
      clips_per_video: clips drawn per video (training).
      shuffle_buffer: clips in the shuffle buffer (training, ``clips_per_video > 1``).
      seed: the shuffle's seed.
      skip: consumed clips to drop (``clips_per_video > 1``; otherwise already dropped per video).
    """

    clip_settings: dict
    frames_dtype: tf.DType
    batch_size: int
    drop_remainder: bool
    ordered: bool
    clips_per_video: int
    shuffle_buffer: int
    seed: int | None
    skip: int

    def repeated_clips(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """``clips_per_video`` clips of each video element, shuffled among other videos' clips, consumed skipped.

        Args:
          dataset: elements (..., int64 (2,) seed), one per video; ``clips_per_video > 1``.

        Returns:
          Elements of the same structure as ``dataset``'s, ``clips_per_video`` per video, each with its own seed
          split from the video's; ``skip`` of them dropped before any frame is read or decoded.
        """
        dataset = dataset.flat_map(functools.partial(_repeat_clips, clips=self.clips_per_video))
        dataset = dataset.shuffle(self.shuffle_buffer, seed=self.seed, reshuffle_each_iteration=True)
        return dataset.skip(self.skip) if self.skip else dataset


def _offsets_training_batches(dataset: tf.data.Dataset, batching: _Batching) -> tf.data.Dataset:
    """Training batches of the offsets reader: parse, sample, read, decode and augment a whole batch per call.

    Args:
      dataset: elements (``.offsets`` entry string (), shard path string (), int64 (2,) seed), one per video.
      batching: batch size, order, clips per video and the clip settings.

    Returns:
      Batches (frames ``frames_dtype`` (B, K, S, S, C), labels[, metadata]).
    """
    if batching.clips_per_video > 1:
        dataset = batching.repeated_clips(dataset)
    batch_fn = _make_training_batch_fn(**batching.clip_settings, dtype=batching.frames_dtype.as_numpy_dtype)
    dataset = dataset.batch(batching.batch_size, drop_remainder=batching.drop_remainder)
    return dataset.map(batch_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=batching.ordered)


def _per_clip_batches(
    dataset: tf.data.Dataset, batching: _Batching, *, training: bool, reader: str, crops: int
) -> tf.data.Dataset:
    """Batches of clips made one at a time: testing (both readers) and training with ``reader="records"``.

    Args:
      dataset: elements (serialized record or ``.offsets`` entry string (), shard path string (), int64 (2,)
        seed), one per video.
      batching: batch size, order, clips per video and the clip settings.
      training: whether a training stream is built.
      reader: "offsets" or "records".
      crops: test crops, 1, 3 or 10.

    Returns:
      Batches (frames ``frames_dtype`` (B, K, S, S, C) or (B, crops, K, S, S, C) for 3 or 10 test crops,
      labels[, metadata]).
    """
    ordered = batching.ordered
    parse_fn = _parse_fn(batching.clip_settings["modality"], reader)
    dataset = dataset.map(parse_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=ordered)
    if training and batching.clips_per_video > 1:  # parse once, draw several clips
        dataset = batching.repeated_clips(dataset)  # parsed, not decoded
    clip_fn = _make_clip_fn(
        **batching.clip_settings, training=training, reader=reader, crops=crops, frames_dtype=batching.frames_dtype
    )
    dataset = dataset.map(clip_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=ordered)
    return dataset.batch(
        batching.batch_size,
        drop_remainder=batching.drop_remainder,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=ordered,
    )


def _preprocess_and_finish(
    dataset: tf.data.Dataset,
    *,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None,
    ordered: bool,
    input_context: tf.distribute.InputContext | None,
) -> tf.data.Dataset:
    """Applies ``preprocess`` to the frames of each batch, then the options and prefetch of `finish_dataset`.

    Args:
      dataset: batches (frames (B, ...), labels[, metadata]).
      preprocess: maps float32 frames in [0, 255] to the model's input range; None leaves them.
      ordered: deterministic element order.
      input_context: the per-replica input context, or None.

    Returns:
      The batches, frames preprocessed, with the same structure.
    """
    if preprocess is not None:

        def apply_preprocess(frames, *rest):
            return (preprocess(frames), *rest)

        dataset = dataset.map(apply_preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=ordered)
    return finish_dataset(dataset, ordered=ordered, input_context=input_context)


def build_dataset(
    records: str | list[str],
    *,
    training: bool,
    num_frames: int,
    batch_size: int,
    modality: str = "rgb",
    flow_length: int = 5,
    input_size: int = 224,
    crops: int = 1,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    multi_label: bool = False,
    num_classes: int | None = None,
    seed: int | None = None,
    deterministic: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    repeat: int | None = None,
    with_metadata: bool = False,
    scales: Sequence[float] = augment.TSN_SCALES,
    more_fix_crop: bool = True,
    max_distort: int = 1,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    drop_remainder: bool | None = None,
    clips_per_video: int = 1,
    reader: str = "auto",
    frames_dtype: tf.DType | str = tf.float32,
    skip: int = 0,
    flip: bool = True,
    flip_label_map: str | Mapping[str, str | None] = augment.FLIP_MAP_FROM_MANIFEST,
) -> tf.data.Dataset:
    """TSN clips from prepared records.

    Args:
      records: a split directory written by `data.prepare` (``*.tfrecord`` + ``manifest.json``), a glob, or a list
        of shard files.
      training: training (random segment frames, multi-scale crop + flip, shuffled, repeated) or testing
        (segment centres, ``crops`` test crops, one pass in a fixed order).
      num_frames: K, the number of segments (frames or flow stacks) per clip.
      batch_size: the GLOBAL batch size; with ``input_context`` each replica gets
        ``input_context.get_per_replica_batch_size(batch_size)``.
      modality: "rgb" (C = 3) or "flow" (C = 2 * flow_length, channels x0, y0, x1, y1, ...).
      flow_length: consecutive flow frames per stack (TSN: 5).
      input_size: S, the square model input side.
      crops: test crops 1, 3 or 10 (training: 1).
      preprocess: maps float32 frames in [0, 255] (any leading dims) to the model's input range; identity if None.
      multi_label: labels as float32 multi-hot (B, num_classes) (Charades) instead of int32 (B,).
      num_classes: classes for multi-hot labels; default from the manifest.
      seed: seed of every random choice (file order, shuffling, sampling, crops, flips).
      deterministic: fixed element order (with ``seed``: a reproducible stream) at some cost in speed.
      input_context: `tf.distribute.InputContext` from `Strategy.distribute_datasets_from_function`: reads the
        ``input_pipeline_id``-th of ``num_input_pipelines`` parts (by shard file when there are enough files).
      repeat: passes over the data; None = forever for training, once for testing.
      with_metadata: also yield a metadata dict (see Returns).
      scales: multi-scale crop scales (TSN: 1, .875, .75, .66).
      more_fix_crop: 13 crop positions instead of 5.
      max_distort: most scale steps between crop height and width.
      shuffle_buffer: videos in the training shuffle buffer (``reader="records"``: each a whole encoded video).
      drop_remainder: drop a last partial batch; default True for training, False for testing.
      clips_per_video: training only: independent clips (own segment frames, crop, flip) drawn from each video
        record read, then shuffled among other videos' clips ("repeated augmentation"). 1 is TSN; more amortises
        reading and parsing a whole video over several clips when ``reader="records"``.
      flip: training only: mirror each clip left-right with probability 1/2 (TSN); False never mirrors.
      flip_label_map: training only: the class of a mirrored clip (`data.augment`, "Flip label map"): "manifest"
        (the manifest's "flip_label_map"; identity where it has none, e.g. UCF101, HMDB51, Charades), "identity",
        ``"A:B,C:-"`` class-name pairs, or a map {class: mirrored class or None (never mirrored)}.
      reader: "offsets" (read only the sampled JPEGs through the shards' ``.offsets`` indices; OpenCV decoding),
        "records" (parse whole records; TensorFlow ops only, serialisable), or "auto": "offsets" when every shard
        has a current index, else "records" with a warning saying how to write the indices.
      frames_dtype: float32, or uint8 (values rounded; a quarter of the memory traffic) for models that normalise
        on the accelerator (as mmaction2's data preprocessor does; `stpa.engine.trainer` trains this way). uint8 takes
        no ``preprocess``.
      skip: training only: clips of this input pipeline's stream already consumed (a resumed run: global clips
        consumed / ``num_input_pipelines``). They are dropped before any reading of frames or decoding (the records
        reader still reads their whole records), so the stream continues exactly where it stopped: with ``seed``
        and ``deterministic=True`` the result equals the uninterrupted stream after ``skip`` clips.

    Returns:
      `tf.data.Dataset` of ``(frames, labels)`` or ``(frames, labels, metadata)``:
      frames ``frames_dtype`` (B, K, S, S, C), or (B, crops, K, S, S, C) when testing with crops in {3, 10};
      labels int32 (B,) or float32 (B, num_classes) multi-hot;
      metadata {"video_id": string (B,), "frame_indices": int32 (B, K) 0-based sampled frame (flow: stack start)
      indices, "num_frames": int32 (B,), "fps": float32 (B,), "height"/"width": int32 (B,) of the stored frames}.

    Raises:
      ValueError: bad arguments (named, with the allowed values).
      FileNotFoundError: no shards; ``reader="offsets"`` without current ``.offsets`` indices.
    """
    frames_dtype = _validate_arguments(
        training=training, modality=modality, crops=crops, frames_dtype=frames_dtype, preprocess=preprocess,
        num_frames=num_frames, batch_size=batch_size, input_size=input_size, flow_length=flow_length,
        clips_per_video=clips_per_video, skip=skip,
    )  # fmt: skip
    files, num_classes, targets = _resolve_split(
        records, training=training, modality=modality, multi_label=multi_label, num_classes=num_classes,
        flip=flip, flip_label_map=flip_label_map,
    )  # fmt: skip
    per_replica_batch = per_replica_batch_size(batch_size, input_context)
    ordered = deterministic or not training
    dataset, reader = _video_stream(
        files, reader=reader, training=training, seed=seed, ordered=ordered, input_context=input_context,
        shuffle_buffer=shuffle_buffer, repeat=repeat, skip=skip, clips_per_video=clips_per_video,
    )  # fmt: skip
    clip_settings = dict(
        num_frames=num_frames,
        modality=modality,
        flow_length=flow_length,
        input_size=input_size,
        multi_label=multi_label,
        num_classes=num_classes,
        scales=tuple(scales),
        more_fix_crop=more_fix_crop,
        max_distort=max_distort,
        with_metadata=with_metadata,
        flip=training and flip,
        flip_targets=targets,
    )
    batching = _Batching(
        clip_settings=clip_settings,
        frames_dtype=frames_dtype,
        batch_size=per_replica_batch,
        drop_remainder=training if drop_remainder is None else drop_remainder,
        ordered=ordered,
        clips_per_video=clips_per_video,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        skip=skip,
    )
    if training and reader == "offsets":
        dataset = _offsets_training_batches(dataset, batching)
    else:
        dataset = _per_clip_batches(dataset, batching, training=training, reader=reader, crops=crops)
    return _preprocess_and_finish(dataset, preprocess=preprocess, ordered=ordered, input_context=input_context)
