"""A tiny prepared record set for the command-line tests (real SequenceExample shards + manifest).

Videos come from the synthetic benchmark's renderer (`data.synthetic.generate_video`) at a few pixels, flow from
OpenCV DIS (`data.flow`), records from `data.records.make_sequence_example`, in the layout `data.prepare` writes
(`<root>/<split>/*.tfrecord + manifest.json`). Idempotent: a complete set in `root` is reused.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from data import flow as flow_lib
from data import records, synthetic, video_io

NUM_CLASSES = 3


def write_tiny_records_with_offsets(root: str, **kwargs) -> str:
    """`write_tiny_records` plus each shard's `.offsets` index, as `data.prepare` leaves them. Returns `root`."""
    import glob

    from data import frame_offsets

    write_tiny_records(root, **kwargs)
    for shard in glob.glob(os.path.join(root, "*", "*.tfrecord")):
        if not frame_offsets.is_current(shard):
            frame_offsets.write_offsets(shard)
    return root


def write_tiny_records(
    root: str,
    *,
    num_classes: int = NUM_CLASSES,
    train_per_class: int = 4,
    test_per_class: int = 2,
    num_frames: int = 10,
    size: int = 36,
    seed: int = 0,
    shards: int = 2,
    multi_label: bool = False,
) -> str:
    """Writes (or reuses) a prepared dataset with "train" and "test" splits under `root`. Returns `root`.

    With `multi_label`, video g of class c is also labelled (c + 1) % num_classes when g is odd (Charades-like).
    """
    if all(os.path.exists(os.path.join(root, split, records.MANIFEST_NAME)) for split in ("train", "test")):
        return root
    config = synthetic.SyntheticConfig(
        seed=seed,
        num_classes=num_classes,
        num_frames=num_frames,
        width=size,
        height=size,
        num_distractors=1,
        actor_radius=5.0,
        noise_sigma=3.0,
    )
    rng = np.random.default_rng(seed)
    names = [synthetic.CLASSES[c][0] for c in range(num_classes)]
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        split_dir = os.path.join(root, split)
        os.makedirs(split_dir, exist_ok=True)
        examples = []
        for c in range(num_classes):
            for g in range(per_class):
                video = synthetic.generate_video(c, rng, config)
                frames = [video_io.encode_jpeg(f, 95) for f in video.frames]
                flows = [
                    flow_lib.quantize_flow(flow_lib.compute_flow(a, b, "dis"))
                    for a, b in zip(video.frames[:-1], video.frames[1:])
                ]
                labels = [c, (c + 1) % num_classes] if multi_label and g % 2 else [c]
                examples.append(
                    records.make_sequence_example(
                        video_id=f"v_{names[c]}_g{g:02d}_{split}",
                        labels=labels,
                        label_names=[names[i] for i in labels],
                        frames=frames,
                        fps=config.fps,
                        height=size,
                        width=size,
                        flow_x=[video_io.encode_jpeg(f[..., 0], 95) for f in flows],
                        flow_y=[video_io.encode_jpeg(f[..., 1], 95) for f in flows],
                    )
                )
        for shard in range(shards):
            path = os.path.join(split_dir, records.shard_name(split, shard, shards) + records.RECORD_SUFFIX)
            with tf.io.TFRecordWriter(path) as writer:
                for example in examples[shard::shards]:
                    writer.write(example.SerializeToString())
        manifest = {
            "format_version": records.FORMAT_VERSION,
            "class_names": names,
            "num_classes": num_classes,
            "counts": {"videos": len(examples)},
            "multi_label": multi_label,
            "has_flow": True,
            "flags": {"dataset": "synthetic-tiny"},
        }
        records.write_manifest(split_dir, manifest)
    return root


def make_run_dir(
    model_dir: str,
    *,
    model: str = "stpa",
    modality: str = "rgb",
    scales: int = 3,
    input_size: int = 32,
    flow_length: int = 2,
    num_classes: int = NUM_CLASSES,
    seed: int = 0,
    class_names=None,
    multi_label: bool = False,
) -> str:
    """A run directory as `stpa.train` leaves it (config.json + ckpt/ + best/), with untrained `tiny` weights.

    Returns the model_dir. The weights are random (seeded) but not trained, which is all evaluation/export tests
    need: their expected outputs are computed from the same weights.
    """
    import keras

    from stpa.engine import checkpoints
    from stpa.engine import config as config_lib
    from stpa.engine import family as family_lib

    options = {"scales": scales} if model == "stpa" else {}
    config = config_lib.from_values(
        dict(
            model_dir=model_dir,
            model=model,
            backbone="tiny",
            modality=modality,
            input_size=input_size,
            flow_length=flow_length,
            **options,
        )
    )
    build = family_lib.get_family(model).build_kwargs(config.family, num_classes, config.data)
    run_config = {
        "build": build,
        "input": "frames",
        "multi_label": multi_label,
        "class_names": class_names or [synthetic.CLASSES[c][0] for c in range(num_classes)],
        "train_frames": 3,
        "backbone": "tiny",
        "modality": modality,
        "flow_length": flow_length,
        "input_size": input_size,
        "model": model,
    }
    checkpoints.save_run_config(model_dir, run_config)
    keras.utils.set_random_seed(seed)
    network = checkpoints.build_from_config(run_config)
    step = tf.Variable(1, dtype=tf.int64)
    tf.train.CheckpointManager(
        checkpoints.weights_checkpoint(network, step=step),
        os.path.join(model_dir, checkpoints.CHECKPOINT_DIR),
        max_to_keep=1,
    ).save(1)
    tf.train.CheckpointManager(
        checkpoints.weights_checkpoint(network), os.path.join(model_dir, checkpoints.BEST_DIR), max_to_keep=1
    ).save(1)
    return model_dir
