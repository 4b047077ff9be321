"""The synthetic benchmark: UCF101 raw layout, public ground-truth formats, determinism, and where the class is."""

import os
import pickle

import numpy as np
import pytest

from data import synthetic, video_io
from tests.data.conftest import TINY


def test_layout_and_lists(synthetic_raw):
    names = [c[0] for c in synthetic.CLASSES[:3]]
    with open(os.path.join(synthetic_raw, "ucfTrainTestlist", "classInd.txt")) as f:
        assert f.read().split("\n")[:3] == [f"{i + 1} {n}" for i, n in enumerate(names)]
    with open(os.path.join(synthetic_raw, "ucfTrainTestlist", "trainlist01.txt")) as f:
        train = f.read().split()
    with open(os.path.join(synthetic_raw, "ucfTrainTestlist", "testlist01.txt")) as f:
        test = f.read().split()
    assert train[:4] == ["MoveRight/v_MoveRight_g02_c01.avi", "1", "MoveRight/v_MoveRight_g03_c01.avi", "1"]
    assert test == [f"{n}/v_{n}_g01_c01.avi" for n in names]  # the low groups are the test set, as UCF101 split 1
    for relative in test + train[0::2]:
        frames, fps = video_io.read_video(os.path.join(synthetic_raw, "UCF-101", relative))
        assert frames.shape == (14, 48, 48, 3) and fps == 25.0


def test_ground_truth_formats_agree(synthetic_raw):
    with open(os.path.join(synthetic_raw, "UCF101v2-GT.pkl"), "rb") as f:
        gt = pickle.load(f, encoding="latin1")
    assert set(gt) == {"labels", "gttubes", "nframes", "resolution", "train_videos", "test_videos"}
    assert gt["labels"] == ["MoveRight", "MoveLeft", "MoveUp"]
    assert len(gt["train_videos"][0]) == 6 and len(gt["test_videos"][0]) == 3
    segments = {}
    for name in gt["labels"]:
        for subset in ("val", "test"):
            with open(os.path.join(synthetic_raw, "annotations", f"{name}_{subset}.txt")) as f:
                for line in f:
                    video, start, end = line.split()
                    segments[video] = (float(start), float(end))
    for video, tubes in gt["gttubes"].items():
        label = gt["labels"].index(video.split("/")[0])
        assert list(tubes) == [label] and gt["nframes"][video] == 14 and gt["resolution"][video] == (48, 48)
        tube = tubes[label][0]
        frames = tube[:, 0].astype(int)  # 1-based, consecutive: the action frames
        np.testing.assert_array_equal(frames, np.arange(frames[0], frames[-1] + 1))
        start, end = segments[os.path.basename(video)]
        assert start == pytest.approx((frames[0] - 1) / 25.0, abs=1e-3) and end == pytest.approx(frames[-1] / 25.0)
        assert 1 < frames[0] and frames[-1] < 14  # idle before and after
        assert np.all(tube[:, 1] < tube[:, 3]) and np.all(tube[:, 2] < tube[:, 4])
        assert np.all(tube[:, 1:] >= 0) and np.all(tube[:, 1:] <= 47)


def test_the_action_is_the_class_colour_inside_the_box_only_during_the_action(synthetic_raw):
    with open(os.path.join(synthetic_raw, "UCF101v2-GT.pkl"), "rb") as f:
        gt = pickle.load(f)
    for video in gt["test_videos"][0]:
        label = gt["labels"].index(video.split("/")[0])
        colour = np.array(synthetic.CLASSES[label][3], float)
        frames = video_io.read_video(os.path.join(synthetic_raw, "UCF-101", video + ".avi"))[0].astype(float)
        tube = gt["gttubes"][video][label][0]
        close = np.linalg.norm(frames - colour, axis=-1) < 60  # (T, H, W) pixels of the class colour
        for t in range(14):
            row = tube[tube[:, 0] == t + 1]
            if len(row):
                x1, y1, x2, y2 = np.round(row[0, 1:]).astype(int)
                inside = close[t, y1 : y2 + 1, x1 : x2 + 1].sum()
                assert inside >= 12 and inside >= 0.8 * close[t].sum()  # the colour is the actor, in its box
            else:
                assert close[t].sum() < 5  # idle: no class colour anywhere


def test_generation_is_deterministic_and_seeded(tmp_path):
    config = synthetic.SyntheticConfig(seed=1, num_classes=2, train_per_class=1, test_per_class=1, num_frames=12,
                                       width=48, height=48)  # fmt: skip
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    synthetic.generate(a, config)
    synthetic.generate(b, config)
    video = "UCF-101/MoveLeft/v_MoveLeft_g02_c01.avi"
    with open(os.path.join(a, video), "rb") as fa, open(os.path.join(b, video), "rb") as fb:
        assert fa.read() == fb.read()
    other = synthetic.generate_video(1, np.random.default_rng([2, 1, 2]), config).frames
    same = synthetic.generate_video(1, np.random.default_rng([1, 1, 2]), config).frames
    assert not np.array_equal(other, same)
    # A complete benchmark with the same parameters is kept; other parameters are refused.
    assert synthetic.generate(a, config)["seed"] == 1
    with pytest.raises(ValueError, match="other parameters"):
        synthetic.generate(a, synthetic.SyntheticConfig(seed=2, num_classes=2, train_per_class=1, test_per_class=1))


def test_every_class_moves_its_own_way():
    config = synthetic.SyntheticConfig(num_frames=30)
    for index, (name, motion, _, _) in enumerate(synthetic.CLASSES):
        video = synthetic.generate_video(index, np.random.default_rng(index), config)
        centres = (video.boxes[:, 1:3] + video.boxes[:, 3:5]) / 2
        sizes = video.boxes[:, 3] - video.boxes[:, 1]
        dx, dy = centres[-1] - centres[0]
        if motion in ("right", "left", "up", "down"):
            expected = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1)}[motion]
            assert np.sign(np.round([dx, dy])).tolist() == list(expected), name
        elif motion == "pulse":
            assert sizes.max() > 1.8 * sizes.min(), name
        elif motion in ("shake", "bounce", "spin"):
            assert np.ptp(centres, axis=0).max() < 26, name  # stays in place (moves back and forth or rotates)


def test_bad_parameters_are_named(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        synthetic.generate(str(tmp_path), synthetic.SyntheticConfig(num_classes=99))
    assert TINY.num_classes == 3
