"""Cached-feature mode: extraction into records (resumable) and the dataset over them."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from data import pipeline
from st_attn import features
from tests.st_attn import records_helper


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    examples = [records_helper.video(f"v{i}", i % 2, num_frames=10 + i, seed=i) for i in range(5)]
    return records_helper.write_split(str(tmp_path_factory.mktemp("records") / "test"), examples, shards=2)


def _extractor():
    frames = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, padding="same")(frames)  # (B', 4, 4, 4)
    return keras.Model(frames, x)


def test_extract_then_dataset_equals_extractor_on_pipeline_frames(split, tmp_path):
    extractor = _extractor()
    out = str(tmp_path / "features" / "test")
    manifest = features.extract_features(
        split,
        out,
        extractor,
        num_frames=4,
        input_size=16,
        preprocess=lambda x: x / 255.0,
        batch_size=2,
        dtype="float32",
        progress=False,
    )
    assert manifest["count"] == 5 and manifest["feature_shape"] == [4, 4, 4] and manifest["num_frames"] == 4
    reference = pipeline.build_dataset(
        split,
        training=False,
        num_frames=4,
        batch_size=8,
        input_size=16,
        preprocess=lambda x: x / 255.0,
        with_metadata=True,
    )
    frames, labels, metadata = next(iter(reference))
    expected = {
        vid.decode(): (extractor(frames[i]).numpy(), int(labels[i]), metadata["frame_indices"][i].numpy())
        for i, vid in enumerate(metadata["video_id"].numpy())
    }
    seen = set()
    for feats, labs, meta in features.feature_dataset(out, training=False, batch_size=2, with_metadata=True):
        for i, vid in enumerate(meta["video_id"].numpy()):
            want_features, want_label, want_indices = expected[vid.decode()]
            np.testing.assert_allclose(feats[i].numpy(), want_features, rtol=1e-5, atol=1e-6)
            assert int(labs[i]) == want_label
            np.testing.assert_array_equal(meta["frame_indices"][i].numpy(), want_indices)
            seen.add(vid.decode())
    assert seen == set(expected)

    # Fewer frames than stored: TSN test sampling among the stored ones (centres of 2 segments of 4 -> 1, 3).
    feats, _, meta = next(
        iter(features.feature_dataset(out, training=False, batch_size=1, num_frames=2, with_metadata=True))
    )
    vid = meta["video_id"][0].numpy().decode()
    np.testing.assert_allclose(feats[0].numpy(), expected[vid][0][[1, 3]], rtol=1e-5, atol=1e-6)
    # Training: shuffled, repeated, batches of fixed size.
    train = features.feature_dataset(out, training=True, batch_size=3, num_frames=3, seed=1)
    batch, labs = next(iter(train))
    assert batch.shape == (3, 3, 4, 4, 4) and labs.dtype == tf.int32


def test_extraction_resumes_and_refuses_other_settings(split, tmp_path):
    extractor = _extractor()
    out = str(tmp_path / "test")
    features.extract_features(split, out, extractor, num_frames=3, input_size=16, progress=False)
    shards = sorted(f for f in os.listdir(out) if f.endswith(".tfrecord"))
    assert len(shards) == 2
    os.remove(os.path.join(out, shards[1]))  # as if killed before the second shard was complete
    before = os.path.getmtime(os.path.join(out, shards[0]))
    manifest = features.extract_features(split, out, extractor, num_frames=3, input_size=16, progress=False)
    assert manifest["count"] == 5 and manifest["dtype"] == "float16"
    assert os.path.getmtime(os.path.join(out, shards[0])) == before  # finished shard not redone
    with pytest.raises(ValueError, match="num_frames"):
        features.extract_features(split, out, extractor, num_frames=5, input_size=16, progress=False)


def test_clear_errors(split, tmp_path):
    with pytest.raises(FileNotFoundError, match="st_attn.features"):
        features.feature_dataset(str(tmp_path), training=False, batch_size=1)
    with pytest.raises(ValueError, match="not a feature split"):
        features.feature_dataset(split, training=False, batch_size=1)
