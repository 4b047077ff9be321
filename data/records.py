"""The on-disk record format: one `tf.train.SequenceExample` per video, sharded TFRecords, and the split manifest.

Keys (names follow MediaPipe's MediaSequence where one exists):

context
  ``video/id``              bytes    e.g. ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"``
  ``video/source``          bytes    path of the raw video / frame folder, relative to ``--raw_dir``
  ``video/num_frames``      int64    number of stored RGB frames T
  ``video/fps``             float    fps of the stored frames
  ``video/height``          int64    stored frame height
  ``video/width``           int64    stored frame width
  ``clip/label/index``      int64[]  class indices (several for multi-label datasets such as Charades)
  ``clip/label/string``     bytes[]  the class names of those indices
  ``segment/start``         float[]  temporal segments (THUMOS14 / Charades), seconds     (optional)
  ``segment/end``           float[]  seconds                                               (optional)
  ``segment/label/index``   int64[]  class index of each segment                           (optional)
feature lists
  ``image/encoded``         T x bytes          RGB JPEG per frame
  ``flow/x/encoded``        T_f x bytes        grayscale JPEG of the quantised x flow (T_f = T - 1 when extracted
  ``flow/y/encoded``        T_f x bytes        here; as found for imported rawframes), frame i -> i + 1
  ``region/bbox/xmin`` ...  T x float[n_t]     boxes of frame t, normalised to [0, 1] (``xmin``, ``ymin``,
  ``region/label/index``    T x int64[n_t]     ``xmax``, ``ymax``), and their class   (optional, UCF101-24 style)

Shards: ``<split>-SSSSS-of-NNNNN.tfrecord``, each with a ``.json`` index beside it (video ids, labels, frame counts,
failures, the extraction options), written before the shard is renamed into place; ``manifest.json`` and
``failures.txt`` summarise the split.
"""

from __future__ import annotations

import glob
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
FAILURES_NAME = "failures.txt"
RECORD_SUFFIX = ".tfrecord"
TEMPORARY_INFIX = ".tmp-"  # files being written: <final name>.tmp-<pid>-<random>, renamed into place when complete

VIDEO_ID = "video/id"
VIDEO_SOURCE = "video/source"
NUM_FRAMES = "video/num_frames"
FPS = "video/fps"
HEIGHT = "video/height"
WIDTH = "video/width"
LABEL_INDEX = "clip/label/index"
LABEL_STRING = "clip/label/string"
SEGMENT_START = "segment/start"
SEGMENT_END = "segment/end"
SEGMENT_LABEL = "segment/label/index"
IMAGE = "image/encoded"
FLOW_X = "flow/x/encoded"
FLOW_Y = "flow/y/encoded"
BBOX_XMIN = "region/bbox/xmin"
BBOX_YMIN = "region/bbox/ymin"
BBOX_XMAX = "region/bbox/xmax"
BBOX_YMAX = "region/bbox/ymax"
BBOX_LABEL = "region/label/index"
BBOX_KEYS = (BBOX_XMIN, BBOX_YMIN, BBOX_XMAX, BBOX_YMAX)


def shard_name(split: str, index: int, num_shards: int) -> str:
    """``train-00003-of-00010`` (without suffix)."""
    return f"{split}-{index:05d}-of-{num_shards:05d}"


