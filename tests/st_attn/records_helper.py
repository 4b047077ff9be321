"""Writes a tiny prepared split (the `data.records` format) with ground-truth boxes and segments, for the tests.

Each video: a dark background with a bright square (class 0) or a bright bar (class 1) at a known place; the frames
from `first` to `last` carry the box of the object, the segment is those frames in seconds.
"""

import os

import cv2
import numpy as np
import tensorflow as tf

from data import records

FPS = 10.0


def _frame(height, width, box, label, rng):
    frame = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    if box is not None:
        x1, y1, x2, y2 = (np.asarray(box) * [width, height, width, height]).round().astype(int)
        frame[y1:y2, x1:x2] = (250, 60, 60) if label == 0 else (60, 60, 250)
    return frame


def video(
    video_id, label, *, num_frames=12, height=40, width=48, box=(0.5, 0.25, 0.875, 0.75), first=3, last=8, seed=0
):
    """The record of one video and its ground truth."""
    rng = np.random.default_rng(seed)
    frames, boxes = [], {}
    for t in range(num_frames):
        active = first <= t <= last
        image = _frame(height, width, box if active else None, label, rng)
        frames.append(cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
        if active:
            boxes[t] = (np.asarray([box], np.float32), np.asarray([label]))
    segments = np.array([[first / FPS, (last + 1) / FPS]], np.float32)
    return records.make_sequence_example(
        video_id=video_id,
        labels=[label],
        label_names=[f"class{label}"],
        frames=frames,
        fps=FPS,
        height=height,
        width=width,
        boxes=boxes,
        segments=segments,
        segment_labels=np.array([label]),
    )


def write_split(split_dir, examples, shards=1, num_classes=2):
    """Writes `examples` into `shards` TFRecord shards + manifest.json; returns the split directory."""
    os.makedirs(split_dir, exist_ok=True)
    for shard in range(shards):
        path = os.path.join(split_dir, records.shard_name("test", shard, shards) + records.RECORD_SUFFIX)
        with tf.io.TFRecordWriter(path) as writer:
            for example in examples[shard::shards]:
                writer.write(example.SerializeToString())
    manifest = {
        "format_version": records.FORMAT_VERSION,
        "class_names": [f"class{i}" for i in range(num_classes)],
        "num_classes": num_classes,
        "multi_label": False,
        "has_flow": False,
        "counts": {"videos": len(examples)},
    }
    records.write_manifest(split_dir, manifest)
    return split_dir
