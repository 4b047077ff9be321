"""data.check: good records pass; broken records and rawframe folders (a deleted flow frame) are reported."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from data import check, frame_offsets, records
from tests.data.record_helpers import coded_video, write_split

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_prepared_records_pass(synthetic_records):
    reports = [check.check_split(d) for d in check.split_dirs(synthetic_records)]
    assert [os.path.basename(r.name) for r in reports] == ["test", "train"]
    assert all(r.ok and not r.warnings for r in reports), [r.format() for r in reports]
    assert "6 videos, 84 frames, 78 flow frames, 3 classes; 6 videos with boxes, 6 with segments" in reports[1].facts
    assert "3 of 3 shards with a current .offsets index (spans verified)" in reports[1].facts


def test_broken_records_are_reported(tmp_path):
    good = coded_video(4, 8, 8)
    good.update(video_id="good", labels=[0])
    short_flow = coded_video(4, 8, 8)
    short_flow.update(video_id="short_flow", labels=[1], flow_y=short_flow["flow_y"][:2])
    bad_label = coded_video(3, 8, 8)
    bad_label.update(video_id="bad_label", labels=[5])
    corrupt = coded_video(3, 8, 8)
    corrupt["frames"][1] = b"\xff\xd8 not a jpeg"
    corrupt.update(video_id="corrupt", labels=[0])
    boxes = coded_video(3, 8, 8)
    boxes.update(video_id="good", labels=[0], boxes={1: (np.array([[0.5, 0.1, 0.2, 0.3]], np.float32), np.array([0]))})
    split = write_split(str(tmp_path / "train"), [good, short_flow, bad_label, corrupt, boxes], ["a", "b"], shards=2)
    report = check.check_split(split)
    text = report.format()
    assert not report.ok
    assert "short_flow: 3 x flow frames but 2 y flow frames" in text
    assert "bad_label: label(s) [5] outside [0, 2)" in text
    assert "corrupt: RGB frame 1 is not a decodable JPEG" in text
    assert "good: frame 1: boxes not normalised" in text and "good: duplicate video id" in text
    assert "manifest says 5 videos" not in text  # the counts agree


def _offsets_split(directory: str) -> tuple[str, list[str]]:
    """A split of 3 videos in 2 shards (v3 and v5 in shard 0, v4 in shard 1) with their .offsets indices."""
    videos = [dict(coded_video(n, 8, 8), video_id=f"v{n}", labels=[n % 2]) for n in (3, 4, 5)]
    split = write_split(directory, videos, ["a", "b"], shards=2)
    return split, records.record_files(split)


def _rewrite_index(shard: str, entry) -> None:
    """Rewrites a shard's .offsets index with ``entry(data, offset, shard bytes) -> tf.train.Example`` per record."""
    size = os.path.getsize(shard)
    with tf.io.TFRecordWriter(frame_offsets.offsets_path(shard)) as writer:
        for offset, data in frame_offsets.tfrecord_spans(shard):
            writer.write(entry(data, offset, size).SerializeToString())


def test_offsets_indices_are_verified(tmp_path):
    split, shards = _offsets_split(str(tmp_path / "train"))
    report = check.check_split(split)
    assert report.ok and not report.warnings, report.format()
    assert report.facts[1] == "2 of 2 shards with a current .offsets index (spans verified)"
    assert report.format().splitlines()[0] == f"{split}: OK"


def test_missing_or_stale_offsets_index_is_a_warning(tmp_path):
    split, shards = _offsets_split(str(tmp_path / "train"))
    os.remove(frame_offsets.offsets_path(shards[0]))
    (record,) = records.iterate_sequence_examples(shards[1])
    record.context.feature[records.VIDEO_ID].bytes_list.value[:] = [b"v4-renamed"]
    with tf.io.TFRecordWriter(shards[1]) as writer:  # shard 1 rewritten (another size), its index left: stale
        writer.write(record.SerializeToString())
    fix = f"`python -m data.frame_offsets --records={split}`"
    report = check.check_split(split)
    assert report.ok, report.format()  # derived data: the pipeline reads whole records meanwhile
    assert report.warnings == [
        f"{shards[0]} has no .offsets index (the pipeline reads whole records, several times slower): "
        f"write it with {fix}",
        f"{frame_offsets.offsets_path(shards[1])} is stale (written for a shard of another size; the pipeline reads "
        f"whole records meanwhile): rewrite the index with {fix}",
    ]
    assert report.facts[1] == "0 of 2 shards with a current .offsets index (spans verified)"
    text = report.format()
    assert text.splitlines()[0] == f"{split}: OK, 2 WARNING(S)"
    assert f"  WARNING {shards[0]} has no .offsets index" in text
    for shard in shards:
        frame_offsets.write_offsets(shard)
    report = check.check_split(split)
    assert report.ok and not report.warnings, report.format()