def _bytes(values: list[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def make_sequence_example(
    *,
    video_id: str,
    labels: list[int],
    label_names: list[str],
    frames: list[bytes],
    fps: float,
    height: int,
    width: int,
    flow_x: list[bytes] | None = None,
    flow_y: list[bytes] | None = None,
    source: str = "",
    boxes: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    segments: np.ndarray | None = None,
    segment_labels: np.ndarray | None = None,
) -> tf.train.SequenceExample:
    """Builds the record of one video (keys in the module docstring).

    Args:
      video_id: the video's id.
      labels: class indices.
      label_names: their names.
      frames: T JPEG byte strings (RGB).
      fps: fps of the frames.
      height: frame height.
      width: frame width.
      flow_x: T_f grayscale JPEGs of quantised x flow (or None / empty).
      flow_y: T_f grayscale JPEGs of quantised y flow.
      source: raw path, for reports.
      boxes: ``{frame index (0-based, < T): (float (n, 4) normalised x1, y1, x2, y2, int (n,) labels)}``.
      segments: float (S, 2) seconds.
      segment_labels: int (S,).

    Returns:
      the `tf.train.SequenceExample`.
    """
    context = {
        VIDEO_ID: _bytes([video_id.encode()]),
        VIDEO_SOURCE: _bytes([source.encode()]),
        NUM_FRAMES: _ints([len(frames)]),
        FPS: _floats([fps]),
        HEIGHT: _ints([height]),
        WIDTH: _ints([width]),
        LABEL_INDEX: _ints(labels),
        LABEL_STRING: _bytes([name.encode() for name in label_names]),
    }
    if segments is not None and len(segments):
        segments = np.asarray(segments, dtype=np.float32).reshape(-1, 2)
        context[SEGMENT_START] = _floats(segments[:, 0])
        context[SEGMENT_END] = _floats(segments[:, 1])
        context[SEGMENT_LABEL] = _ints(np.asarray(segment_labels).reshape(-1))
    feature_lists = {IMAGE: tf.train.FeatureList(feature=[_bytes([f]) for f in frames])}
    if flow_x:
        feature_lists[FLOW_X] = tf.train.FeatureList(feature=[_bytes([f]) for f in flow_x])
        feature_lists[FLOW_Y] = tf.train.FeatureList(feature=[_bytes([f]) for f in flow_y])
    if boxes is not None:
        per_frame = [boxes.get(t, (np.zeros((0, 4), np.float32), np.zeros((0,), np.int64))) for t in range(len(frames))]
        for column, key in enumerate(BBOX_KEYS):
            feature_lists[key] = tf.train.FeatureList(
                feature=[_floats(np.asarray(b, np.float32).reshape(-1, 4)[:, column]) for b, _ in per_frame]
            )
        feature_lists[BBOX_LABEL] = tf.train.FeatureList(feature=[_ints(np.reshape(lab, -1)) for _, lab in per_frame])
    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list=feature_lists),
    )


def record_files(records: str | list[str]) -> list[str]:
    """Resolves a split directory, a glob pattern, a file, or a list of those to the sorted list of shard files.

    Raises:
      FileNotFoundError: nothing matches, with what was looked for.
    """
    items = [records] if isinstance(records, (str, os.PathLike)) else list(records)
    files: list[str] = []
    for item in items:
        item = os.fspath(item)
        if os.path.isdir(item):
            files.extend(sorted(glob.glob(os.path.join(glob.escape(item), "*" + RECORD_SUFFIX))))
        elif any(ch in item for ch in "*?["):
            files.extend(sorted(glob.glob(item)))
        elif os.path.isfile(item):
            files.append(item)
    if not files:
        raise FileNotFoundError(
            f"No {RECORD_SUFFIX} shards found in {records!r}: pass a split directory written by "
            "`python -m data.prepare` (e.g. OUT/train), a glob, or a list of files."
        )
    return files


def split_dir_of(records: str | list[str]) -> str | None:
    """The directory holding ``manifest.json`` for ``records`` (directory, glob or files), or None."""
    first = records if isinstance(records, (str, os.PathLike)) else (records[0] if records else None)
    if first is None:
        return None
    first = os.fspath(first)
    candidate = first if os.path.isdir(first) else os.path.dirname(first)
    return candidate if os.path.isfile(os.path.join(candidate, MANIFEST_NAME)) else None


def read_manifest(split_dir: str) -> dict[str, Any]:
    """Reads ``<split_dir>/manifest.json`` (class_names, num_classes, counts, multi_label, flags, format_version ...).

    Raises:
      FileNotFoundError: no manifest (the split was not prepared, or preparation has not finished).
      ValueError: a manifest of a newer format version.
    """
    path = os.path.join(split_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: prepare the data with `python -m data.prepare` (it writes the manifest once every "
            "shard of the split is complete; re-run it with the same flags to finish an interrupted run)."
        )
    with open(path) as f:
        manifest = json.load(f)
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {manifest['format_version']}, this code reads <= {FORMAT_VERSION}: update it."
        )
    return manifest


