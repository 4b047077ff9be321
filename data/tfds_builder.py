"""TensorFlow Datasets access to the prepared records, without a second copy of the data.

    import tensorflow_datasets as tfds
    import data.tfds_builder  # registers "video_records"

    builder = tfds.builder("video_records/ucf101", data_dir="~/tensorflow_datasets")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir="/data/UCF101"))
    train = builder.as_dataset(split="train")          # dicts: "image/encoded" decoded to uint8 (T, H, W, 3), ...
    raw = builder.as_dataset(split="train", decoders={"image/encoded": tfds.decode.SkipDecoding()})  # JPEG bytes

The dataset is stored ONCE, as the SequenceExample shards of `data.prepare`; this builder is a thin reader over them:

* ``manual_dir`` holding prepared records (``train/manifest.json``): they are used where they are;
* ``manual_dir`` holding the raw dataset: `data.preparation` writes the records (resumably, with ``workers``
  processes) to ``<data_dir>/video_records/<config>/records/`` - outside TFDS's version directory, whose atomic
  "incomplete dir" would otherwise throw away the finished shards of an interrupted run.

Either way the TFDS version directory holds only metadata (``dataset_info.json``, ``features.json``,
``metadata.json`` with the records path and class names); ``as_dataset`` reads the shards and decodes them with the
builder's features, so ``decoders`` (e.g. `tfds.decode.SkipDecoding`) work as usual. Only whole splits ("train",
"test") can be read. For the TSN training pipeline use `data.pipeline.build_dataset` on the same records: it decodes
only the sampled frames. On a cluster, prepare with ``python -m data.prepare --task_index/--num_tasks`` and point
``manual_dir`` at the result.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from data import extract, preparation, records, video_io


@dataclasses.dataclass(eq=False)
class VideoRecordsConfig(tfds.core.BuilderConfig):
    """Which raw dataset, and how its records are made when ``manual_dir`` holds the raw data.

    Attributes:
      dataset: one of `data.preparation.DATASETS`.
      split_number: official split (UCF101 / HMDB51 / UCF101-24).
      flow: flow method ("tvl1", "dis", "farneback", "none").
      frame_size: stored frame size ("340x256", short side "256", or "none").
      fps: resample videos to this frame rate (None: keep all frames).
      jpeg_quality: JPEG quality.
      workers: extraction processes (0: this process).
    """

    dataset: str = "ucf101"
    split_number: int = 1
    flow: str = "tvl1"
    frame_size: str = "340x256"
    fps: float | None = None
    jpeg_quality: int = 95
    workers: int = os.cpu_count() or 1


class VideoRecords(tfds.core.DatasetBuilder):
    """Video action-recognition datasets as prepared by `data.prepare` (see the module docstring)."""

    name = "video_records"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "SequenceExample records, format_version 1."}
    BUILDER_CONFIGS = [
        VideoRecordsConfig(name="ucf101", dataset="ucf101", description="UCF101 split 1, TV-L1 flow."),
        VideoRecordsConfig(name="hmdb51", dataset="hmdb51", description="HMDB51 split 1, TV-L1 flow."),
        VideoRecordsConfig(name="charades", dataset="charades", description="Charades v1, multi-label, TV-L1 flow."),
        VideoRecordsConfig(name="thumos14", dataset="thumos14", fps=10.0, description="THUMOS14 at 10 fps."),
        VideoRecordsConfig(name="ucf101_24", dataset="ucf101_24", description="UCF101-24 with boxes."),
        VideoRecordsConfig(
            name="synthetic", dataset="ucf101", flow="dis", frame_size="none", description="python -m data.synthetic"
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Point manual_dir at either records prepared by `python -m data.prepare` (the directory holding train/ and "
        "test/), or at the raw dataset in its official layout (see BUILD.md), which is then prepared."
    )

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """This file (TFDS 4.9's lookup through ``importlib_resources`` fails when that backport is absent)."""
        return epath.Path(__file__)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # <data_dir>/video_records/<config>/records: outside the version directory (see the module docstring).
        self._records_root = os.path.join(os.path.dirname(os.fspath(self.data_dir)), "records")

    def _info(self) -> tfds.core.DatasetInfo:
        frames = tfds.features.Sequence(tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"))
        flow = tfds.features.Sequence(tfds.features.Image(shape=(None, None, 1), encoding_format="jpeg"))
        return tfds.core.DatasetInfo(
            builder=self,
            description="Videos as frames + quantised optical flow (TSN format); keys as data.records.",
            features=tfds.features.FeaturesDict(
                {
                    records.VIDEO_ID: tfds.features.Text(),
                    records.LABEL_INDEX: tfds.features.Tensor(shape=(None,), dtype=np.int64),
                    records.NUM_FRAMES: tfds.features.Scalar(dtype=np.int64),
                    records.FPS: tfds.features.Scalar(dtype=np.float32),
                    records.HEIGHT: tfds.features.Scalar(dtype=np.int64),
                    records.WIDTH: tfds.features.Scalar(dtype=np.int64),
                    records.IMAGE: frames,
                    records.FLOW_X: flow,
                    records.FLOW_Y: flow,
                }
            ),
            metadata=tfds.core.MetadataDict(),
            homepage="https://github.com/ (this repository): data/tfds_builder.py",
        )

    def _download_and_prepare(self, dl_manager, download_config=None) -> None:
        del download_config
        manual_dir = os.fspath(dl_manager.manual_dir)
        if os.path.isfile(os.path.join(manual_dir, "train", records.MANIFEST_NAME)) or os.path.isfile(
            os.path.join(manual_dir, "test", records.MANIFEST_NAME)
        ):
            records_dir = manual_dir
        else:
            records_dir = self._records_root
            self._prepare_from_raw(manual_dir, records_dir)
        split_infos, class_names = [], None
        for split in preparation.SPLIT_NAMES:
            split_dir = os.path.join(records_dir, split)
            if not os.path.isfile(os.path.join(split_dir, records.MANIFEST_NAME)):
                continue
            manifest = records.read_manifest(split_dir)
            class_names = manifest["class_names"]
            lengths, sizes = [], 0
            for path in records.record_files(split_dir):
                with open(os.path.splitext(path)[0] + ".json") as f:
                    lengths.append(len(json.load(f)["videos"]))
                sizes += os.path.getsize(path)
            split_infos.append(tfds.core.SplitInfo(name=split, shard_lengths=lengths, num_bytes=sizes))
        if not split_infos:
            raise FileNotFoundError(f"No prepared split in {records_dir}")
        self.info.set_splits(tfds.core.SplitDict(split_infos))
        self.info.metadata["records_dir"] = os.path.abspath(records_dir)
        self.info.metadata["class_names"] = class_names

    def _prepare_from_raw(self, raw_dir: str, records_dir: str) -> None:
        config = self.builder_config
        dataset = preparation.load_dataset(config.dataset, raw_dir, split=config.split_number)
        options = extract.ExtractOptions(
            flow=config.flow,
            frame_size=video_io.parse_frame_size(config.frame_size),
            jpeg_quality=config.jpeg_quality,
            target_fps=config.fps,
        )
        for split, tasks in dataset.splits.items():
            if not tasks:
                continue
            summary = preparation.prepare_split(
                tasks,
                split=split,
                out_dir=records_dir,
                dataset_name=config.dataset,
                class_names=dataset.class_names,
                multi_label=dataset.multi_label,
                options=options,
                raw_dir=raw_dir,
                workers=config.workers,
                flags={"tfds_config": config.name},
            )
            if summary.failures:
                tf.get_logger().warning(
                    "%d videos of %s could not be used; see %s", len(summary.failures), split,
                    os.path.join(records_dir, split, records.FAILURES_NAME),
                )  # fmt: skip

    def _as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False) -> tf.data.Dataset:
        split = str(split)
        if split not in preparation.SPLIT_NAMES:
            raise ValueError(f"video_records reads whole splits {preparation.SPLIT_NAMES}; got {split!r}")
        files = records.record_files(os.path.join(self.info.metadata["records_dir"], split))
        dataset = tf.data.Dataset.from_tensor_slices(files)
        if shuffle_files:
            seed = read_config.shuffle_seed if read_config is not None else None
            dataset = dataset.shuffle(len(files), seed=seed)
        dataset = dataset.interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE
        )
        features = self.info.features

        def parse(serialized):
            context, sequence = tf.io.parse_single_sequence_example(
                serialized,
                context_features=records.context_features(),
                sequence_features={
                    key: tf.io.FixedLenSequenceFeature([], tf.string)
                    for key in (records.IMAGE, records.FLOW_X, records.FLOW_Y)
                },
            )
            example = dict(context)
            example[records.LABEL_INDEX] = tf.sparse.to_dense(context[records.LABEL_INDEX])
            example.update(sequence)
            return features.decode_example(example, decoders=decoders)

        return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
