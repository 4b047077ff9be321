"""The cached-feature format: backbone features extracted once into TFRecords, and a `tf.data` dataset over them.

Meng et al. trained the attention model on frozen ResNet features of the last conv block (7x7x2048 per frame at
224), fine-tuned on the dataset first (Sec. 3.1: a TSN run, `--weights=RUN_DIR`). Extracting them once makes
training the attention head cheap (and feasible on a CPU); the backbone is frozen in this mode and the clips are
fixed (TSN test sampling: the centres of n equal segments, centre crop), so training sees no frame or crop
augmentation, as in the authors' setup.

Layout (one directory per split, mirroring `data.prepare`'s):
  <features_dir>/<split>/<input shard name>.tfrecord   one `tf.train.Example` per video (keys below)
  <features_dir>/<split>/manifest.json                  FEATURES_FORMAT, feature_shape (h, w, C), num_frames, dtype,
                                                        class_names, num_classes, multi_label, count, extractor, ...
Record keys: "features" (bytes: (n, h, w, C) row-major in `dtype`), "video/id", "clip/label/index" (int64[]),
"frame_indices" (int64[n], 0-based frames of the video), "video/num_frames", "video/fps", "video/height",
"video/width".

Extraction is resumable: each input shard becomes one output shard, written under a temporary name and renamed
when complete; a re-run skips finished shards. The command line is `python -m st_attn.features` (st_attn/features.py);
the fine-tuned trunk of Sec. 3.1 is `st_attn.fine_tuned_trunk`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from data import pipeline

FEATURES_FORMAT = "st_attn.features"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
DTYPES = ("float16", "float32")

_FEATURES = "features"
_VIDEO_ID = "video/id"
_LABELS = "clip/label/index"
_FRAME_INDICES = "frame_indices"
_NUM_FRAMES = "video/num_frames"
_FPS = "video/fps"
_HEIGHT = "video/height"
_WIDTH = "video/width"
_SHAPE = "feature_shape"


def read_feature_manifest(split_dir: str) -> dict:
    """Reads `<split_dir>/manifest.json` of an extracted-feature split.

    Raises:
      FileNotFoundError: no manifest (extraction not run or not finished), saying what to run.
      ValueError: the directory holds prepared video records, not features.
    """
    path = os.path.join(split_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: extract features first with `python -m st_attn.features --records_dir=... "
            f"--out_dir=...` (a re-run finishes an interrupted extraction)."
        )
    from data import records as record_format

    manifest = record_format.read_manifest(split_dir)  # The one manifest reader; the format check is the features'.
    if manifest.get("format") != FEATURES_FORMAT:
        raise ValueError(
            f"{split_dir} is not a feature split written by st_attn.features (it may be prepared video records: "
            "pass those as --records_dir, features as --features_dir)."
        )
    return manifest


def _example(features: np.ndarray, labels: Sequence[int], metadata: dict, index: int, dtype: str) -> bytes:
    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))

    def raw(value: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    feature = {
        _FEATURES: raw(np.ascontiguousarray(features, dtype=dtype).tobytes()),
        _SHAPE: ints(features.shape),
        _VIDEO_ID: raw(metadata["video_id"][index]),
        _LABELS: ints(labels),
        _FRAME_INDICES: ints(metadata["frame_indices"][index]),
        _NUM_FRAMES: ints([metadata["num_frames"][index]]),
        _FPS: floats([metadata["fps"][index]]),
        _HEIGHT: ints([metadata["height"][index]]),
        _WIDTH: ints([metadata["width"][index]]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def extract_features(
    records: str,
    out_dir: str,
    feature_extractor: Callable,
    *,
    num_frames: int = 25,
    input_size: int = 224,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    modality: str = "rgb",
    flow_length: int = 5,
    batch_size: int = 4,
    dtype: str = "float16",
    extractor_config: dict | None = None,
    progress: bool = True,
) -> dict:
    """Runs `feature_extractor` on every video of a prepared split and writes the feature records.

    Args:
      records: a split directory written by `data.prepare` (shards + manifest.json).
      out_dir: the output split directory (created).
      feature_extractor: `(B', S, S, C_in) float32 -> (B', h, w, C)` (e.g. `stpa.blocks.backbones.feature_extractor`).
      num_frames: n, frames per video (TSN test sampling: segment centres).
      input_size: S, the centre-crop side fed to the extractor.
      preprocess: the backbone's normalisation of [0, 255] frames (`stpa.blocks.preprocessing.preprocess_for`).
      modality: "rgb" or "flow".
      flow_length: flow frames per stack (flow).
      batch_size: videos per extractor call (B' = batch_size * n frames).
      dtype: "float16" (half the disk; the default) or "float32".
      extractor_config: what the extractor is (backbone, weights ...), stored in the manifest.
      progress: show a progress bar.

    Returns:
      The written manifest.

    Raises:
      ValueError: bad dtype, or `out_dir` holds features extracted with other settings.
    """
    from tqdm import tqdm

    from data import records as record_format

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}.")
    source_manifest = record_format.read_manifest(records)
    multi_label = bool(source_manifest.get("multi_label", False))
    settings = {
        "format": FEATURES_FORMAT,
        "format_version": FORMAT_VERSION,
        "num_frames": int(num_frames),
        "input_size": int(input_size),
        "modality": modality,
        "flow_length": int(flow_length),
        "dtype": dtype,
        "extractor": extractor_config or {},
        "class_names": source_manifest.get("class_names"),
        "num_classes": int(source_manifest["num_classes"]),
        "multi_label": multi_label,
        "source_records": os.path.abspath(records),
    }
    os.makedirs(out_dir, exist_ok=True)
    settings_path = os.path.join(out_dir, "extraction.json")
    if os.path.exists(settings_path):
        with open(settings_path) as f:
            previous = json.load(f)
        differing = sorted(k for k in settings if k != "source_records" and previous.get(k) != settings[k])
        if differing:
            raise ValueError(
                f"{out_dir} holds features extracted with other settings ({', '.join(differing)}): use another "
                "--out_dir or delete it."
            )
    else:
        record_format.write_json_atomic(settings_path, settings)

    extract = tf.function(lambda frames: feature_extractor(frames, training=False), reduce_retracing=True)
    files = record_format.record_files(records)
    counts = source_manifest.get("counts")
    total = counts.get("videos") if isinstance(counts, dict) and isinstance(counts.get("videos"), int) else None
    count, feature_shape = 0, None
    bar = tqdm(
        total=total, unit="video", desc=f"features {os.path.basename(os.path.normpath(out_dir))}", disable=not progress
    )
    for shard in files:
        target = os.path.join(out_dir, os.path.basename(shard))
        if os.path.exists(target):  # finished by an earlier run
            for _ in tf.data.TFRecordDataset(target):
                count += 1
                bar.update(1)
            continue
        dataset = pipeline.build_dataset(
            [shard],
            training=False,
            num_frames=num_frames,
            batch_size=batch_size,
            modality=modality,
            flow_length=flow_length,
            input_size=input_size,
            preprocess=preprocess,
            multi_label=multi_label,
            num_classes=settings["num_classes"],
            with_metadata=True,
            deterministic=True,
        )
        temporary = f"{target}.tmp-{os.getpid()}"
        with tf.io.TFRecordWriter(temporary) as writer:
            for frames, labels, metadata in dataset:
                batch, frames_per_video = int(frames.shape[0]), int(frames.shape[1])
                folded = tf.reshape(frames, [-1, *frames.shape[2:]])  # (B*n, S, S, C_in)
                features = extract(folded).numpy()  # (B*n, h, w, C)
                features = features.reshape(batch, frames_per_video, *features.shape[1:])  # (B, n, h, w, C)
                feature_shape = list(features.shape[2:])
                metadata = {key: value.numpy() for key, value in metadata.items()}
                labels = labels.numpy()
                for index in range(batch):
                    label_list = np.flatnonzero(labels[index]) if multi_label else [labels[index]]
                    writer.write(_example(features[index], label_list, metadata, index, dtype))
                count += batch
                bar.update(batch)
        os.replace(temporary, target)
    bar.close()
    if feature_shape is None:  # every shard was done by an earlier run: read the shape back
        feature_shape = _peek_shape(out_dir)
    manifest = {**settings, "feature_shape": feature_shape, "count": count}
    record_format.write_json_atomic(os.path.join(out_dir, MANIFEST_NAME), manifest)
    return manifest


def _peek_shape(out_dir: str) -> list[int] | None:
    """(h, w, C) of the first stored record of a split (for resumed runs with nothing left to do)."""
    for path in _feature_files(out_dir):
        for serialized in tf.data.TFRecordDataset(path).take(1):
            example = tf.train.Example.FromString(serialized.numpy())
            return [int(v) for v in example.features.feature[_SHAPE].int64_list.value[1:]]
    return None


def _feature_files(split_dir: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(os.path.join(split_dir, "*.tfrecord")))
    if not files:
        raise FileNotFoundError(f"No feature shards (*.tfrecord) in {split_dir}: run `python -m st_attn.features`.")
    return files


def feature_dataset(
    features_dir: str,
    *,
    training: bool,
    batch_size: int,
    num_frames: int | None = None,
    multi_label: bool = False,
    num_classes: int | None = None,
    seed: int | None = None,
    deterministic: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    repeat: int | None = None,
    with_metadata: bool = False,
    shuffle_buffer: int = 256,
    drop_remainder: bool | None = None,
    skip: int = 0,
) -> tf.data.Dataset:
    """A dataset of cached features, shaped like `data.pipeline.build_dataset`'s but with features for frames.

    Args:
      features_dir: a split directory written by `extract_features`.
      training: shuffle and repeat (and with `num_frames` < stored n, draw one random stored frame per segment).
      batch_size: the global batch size (per replica with `input_context`).
      num_frames: frames per clip; None or the stored n uses every stored frame; fewer are sampled TSN-style
        (training: one random frame per segment, testing: segment centres) among the stored ones.
      multi_label: labels as float32 multi-hot (B, num_classes).
      num_classes: default from the manifest.
      seed: shuffling / sampling seed.
      deterministic: fixed element order.
      input_context: `tf.distribute.InputContext` for per-replica input pipelines.
      repeat: passes over the data; None = forever for training, once for testing.
      with_metadata: also yield the metadata dict of `build_dataset` ("video_id", "frame_indices", "num_frames",
        "fps", "height", "width").
      shuffle_buffer: records in the shuffle buffer.
      drop_remainder: default True for training, False for testing.
      skip: training only: clips of this input pipeline's stream already consumed (a resumed run); dropped before
        parsing, so the stream continues where it stopped (exactly, with `seed` and `deterministic`).

    Returns:
      `tf.data.Dataset` of `(features float32 (B, n, h, w, C), labels)` or `(..., metadata)`; labels int32 (B,)
      (the first label) or float32 (B, num_classes).
    """
    manifest = read_feature_manifest(features_dir)
    stored = int(manifest["num_frames"])
    height, width, channels = (int(v) for v in manifest["feature_shape"])
    num_classes = int(num_classes or manifest["num_classes"])
    dtype = tf.float16 if manifest["dtype"] == "float16" else tf.float32
    frames = stored if num_frames is None else int(num_frames)
    if frames < 1 or frames > stored:
        raise ValueError(
            f"num_frames={num_frames}: {features_dir} stores {stored} frames per video; use 1..{stored} or extract "
            "again with more frames."
        )
    spec = {
        _FEATURES: tf.io.FixedLenFeature([], tf.string),
        _VIDEO_ID: tf.io.FixedLenFeature([], tf.string),
        _LABELS: tf.io.VarLenFeature(tf.int64),
        _FRAME_INDICES: tf.io.FixedLenFeature([stored], tf.int64),
        _NUM_FRAMES: tf.io.FixedLenFeature([], tf.int64),
        _FPS: tf.io.FixedLenFeature([], tf.float32),
        _HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        _WIDTH: tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized, seed_pair):
        from data import sampling

        example = tf.io.parse_single_example(serialized, spec)
        features = tf.reshape(tf.io.decode_raw(example[_FEATURES], dtype), [stored, height, width, channels])
        if frames == stored:
            chosen = tf.range(stored, dtype=tf.int32)
        elif training:
            uniforms = tf.random.stateless_uniform([frames], seed_pair, dtype=tf.float64)
            chosen = sampling.train_offsets_tf(stored, frames, uniforms)
        else:
            chosen = sampling.centre_offsets_tf(stored, frames)
        features = tf.cast(tf.gather(features, chosen), tf.float32)  # (n, h, w, C)
        label_index = tf.sparse.to_dense(example[_LABELS])  # (n_labels,)
        # The frame pipeline's label and metadata handling (the feature records keep the video records' keys).
        labels = pipeline.label_targets(tf.RaggedTensor.from_tensor(label_index[None]), multi_label, num_classes)[0]
        if not with_metadata:
            return features, labels
        frame_indices = tf.cast(tf.gather(example[_FRAME_INDICES], chosen), tf.int32)  # (n,)
        return features, labels, pipeline.clip_metadata(example, frame_indices)

    files = _feature_files(features_dir)
    per_replica_batch = pipeline.per_replica_batch_size(batch_size, input_context)
    ordered = deterministic or not training
    dataset = pipeline.record_stream(
        files, training=training, seed=seed, ordered=ordered, input_context=input_context,
        shuffle_buffer=shuffle_buffer, repeat=repeat,
    )  # fmt: skip  # (serialized, seed)
    if skip < 0 or (skip and not training):
        raise ValueError(f"skip={skip}: skipping consumed clips is for training streams, and must be >= 0.")
    dataset = dataset.skip(skip).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=ordered)
    dataset = dataset.batch(per_replica_batch, drop_remainder=training if drop_remainder is None else drop_remainder)
    return pipeline.finish_dataset(dataset, ordered=ordered, input_context=input_context)
