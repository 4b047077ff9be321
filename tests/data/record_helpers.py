"""Writes small record sets with known pixel values for the data-layer tests."""

from __future__ import annotations

import os

import cv2
import numpy as np
import tensorflow as tf

from data import frame_offsets, records, video_io


def constant_frame(value: float | tuple, height: int, width: int, channels: int = 3) -> np.ndarray:
    frame = np.empty((height, width, channels), np.uint8)
    frame[...] = np.asarray(value, np.uint8)
    return frame if channels > 1 else frame[..., 0]


def encode_jpeg_444(rgb: np.ndarray) -> bytes:
    """Quality-100 JPEG without chroma subsampling (so one channel's values do not leak into another's)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    assert ok
    return data.tobytes()


def coded_video(num_frames: int, height: int = 32, width: int = 40, num_flow: int | None = None) -> dict:
    """A video whose frame t has R = x ramp, G = y ramp, B = 8 * t (recover the frame from B, the crop from R, G);
    flow frame i has x = 8 * i + 4 and y = 250 - 8 * i everywhere."""
    ramp_x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    ramp_y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    frames = []
    for t in range(num_frames):
        frame = np.stack([ramp_x, ramp_y, np.full((height, width), 8.0 * t)], -1)
        frames.append(encode_jpeg_444(np.round(frame).astype(np.uint8)))
    num_flow = num_frames - 1 if num_flow is None else num_flow
    flow_x = [video_io.encode_jpeg(constant_frame(8 * i + 4, height, width, 1), 100) for i in range(num_flow)]
    flow_y = [video_io.encode_jpeg(constant_frame(250 - 8 * i, height, width, 1), 100) for i in range(num_flow)]
    return {"frames": frames, "flow_x": flow_x, "flow_y": flow_y, "height": height, "width": width}


def write_split(
    split_dir: str,
    videos: list[dict],
    class_names: list[str],
    *,
    shards: int = 2,
    multi_label: bool = False,
    has_flow: bool = True,
    offsets: bool = True,
) -> str:
    """Writes ``videos`` (dicts with frames, flow_x, flow_y, height, width, labels, video_id, ...) as a split,
    with each shard's ``.offsets`` index unless ``offsets`` is False."""
    os.makedirs(split_dir, exist_ok=True)
    split = os.path.basename(split_dir.rstrip("/"))
    examples = []
    for video in videos:
        examples.append(
            records.make_sequence_example(
                video_id=video["video_id"],
                labels=video["labels"],
                label_names=[class_names[i] if i < len(class_names) else "?" for i in video["labels"]],
                frames=video["frames"],
                fps=video.get("fps", 25.0),
                height=video["height"],
                width=video["width"],
                flow_x=video["flow_x"] if has_flow else None,
                flow_y=video["flow_y"] if has_flow else None,
                boxes=video.get("boxes"),
                segments=video.get("segments"),
                segment_labels=video.get("segment_labels"),
            )
        )
    for shard in range(shards):
        path = os.path.join(split_dir, records.shard_name(split, shard, shards) + records.RECORD_SUFFIX)
        with tf.io.TFRecordWriter(path) as writer:
            for example in examples[shard::shards]:
                writer.write(example.SerializeToString())
        if offsets:
            frame_offsets.write_offsets(path)
    manifest = {
        "format_version": records.FORMAT_VERSION,
        "class_names": class_names,
        "num_classes": len(class_names),
        "multi_label": multi_label,
        "has_flow": has_flow,
        "counts": {"videos": len(videos)},
    }
    records.write_manifest(split_dir, manifest)
    return split_dir
