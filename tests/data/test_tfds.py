"""TFDS access over the same records (no second copy): from prepared records, and from the raw synthetic dataset."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from data import records, tfds_builder


def _first_by_id(split_dir):
    return {e["video_id"]: e for e in map(lambda x: records.example_to_dict(x, with_frames=True),
                                          records.iterate_sequence_examples(split_dir))}  # fmt: skip


def test_builder_over_prepared_records(synthetic_records, tmp_path):
    builder = tfds.builder("video_records/synthetic", data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=synthetic_records))
    assert builder.info.splits["train"].num_examples == 6 and builder.info.splits["test"].num_examples == 3
    assert builder.info.metadata["records_dir"] == os.path.abspath(synthetic_records)
    assert builder.info.metadata["class_names"] == ["MoveRight", "MoveLeft", "MoveUp"]
    # Only metadata is written by TFDS: the shards stay where data.prepare put them.
    written = [f for _, _, files in os.walk(tmp_path) for f in files]
    assert not [f for f in written if f.endswith(".tfrecord") or "tfrecord-" in f]

    stored = _first_by_id(os.path.join(synthetic_records, "train"))
    decoded = list(builder.as_dataset(split="train").take(2))
    for example in decoded:
        entry = stored[example["video/id"].numpy().decode()]
        frames = example["image/encoded"].numpy()
        assert frames.shape == (14, 48, 48, 3) and example["flow/x/encoded"].shape == (13, 48, 48, 1)
        np.testing.assert_array_equal(frames[5], tf.io.decode_jpeg(entry["frames"][5]).numpy())
        assert example["clip/label/index"].numpy().tolist() == entry["labels"]
    skipped = next(iter(builder.as_dataset(split="test", decoders={"image/encoded": tfds.decode.SkipDecoding()})))
    entry = _first_by_id(os.path.join(synthetic_records, "test"))[skipped["video/id"].numpy().decode()]
    assert skipped["image/encoded"].numpy().tolist() == entry["frames"]  # the JPEG bytes themselves

    reloaded = tfds.builder("video_records/synthetic", data_dir=str(tmp_path))  # a fresh builder finds the metadata
    assert reloaded.info.splits["train"].num_examples == 6
    with pytest.raises(ValueError, match="whole splits"):
        reloaded.as_dataset(split="train[:50%]")


def test_builder_prepares_raw_data_once(synthetic_raw, synthetic_records, tmp_path):
    config = tfds_builder.VideoRecordsConfig(name="tiny", dataset="ucf101", flow="dis", frame_size="none", workers=0)
    builder = tfds_builder.VideoRecords(config=config, data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=synthetic_raw))
    records_dir = builder.info.metadata["records_dir"]
    assert records_dir == os.path.join(str(tmp_path), "video_records", "tiny", "records")
    assert records.read_manifest(os.path.join(records_dir, "train"))["counts"]["videos"] == 6
    ids = sorted(e["video/id"].numpy().decode() for e in builder.as_dataset(split="test"))
    assert ids == sorted(_first_by_id(os.path.join(synthetic_records, "test")))
