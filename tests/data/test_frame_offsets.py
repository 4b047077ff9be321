"""data.frame_offsets: frame byte spans in a record, the per-shard ``.offsets`` index, its freshness, parsing, CLI."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data import frame_offsets, records
from tests.data.record_helpers import coded_video, write_split

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = (records.IMAGE, records.FLOW_X, records.FLOW_Y)


def _example(
    video_id: str, num_frames: int, labels=(0,), *, flow: bool = True, annotations: bool = False, fps: float = 25.0
) -> tf.train.SequenceExample:
    """A record of ``num_frames`` 8x8 coded frames (distinct bytes per frame), flow and boxes / segments if asked."""
    video = coded_video(num_frames, 8, 8)
    boxes = segments = segment_labels = None
    if annotations:  # extra feature lists (boxes) and context keys (segments) the walker must skip
        two_boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.4, 0.4]], np.float32)
        boxes = {0: (np.array([[0.1, 0.2, 0.5, 0.6]], np.float32), np.array([1])), num_frames - 1: (two_boxes, [0, 1])}
        segments, segment_labels = np.array([[0.1, 0.3], [0.5, 0.9]]), np.array([0, 1])
    return records.make_sequence_example(
        video_id=video_id, labels=list(labels), label_names=["c"] * len(labels), frames=video["frames"], fps=fps,
        height=8, width=8, flow_x=video["flow_x"] if flow else None, flow_y=video["flow_y"] if flow else None,
        boxes=boxes, segments=segments, segment_labels=segment_labels,
    )  # fmt: skip


def _frames(example: tf.train.SequenceExample, key: str) -> list[bytes]:
    """The encoded frames of a feature list of a parsed record ([] when absent)."""
    if key not in example.feature_lists.feature_list:
        return []
    return [feature.bytes_list.value[0] for feature in example.feature_lists.feature_list[key].feature]


def _write_shard(path: str, examples: list[tf.train.SequenceExample]) -> str:
    with tf.io.TFRecordWriter(path) as writer:
        for example in examples:
            writer.write(example.SerializeToString())
    return path


def _index_entries(shard: str) -> list[tf.train.Example]:
    """The entries of a shard's ``.offsets`` file, read with TensorFlow's reader (checks the CRCs)."""
    return [
        tf.train.Example.FromString(data)
        for data in tf.data.TFRecordDataset(frame_offsets.offsets_path(shard)).as_numpy_iterator()
    ]


def _spans(entry: tf.train.Example, key: str) -> np.ndarray:
    """(offset, length) int64 (T, 2) of ``key`` in an ``.offsets`` entry."""
    feature = entry.features.feature
    offsets = np.asarray(feature[f"{key}/offset"].int64_list.value, np.int64)
    lengths = np.asarray(feature[f"{key}/length"].int64_list.value, np.int64)
    return np.stack([offsets, lengths], axis=-1).reshape(-1, 2)


SHARD_VIDEOS = (
    dict(video_id="a/with_flow_and_boxes", num_frames=4, labels=(2,), annotations=True, fps=30.0),
    dict(video_id="b/rgb_only", num_frames=3, labels=(0, 1), flow=False, fps=12.5),
    dict(video_id="c/segments", num_frames=5, labels=(1,), annotations=True),
)


@pytest.fixture
def shard(tmp_path) -> tuple[str, list[tf.train.SequenceExample]]:
    """A shard of 3 videos (flow + boxes, RGB only and multi-label, flow + segments) and its records."""
    examples = [_example(**video) for video in SHARD_VIDEOS]
    return _write_shard(str(tmp_path / "train-00000-of-00001.tfrecord"), examples), examples


@pytest.mark.parametrize("flow, annotations", [(True, False), (False, False), (True, True), (False, True)])
def test_frame_byte_spans_locate_every_frame(flow, annotations):
    example = _example("v", 5, flow=flow, annotations=annotations)
    serialized = example.SerializeToString()
    spans = frame_offsets.frame_byte_spans(serialized)
    assert sorted(spans) == sorted(KEYS)
    for key in KEYS:
        frames = _frames(example, key)
        assert len(set(frames)) == len(frames)  # distinct frames: a wrong span cannot match by chance
        assert spans[key].dtype == np.int64 and spans[key].shape == (len(frames), 2)
        assert [serialized[o : o + n] for o, n in spans[key]] == frames
    if not flow:
        assert spans[records.FLOW_X].shape == (0, 2) and spans[records.FLOW_Y].shape == (0, 2)
    only_image = frame_offsets.frame_byte_spans(serialized, keys=(records.IMAGE,))
    assert list(only_image) == [records.IMAGE]
    np.testing.assert_array_equal(only_image[records.IMAGE], spans[records.IMAGE])


def test_frame_byte_spans_whatever_the_field_order():
    example = _example("v", 3, annotations=True)
    # Feature lists before the context (a valid encoding: protobuf merges fields in any order), then more context.
    lists_first = (
        tf.train.SequenceExample(feature_lists=example.feature_lists).SerializeToString()
        + tf.train.SequenceExample(context=example.context).SerializeToString()
    )
    assert tf.train.SequenceExample.FromString(lists_first) == example
    spans = frame_offsets.frame_byte_spans(lists_first)
    for key in KEYS:
        assert [lists_first[o : o + n] for o, n in spans[key]] == _frames(example, key)


def test_frame_byte_spans_reject_a_frame_of_two_strings():
    example = _example("v", 2, flow=False)
    example.feature_lists.feature_list[records.IMAGE].feature[1].bytes_list.value.append(b"second")
    with pytest.raises(ValueError, match="image/encoded frame holds 2 byte strings"):
        frame_offsets.frame_byte_spans(example.SerializeToString())


def test_write_offsets_indexes_every_frame_of_the_shard(shard):
    path, examples = shard
    assert frame_offsets.offsets_path(path) == path[: -len(".tfrecord")] + ".offsets"
    assert frame_offsets.write_offsets(path) == 3
    assert sorted(os.listdir(os.path.dirname(path))) == [
        "train-00000-of-00001.offsets",
        "train-00000-of-00001.tfrecord",
    ]
    with open(path, "rb") as f:
        shard_bytes = f.read()
    entries = _index_entries(path)
    assert len(entries) == len(examples)
    for entry, example, video in zip(entries, examples, SHARD_VIDEOS):
        feature = entry.features.feature
        assert feature[records.VIDEO_ID].bytes_list.value == [video["video_id"].encode()]
        assert list(feature[records.LABEL_INDEX].int64_list.value) == list(video["labels"])
        assert feature[records.NUM_FRAMES].int64_list.value == [video["num_frames"]]
        assert feature[records.FPS].float_list.value == pytest.approx([video.get("fps", 25.0)])
        assert feature[records.HEIGHT].int64_list.value == [8] and feature[records.WIDTH].int64_list.value == [8]
        assert feature[frame_offsets.SHARD_BYTES].int64_list.value == [len(shard_bytes)]
        for key in KEYS:
            frames = _frames(example, key)
            assert [shard_bytes[o : o + n] for o, n in _spans(entry, key)] == frames
            flow_frames = video["num_frames"] - 1 if video.get("flow", True) else 0
            assert len(frames) == (video["num_frames"] if key == records.IMAGE else flow_frames)
    # Another destination; the default one is left as it was.
    other = os.path.join(os.path.dirname(path), "elsewhere.offsets")
    assert frame_offsets.write_offsets(path, other) == 3
    with open(other, "rb") as f, open(frame_offsets.offsets_path(path), "rb") as g:
        assert f.read() == g.read()


def test_tfrecord_spans_frames_records_and_rejects_a_truncated_shard(shard, tmp_path):
    path, examples = shard
    with open(path, "rb") as f:
        shard_bytes = f.read()
    spans = list(frame_offsets.tfrecord_spans(path))
    assert [data for _, data in spans] == list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    assert [shard_bytes[o : o + len(data)] for o, data in spans] == [data for _, data in spans]
    assert spans[0][0] == 12  # uint64 length + uint32 CRC before the first record
    for cut in (spans[1][0] + 10, spans[2][0] - 6, len(shard_bytes) - 2):  # in a record, in a header, in a CRC
        truncated = str(tmp_path / f"cut{cut}.tfrecord")
        with open(truncated, "wb") as f:
            f.write(shard_bytes[:cut])
        with pytest.raises(ValueError, match=re.escape(f"{truncated} is truncated")):
            list(frame_offsets.tfrecord_spans(truncated))


def test_is_current_follows_the_shard_size(shard, tmp_path):
    path, examples = shard
    assert not frame_offsets.is_current(path)  # no index yet
    frame_offsets.write_offsets(path)
    assert frame_offsets.is_current(path)
    os.remove(frame_offsets.offsets_path(path))
    assert not frame_offsets.is_current(path)
    frame_offsets.write_offsets(path)
    _write_shard(path, examples[:2])  # the shard rewritten (smaller), the index left as it was
    assert not frame_offsets.is_current(path)
    frame_offsets.write_offsets(path)
    assert frame_offsets.is_current(path)

    empty = _write_shard(str(tmp_path / "empty-00000-of-00001.tfrecord"), [])
    assert os.path.getsize(empty) == 0
    assert frame_offsets.write_offsets(empty) == 0
    assert os.path.getsize(frame_offsets.offsets_path(empty)) == 0
    assert frame_offsets.is_current(empty)
    _write_shard(empty, examples[:1])  # videos added to the shard: the empty index no longer fits
    assert not frame_offsets.is_current(empty)


def test_is_current_is_false_for_a_truncated_index(shard):
    """An index cut in its first entry (e.g. an interrupted copy) is not current: `data.pipeline.choose_reader` then
    falls back to the records with the fix (rewrite the index), instead of failing with "re-create the shard"."""
    path, _ = shard
    frame_offsets.write_offsets(path)
    index = frame_offsets.offsets_path(path)
    with open(index, "rb") as f:
        data = f.read()
    with open(index, "wb") as f:
        f.write(data[:30])
    assert not frame_offsets.is_current(path)


def test_parse_offsets_one_entry_and_a_batch(shard):
    path, _ = shard
    frame_offsets.write_offsets(path)
    entries = _index_entries(path)
    serialized = [entry.SerializeToString() for entry in entries]
    for modality, keys in (("rgb", (records.IMAGE,)), ("flow", (records.FLOW_X, records.FLOW_Y))):
        singles = []
        for entry, data, video in zip(entries, serialized, SHARD_VIDEOS):
            context, spans = frame_offsets.parse_offsets(tf.constant(data), modality)
            assert sorted(spans) == sorted(keys)
            assert context[records.VIDEO_ID].numpy() == video["video_id"].encode()
            assert int(context[records.NUM_FRAMES]) == video["num_frames"]
            assert isinstance(context[records.LABEL_INDEX], tf.Tensor)  # dense, as parse_sequence_example gives
            np.testing.assert_array_equal(context[records.LABEL_INDEX].numpy(), video["labels"])
            for key in keys:
                assert isinstance(spans[key], tf.Tensor) and spans[key].dtype == tf.int64
                np.testing.assert_array_equal(spans[key].numpy().reshape(-1, 2), _spans(entry, key))
                assert spans[key].shape.rank == 2 and spans[key].shape[-1] == 2
            singles.append((context, spans))

        context, spans = frame_offsets.parse_offsets(tf.constant(serialized), modality)
        labels = context[records.LABEL_INDEX]
        assert isinstance(labels, tf.RaggedTensor)
        assert labels.to_list() == [list(video["labels"]) for video in SHARD_VIDEOS]
        np.testing.assert_array_equal(context[records.NUM_FRAMES].numpy(), [v["num_frames"] for v in SHARD_VIDEOS])
        np.testing.assert_allclose(context[records.FPS].numpy(), [v.get("fps", 25.0) for v in SHARD_VIDEOS])
        for key in keys:
            assert isinstance(spans[key], tf.RaggedTensor) and spans[key].shape.as_list() == [3, None, 2]
            for row, (_, single) in zip(spans[key], singles):
                np.testing.assert_array_equal(row.numpy().reshape(-1, 2), single[key].numpy().reshape(-1, 2))
        if modality == "flow":  # the RGB-only video: an empty row
            assert spans[records.FLOW_X].row_lengths().numpy().tolist() == [3, 0, 4]


def _quiet_env() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


@pytest.mark.slow
def test_command_line_rewrites_deleted_indices(tmp_path):
    videos = [dict(coded_video(n, 8, 8), video_id=f"v{n}", labels=[n % 2]) for n in (2, 3, 4)]
    split = write_split(str(tmp_path / "train"), videos, ["a", "b"], shards=2)
    shards = records.record_files(split)
    written = {}
    for shard in shards:
        with open(frame_offsets.offsets_path(shard), "rb") as f:
            written[shard] = f.read()
        os.remove(frame_offsets.offsets_path(shard))
    assert not any(frame_offsets.is_current(s) for s in shards)
    result = subprocess.run(
        [sys.executable, "-m", "data.frame_offsets", f"--records={split}"],
        cwd=REPO, env=_quiet_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote 2 .offsets files (3 videos)" in result.stdout
    for shard in shards:
        with open(frame_offsets.offsets_path(shard), "rb") as f:
            assert f.read() == written[shard]
    names = [os.path.basename(s) for s in shards] + [os.path.basename(frame_offsets.offsets_path(s)) for s in shards]
    assert sorted(os.listdir(split)) == sorted([*names, records.MANIFEST_NAME])  # no temporary file left


@pytest.mark.slow
def test_command_line_without_records_fails_with_a_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "data.frame_offsets"],
        cwd=REPO, env=_quiet_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--records is required" in result.stderr + result.stdout