def test_a_wrong_current_offsets_index_is_an_error(tmp_path):
    split, shards = _offsets_split(str(tmp_path / "train"))
    fix = f"rewrite the index with `python -m data.frame_offsets --records={split}`"
    name = os.path.basename(frame_offsets.offsets_path(shards[0]))
    # Spans shifted by one byte, with the right shard size: current, but it would feed wrong pixels.
    _rewrite_index(shards[0], lambda data, offset, size: frame_offsets.offsets_example(data, offset + 1, size))
    assert frame_offsets.is_current(shards[0])
    report = check.check_split(split)
    assert not report.ok and not report.warnings
    expected = []
    for (offset, data), video in zip(frame_offsets.tfrecord_spans(shards[0]), ("v3", "v5")):
        for key, spans in frame_offsets.frame_byte_spans(data).items():
            expected.append(
                f"{video}: {len(spans)} of the {len(spans)} {key} spans in {name} are not the record's JPEG bytes "
                f"(first: frame 0, {spans[0, 1]} bytes at byte {offset + spans[0, 0] + 1}): {fix}"
            )
    assert report.problems == expected

    # Another label in the index than in the record (the pipeline takes the labels from the index), one span less.
    def relabelled(data, offset, size):
        entry = frame_offsets.offsets_example(data, offset, size)
        entry.features.feature[records.LABEL_INDEX].int64_list.value[:] = [7]
        del entry.features.feature[f"{records.IMAGE}/offset"].int64_list.value[-1]
        return entry

    _rewrite_index(shards[0], relabelled)
    report = check.check_split(split)
    assert report.problems == [
        f"{video}: {message}: {fix}"
        for video, frames in (("v3", 3), ("v5", 5))
        for message in (
            f"{name} holds another clip/label/index than the record",
            f"{name} lists {frames - 1} image/encoded spans, the record holds {frames} frames",
        )
    ]

    # An index of fewer videos than the shard holds; an index cut in its second entry.
    _rewrite_index(shards[0], frame_offsets.offsets_example)
    with open(frame_offsets.offsets_path(shards[0]), "rb") as f:
        index = f.read()
    first_entry_end = 12 + int.from_bytes(index[:8], "little") + 4
    with open(frame_offsets.offsets_path(shards[0]), "wb") as f:
        f.write(index[:first_entry_end])
    assert check.check_split(split).problems == [
        f"{shards[0]}: its .offsets index lists 1 videos, the shard holds 2: {fix}"
    ]
    with open(frame_offsets.offsets_path(shards[0]), "wb") as f:
        f.write(index[: first_entry_end + 20])
    report = check.check_split(split)
    assert len(report.problems) == 1, report.format()
    assert report.problems[0].startswith(f"{frame_offsets.offsets_path(shards[0])} is unreadable (")
    assert report.problems[0].endswith(fix)
    assert report.facts == [  # the records themselves are still checked
        "3 videos, 12 frames, 9 flow frames, 2 classes; 0 videos with boxes, 0 with segments",
        "1 of 2 shards with a current .offsets index (spans verified)",
    ]


def _tsn_folder(directory, num_frames):
    os.makedirs(directory)
    for i in range(1, num_frames + 1):
        cv2.imwrite(os.path.join(directory, f"img_{i:05d}.jpg"), np.full((8, 8, 3), 9 * i, np.uint8))
        if i < num_frames:
            for axis in "xy":
                cv2.imwrite(os.path.join(directory, f"flow_{axis}_{i:05d}.jpg"), np.full((8, 8), 100, np.uint8))


def test_rawframes_check_catches_a_deleted_flow_frame(tmp_path):
    root = str(tmp_path)
    _tsn_folder(f"{root}/a", 6)
    _tsn_folder(f"{root}/b", 5)
    with open(f"{root}/list.txt", "w") as f:
        f.write("a 6 0\nb 5 1\n")
    report = check.check_rawframes(root, f"{root}/list.txt", num_classes=2)
    assert report.ok, report.format()
    assert report.facts == ["2 folders, 11 RGB frames, 9 flow frame pairs (2 folders with flow)"]
    os.remove(f"{root}/b/flow_x_00002.jpg")
    with open(f"{root}/a/img_00003.jpg", "wb") as f:
        f.write(b"garbage")
    report = check.check_rawframes(root, f"{root}/list.txt", num_classes=2)
    # Frames are counted up to the first gap: b keeps flow_x_00001 only, against 4 flow y frames and 5 RGB frames.
    assert report.problems == [
        "a: img_00003.jpg is not a decodable JPEG",
        "b: flow_x_00002.jpg is missing (flow x frames exist after it)",
        "b: 1 flow x frames but 4 flow y frames",
        "b: 1 flow frames for 5 RGB frames (expected T - 1 or T)",
    ]


@pytest.mark.slow
def test_check_command_line_exit_status(tmp_path):
    root = str(tmp_path)
    _tsn_folder(f"{root}/a", 4)
    os.remove(f"{root}/a/flow_y_00001.jpg")
    with open(f"{root}/list.txt", "w") as f:
        f.write("a 4 0\nmissing 3 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "data.check", f"--rawframes={root}", f"--list={root}/list.txt"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    # a's flow y frames are counted up to the first gap (none), so the missing frame is also a count mismatch.
    assert result.stdout.splitlines() == [
        f"{root} (list.txt): 3 PROBLEM(S)",
        "  2 folders, 4 RGB frames, 3 flow frame pairs (1 folders with flow)",
        "  PROBLEM a: flow_y_00001.jpg is missing (flow y frames exist after it)",
        "  PROBLEM a: 3 flow x frames but 0 flow y frames",
        f"  PROBLEM missing: folder not found ({root}/missing)",
    ]


@pytest.mark.slow
def test_check_command_line_passes_with_a_missing_offsets_index(tmp_path):
    split, shards = _offsets_split(str(tmp_path / "train"))
    os.remove(frame_offsets.offsets_path(shards[1]))
    result = subprocess.run(
        [sys.executable, "-m", "data.check", f"--records={tmp_path}"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{split}: OK, 1 WARNING(S)" in result.stdout
    assert f"WARNING {shards[1]} has no .offsets index" in result.stdout