def write_manifest(split_dir: str, manifest: dict[str, Any]) -> str:
    """Writes ``<split_dir>/manifest.json`` atomically, in the format `read_manifest` reads. Returns its path.

    The one writer of split manifests (`data.preparation` and the tests' fixtures): ``format_version`` defaults to
    `FORMAT_VERSION` and ``num_classes`` to ``len(class_names)``; the folder is created. ``split_dir`` may be any
    `tf.io.gfile` path.

    Args:
      split_dir: the split directory (``OUT/train`` ...).
      manifest: JSON-serialisable facts of the split: ``class_names`` (C names) and, usually, ``counts``,
        ``multi_label``, ``has_flow``, ``flags`` ... (see `data.preparation.finalize_split`).

    Raises:
      ValueError: ``class_names`` is missing, or ``num_classes`` disagrees with it.
    """
    manifest = dict(manifest)
    class_names = manifest.get("class_names")
    if not isinstance(class_names, (list, tuple)):
        raise ValueError(f"the manifest of {split_dir} needs class_names (a list of the C class names).")
    manifest["class_names"] = list(class_names)
    manifest.setdefault("num_classes", len(class_names))
    if manifest["num_classes"] != len(class_names):
        raise ValueError(
            f"the manifest of {split_dir} says num_classes={manifest['num_classes']} but lists "
            f"{len(class_names)} class_names: give one name per class."
        )
    manifest.setdefault("format_version", FORMAT_VERSION)
    tf.io.gfile.makedirs(split_dir)
    path = os.path.join(split_dir, MANIFEST_NAME)
    write_json_atomic(path, manifest)
    return path


def manifest_video_count(manifest: dict[str, Any]) -> int | None:
    """Number of videos of a split's manifest (None when it says neither of the two ways).

    Prepared records (`data.prepare`) say ``counts.videos``; extracted features (`st_attn.features`) say ``count``.
    """
    counts = manifest.get("counts")
    if isinstance(counts, dict) and isinstance(counts.get("videos"), int):
        return int(counts["videos"])
    if isinstance(manifest.get("count"), int):
        return int(manifest["count"])
    return None


def temporary_name(path: str) -> str:
    """A name to write ``path`` under before renaming it into place: ``<path>.tmp-<pid>-<random>``.

    Unique across processes and machines (several Beam workers may attempt the same shard), and recognisable as a
    leftover of a killed run by its `TEMPORARY_INFIX`.
    """
    return f"{path}{TEMPORARY_INFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_json_atomic(path: str, value: Any) -> None:
    """Writes JSON to a temporary name and renames it into place (never leaves a half-written file).

    ``path`` may be any `tf.io.gfile` path (local, ``gs://`` ...).
    """
    temporary = temporary_name(path)
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(json.dumps(value, indent=1, sort_keys=True) + "\n")
    tf.io.gfile.rename(temporary, path, overwrite=True)


def iterate_sequence_examples(records: str | list[str]) -> Iterator[tf.train.SequenceExample]:
    """Yields every record of ``records`` as a parsed `tf.train.SequenceExample` (NumPy-side tools and tests)."""
    for raw in tf.data.TFRecordDataset(record_files(records)).as_numpy_iterator():
        yield tf.train.SequenceExample.FromString(raw)


def _context_value(example: tf.train.SequenceExample, key: str):
    feature = example.context.feature.get(key)
    if feature is None:
        return []
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


def _feature_list(example: tf.train.SequenceExample, key: str) -> list:
    if key not in example.feature_lists.feature_list:
        return []
    out = []
    for feature in example.feature_lists.feature_list[key].feature:
        kind = feature.WhichOneof("kind")
        out.append(list(getattr(feature, kind).value) if kind else [])
    return out


