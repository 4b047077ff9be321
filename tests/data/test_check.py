"""data.check: good records pass; broken records and rawframe folders (a deleted flow frame) are reported."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from data import check
from tests.data.record_helpers import coded_video, write_split

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_prepared_records_pass(synthetic_records):
    reports = [check.check_split(d) for d in check.split_dirs(synthetic_records)]
    assert [os.path.basename(r.name) for r in reports] == ["test", "train"]
    assert all(r.ok for r in reports), [r.format() for r in reports]
    assert "6 videos, 84 frames, 78 flow frames, 3 classes; 6 videos with boxes, 6 with segments" in reports[1].facts


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
    assert "b: flow_x_00002.jpg is missing (flow x frames exist after it)" in report.problems
    assert "b: 1 flow x frames but 4 flow y frames" in report.problems
    assert "a: img_00003.jpg is not a decodable JPEG" in report.problems


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
    assert "2 PROBLEM" in result.stdout or "PROBLEM(S)" in result.stdout
    assert "missing: folder not found" in result.stdout and "flow_y_00001.jpg is missing" in result.stdout
