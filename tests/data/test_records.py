"""The SequenceExample record format: keys, annotations read back exactly, file resolution, manifest errors."""

import os

import numpy as np
import pytest
import tensorflow as tf

from data import records
from tests.data.record_helpers import coded_video, write_split


def _video_with_ground_truth():
    video = coded_video(6, height=16, width=20)
    video.update(
        video_id="Class/v_x",
        labels=[1],
        fps=12.5,
        boxes={
            1: (np.array([[0.1, 0.2, 0.5, 0.6]], np.float32), np.array([1])),
            4: (np.array([[0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.75, 0.5]], np.float32), np.array([1, 0])),
        },
        segments=np.array([[0.5, 1.25], [2.0, 3.0]], np.float32),
        segment_labels=np.array([1, 0]),
    )
    return video


def test_sequence_example_keys_and_values():
    video = _video_with_ground_truth()
    example = records.make_sequence_example(
        video_id=video["video_id"], labels=[1, 0], label_names=["b", "a"], frames=video["frames"], fps=12.5,
        height=16, width=20, flow_x=video["flow_x"], flow_y=video["flow_y"], source="Class/v_x.avi",
    )  # fmt: skip
    context = example.context.feature
    assert context[records.VIDEO_ID].bytes_list.value == [b"Class/v_x"]
    assert context[records.NUM_FRAMES].int64_list.value == [6]
    assert context[records.LABEL_INDEX].int64_list.value == [1, 0]
    assert context[records.LABEL_STRING].bytes_list.value == [b"b", b"a"]
    assert context[records.FPS].float_list.value == [12.5]
    lists = example.feature_lists.feature_list
    assert len(lists[records.IMAGE].feature) == 6 and len(lists[records.FLOW_X].feature) == 5
    assert lists[records.IMAGE].feature[2].bytes_list.value == [video["frames"][2]]
    assert records.BBOX_XMIN not in lists and records.SEGMENT_START not in context

    context_t, sequence_t = records.parse_sequence_example(tf.constant(example.SerializeToString()), "flow")
    assert context_t[records.LABEL_INDEX].numpy().tolist() == [1, 0]
    assert sequence_t[records.FLOW_Y].shape == (5,)
    assert sequence_t[records.FLOW_Y].numpy()[3] == video["flow_y"][3]


def test_read_annotations_round_trip(tmp_path):
    video = _video_with_ground_truth()
    plain = coded_video(3, height=16, width=20)
    plain.update(video_id="Class/v_y", labels=[0])
    split = write_split(str(tmp_path / "test"), [video, plain], ["a", "b"])
    annotations = records.read_annotations(split)
    assert set(annotations) == {"Class/v_x", "Class/v_y"}
    entry = annotations["Class/v_x"]
    assert sorted(entry["boxes"]) == [1, 4]
    np.testing.assert_allclose(entry["boxes"][1], [[0.1, 0.2, 0.5, 0.6]])
    np.testing.assert_allclose(entry["boxes"][4], [[0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.75, 0.5]])
    assert entry["box_labels"][4].tolist() == [1, 0]
    np.testing.assert_allclose(entry["segments"], [[0.5, 1.25], [2.0, 3.0]])
    assert entry["segment_labels"].tolist() == [1, 0]
    facts = (entry["fps"], entry["num_frames"], entry["height"], entry["width"], entry["labels"])
    assert facts == (12.5, 6, 16, 20, [1])
    empty = annotations["Class/v_y"]
    assert empty["boxes"] == {} and empty["segments"].shape == (0, 2) and empty["num_flow_frames"] == 2


def test_record_files_resolution(tmp_path):
    video = coded_video(2, height=8, width=8)
    video.update(video_id="v", labels=[0])
    split = write_split(str(tmp_path / "train"), [video, dict(video, video_id="w")], ["a"], shards=2)
    files = records.record_files(split)
    assert [os.path.basename(f) for f in files] == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert records.record_files(os.path.join(split, "*-00001-*.tfrecord")) == files[1:]
    assert records.record_files(files) == files
    assert records.split_dir_of(split) == split and records.split_dir_of(files) == split
    with pytest.raises(FileNotFoundError, match="data.prepare"):
        records.record_files(str(tmp_path / "nothing"))


def test_read_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m data.prepare"):
        records.read_manifest(str(tmp_path))
    records.write_json_atomic(str(tmp_path / records.MANIFEST_NAME), {"format_version": records.FORMAT_VERSION + 1})
    with pytest.raises(ValueError, match="format_version"):
        records.read_manifest(str(tmp_path))
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