def example_to_dict(example: tf.train.SequenceExample, *, with_frames: bool = False) -> dict[str, Any]:
    """Decodes the annotation part of a record (and the encoded frames if asked) into Python/NumPy values.

    Returns:
      the `read_annotations` entry of the video, plus "video_id", "source", "num_flow_frames" and, if
      ``with_frames``, "frames", "flow_x", "flow_y" (lists of JPEG bytes).
    """
    num_frames = int(_context_value(example, NUM_FRAMES)[0])
    starts = np.asarray(_context_value(example, SEGMENT_START), np.float32)
    ends = np.asarray(_context_value(example, SEGMENT_END), np.float32)
    boxes: dict[int, np.ndarray] = {}
    box_labels: dict[int, np.ndarray] = {}
    columns = [_feature_list(example, key) for key in BBOX_KEYS]
    labels_per_frame = _feature_list(example, BBOX_LABEL)
    if columns[0]:
        for t, (xmin, ymin, xmax, ymax) in enumerate(zip(*columns)):
            if xmin:
                boxes[t] = np.stack([xmin, ymin, xmax, ymax], axis=-1).astype(np.float32)
                box_labels[t] = np.asarray(labels_per_frame[t], np.int64)
    out = {
        "video_id": _context_value(example, VIDEO_ID)[0].decode(),
        "source": (_context_value(example, VIDEO_SOURCE) or [b""])[0].decode(),
        "boxes": boxes,
        "box_labels": box_labels,
        "segments": np.stack([starts, ends], axis=-1).reshape(-1, 2),
        "segment_labels": np.asarray(_context_value(example, SEGMENT_LABEL), np.int64),
        "fps": float(_context_value(example, FPS)[0]),
        "num_frames": num_frames,
        "num_flow_frames": len(example.feature_lists.feature_list[FLOW_X].feature)
        if FLOW_X in example.feature_lists.feature_list
        else 0,
        "height": int(_context_value(example, HEIGHT)[0]),
        "width": int(_context_value(example, WIDTH)[0]),
        "labels": [int(v) for v in _context_value(example, LABEL_INDEX)],
    }
    if with_frames:
        out["frames"] = [v[0] for v in _feature_list(example, IMAGE)]
        out["flow_x"] = [v[0] for v in _feature_list(example, FLOW_X)]
        out["flow_y"] = [v[0] for v in _feature_list(example, FLOW_Y)]
    return out


def read_annotations(split_dir: str | list[str]) -> dict[str, dict[str, Any]]:
    """Localisation ground truth and video facts of every record of a split, for evaluation (NumPy).

    Args:
      split_dir: a split directory written by `data.prepare` (or a glob / list of shards).

    Returns:
      ``{video_id: {"boxes": {frame index (0-based): float32 (n, 4) normalised (x1, y1, x2, y2)},
      "box_labels": {frame index: int64 (n,)}, "segments": float32 (S, 2) seconds, "segment_labels": int64 (S,),
      "fps": float, "num_frames": int, "height": int, "width": int, "labels": list[int], ...}}``.
    """
    return {entry["video_id"]: entry for entry in map(example_to_dict, iterate_sequence_examples(split_dir))}


def context_features() -> dict[str, tf.io.FixedLenFeature | tf.io.VarLenFeature]:
    """Parsing spec of the context keys the `tf.data` pipeline reads."""
    return {
        VIDEO_ID: tf.io.FixedLenFeature([], tf.string),
        NUM_FRAMES: tf.io.FixedLenFeature([], tf.int64),
        FPS: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
        HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        WIDTH: tf.io.FixedLenFeature([], tf.int64),
        LABEL_INDEX: tf.io.VarLenFeature(tf.int64),
    }


def sequence_features(modality: str) -> dict[str, tf.io.FixedLenSequenceFeature]:
    """Parsing spec of the encoded-frame feature lists for ``modality`` ("rgb" or "flow")."""
    keys = (IMAGE,) if modality == "rgb" else (FLOW_X, FLOW_Y)
    return {key: tf.io.FixedLenSequenceFeature([], tf.string) for key in keys}


def parse_sequence_example(serialized: tf.Tensor, modality: str) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Parses one serialized record: (context dict with dense ``clip/label/index``, encoded frame lists)."""
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=context_features(), sequence_features=sequence_features(modality)
    )
    context[LABEL_INDEX] = tf.sparse.to_dense(context[LABEL_INDEX])
    return context, sequence
