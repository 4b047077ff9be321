"""Parsers of the official layouts and ground-truth files, on small files written here."""

import os
import pickle

import numpy as np
import pytest

from data import extract, preparation
from data.datasets import annotations, charades, hmdb51, lists, thumos14, ucf101
from data.datasets.base import DatasetLayoutError


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_ucf101_splits(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/ucfTrainTestlist/classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n")
    _write(
        f"{root}/ucfTrainTestlist/trainlist02.txt",
        "Archery/v_Archery_g08_c01.avi 2\nApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02.avi 1\n",
    )
    _write(f"{root}/ucfTrainTestlist/testlist02.txt", "Archery/v_Archery_g01_c01.avi\n")
    os.makedirs(f"{root}/UCF-101/Archery")
    parsed = ucf101.load(root, split=2)
    assert parsed.class_names == ["ApplyEyeMakeup", "Archery"]
    train = parsed.splits["train"]
    assert [(t.video_id, t.labels) for t in train] == [
        ("Archery/v_Archery_g08_c01", (1,)), ("ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02", (0,))
    ]  # fmt: skip
    assert train[0].source == os.path.join(root, "UCF-101", "Archery/v_Archery_g08_c01.avi")
    assert [(t.video_id, t.labels) for t in parsed.splits["test"]] == [("Archery/v_Archery_g01_c01", (1,))]
    with pytest.raises(DatasetLayoutError, match="trainlist01.txt"):
        ucf101.load(root, split=1)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match="UCF101TrainTestSplits"):
        ucf101.load(str(tmp_path / "empty"), split=1)


def test_hmdb51_tags(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/testTrainMulti_7030_splits/brush_hair_test_split1.txt", "a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    _write(f"{root}/testTrainMulti_7030_splits/wave_test_split1.txt", "d.avi 2\n")
    _write(f"{root}/testTrainMulti_7030_splits/wave_test_split2.txt", "d.avi 1\n")
    os.makedirs(f"{root}/brush_hair")
    parsed = hmdb51.load(root, split=1)
    assert parsed.class_names == ["brush_hair", "wave"]
    assert [(t.video_id, t.labels) for t in parsed.splits["train"]] == [("brush_hair/a", (0,))]
    assert [(t.video_id, t.labels) for t in parsed.splits["test"]] == [("brush_hair/b", (0,)), ("wave/d", (1,))]
    assert parsed.splits["train"][0].source == os.path.join(root, "brush_hair", "a.avi")
    _write(f"{root}/testTrainMulti_7030_splits/wave_test_split3.txt", "d.avi 7\n")
    _write(f"{root}/testTrainMulti_7030_splits/brush_hair_test_split3.txt", "a.avi 1\n")
    with pytest.raises(DatasetLayoutError, match="0\\|1\\|2"):
        hmdb51.load(root, split=3)


def test_charades_multi_label_and_segments(tmp_path):
    root = str(tmp_path)
    header = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    actions = "c092 11.90 21.20;c147 0.00 12.60;c092 30.0 31.5"
    _write(f"{root}/Charades_v1_train.csv", header + f'AB12C,s,Kitchen,6,7,Yes,x,y,z,"{actions}",33.0\n')
    _write(f"{root}/Charades_v1_test.csv", header + "ZZ99Z,s,Hall,6,7,Yes,x,y,z,,20.0\n")
    parsed = charades.load(root)
    assert parsed.multi_label and parsed.num_classes == 157
    video = parsed.splits["train"][0]
    assert video.video_id == "AB12C" and video.labels == (92, 147)
    np.testing.assert_allclose(video.segments, [[11.9, 21.2], [0.0, 12.6], [30.0, 31.5]])
    assert video.segment_labels.tolist() == [92, 147, 92]
    assert video.source == os.path.join(root, "AB12C.mp4")
    assert parsed.splits["test"][0].labels == ()  # no action: an all-zero multi-hot target
    _write(f"{root}/Charades_v1_test.csv", header + "ZZ99Z,s,Hall,6,7,Yes,x,y,z,c999 1 2,20.0\n")
    with pytest.raises(DatasetLayoutError, match="Charades_v1_test.csv:2"):
        charades.load(root)


def test_thumos14_segments_and_multi_label_videos(tmp_path):
    root = str(tmp_path)
    ann = f"{root}/annotations"
    _write(f"{ann}/BaseballPitch_val.txt", "video_validation_0000051 67.5 75.9\nvideo_validation_0000051 1.0 3.0\n")
    _write(f"{ann}/Diving_val.txt", "video_validation_0000052 5.0 6.5\nvideo_validation_0000053 2.0 4.0\n")
    _write(f"{ann}/BaseballPitch_val2.txt", "ignored 1 2\n")
    _write(f"{ann}/BaseballPitch_test.txt", "video_validation_0000053 9.0 10.0\nvideo_test_0000004 0.2 1.1\n")
    _write(f"{ann}/Ambiguous_test.txt", "video_test_0000004 3.0 4.0\n")
    _write(f"{root}/videos/video_validation_0000051.mp4", "x")
    parsed = thumos14.load(root)
    assert parsed.class_names == ["BaseballPitch", "Diving"]
    train = {t.video_id: t for t in parsed.splits["train"]}
    assert sorted(train) == ["video_validation_0000051", "video_validation_0000052", "video_validation_0000053"]
    np.testing.assert_allclose(train["video_validation_0000051"].segments, [[1.0, 3.0], [67.5, 75.9]])
    assert train["video_validation_0000051"].source == os.path.join(root, "videos", "video_validation_0000051.mp4")
    test = {t.video_id: t for t in parsed.splits["test"]}
    assert test["video_test_0000004"].labels == (0,)  # the Ambiguous segment is not a class
    # video 53 has Diving (val file) and BaseballPitch (test file): one class per split, kept in both.
    assert train["video_validation_0000053"].labels == (1,) and test["video_validation_0000053"].labels == (0,)
    _write(f"{ann}/Diving_val.txt", "video_validation_0000051 5.0 6.5\n")
    assert "video_validation_0000051" not in {t.video_id for t in thumos14.load(root).splits["train"]}
    assert thumos14.load(root, drop_multi_label=False).multi_label
    _write(f"{ann}/Diving_val.txt", "video_validation_0000051 five six\n")
    with pytest.raises(DatasetLayoutError, match="Diving_val.txt:1"):
        thumos14.load(root)


def test_ucf101_24_pickle_boxes(tmp_path):
    gt = {
        "labels": ["Basketball", "Biking"],
        "gttubes": {
            "Biking/v_Biking_g01_c01": {1: [np.array([[3, 32, 24, 64, 120], [4, 0, 0, 320, 240]], np.float32)]}
        },
        "nframes": {"Biking/v_Biking_g01_c01": 10},
        "resolution": {"Biking/v_Biking_g01_c01": (240, 320)},
        "train_videos": [["Biking/v_Biking_g01_c01"]],
        "test_videos": [[]],
    }
    path = str(tmp_path / "UCF101v2-GT.pkl")
    with open(path, "wb") as f:
        pickle.dump(gt, f, protocol=2)
    boxes = annotations.boxes_from_ucf101_24(annotations.load_ucf101_24_pickle(path))["Biking/v_Biking_g01_c01"]
    assert sorted(boxes) == [2, 3]  # 1-based frames 3, 4 -> 0-based 2, 3
    np.testing.assert_allclose(boxes[2][0], [[0.1, 0.1, 0.2, 0.5]])
    np.testing.assert_allclose(boxes[3][0], [[0.0, 0.0, 1.0, 1.0]])
    assert boxes[2][1].tolist() == [1]
    os.makedirs(tmp_path / "UCF-101")
    parsed = ucf101.load_ucf101_24(str(tmp_path), path)
    task = parsed.splits["train"][0]
    assert parsed.class_names == ["Basketball", "Biking"] and task.labels == (1,) and sorted(task.boxes) == [2, 3]
    with pytest.raises(DatasetLayoutError, match="lacks keys"):
        with open(path, "wb") as f:
            pickle.dump({"labels": []}, f)
        annotations.load_ucf101_24_pickle(path)


def test_list_layouts(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/train.txt", "jump/clip_001 120 3\nrun/clip_002 80 0 2\n")
    _write(f"{root}/classes.txt", "a\nb\nc\nd\n")
    parsed = lists.load(
        root, kind="rawframes", train_list="train.txt", test_list=None, class_names_file=f"{root}/classes.txt"
    )
    assert parsed.multi_label and parsed.class_names == ["a", "b", "c", "d"] and list(parsed.splits) == ["train"]
    first = parsed.splits["train"][0]
    assert (first.video_id, first.labels, first.num_frames_hint) == ("jump/clip_001", (3,), 120)
    assert first.source == os.path.join(root, "jump/clip_001")
    _write(f"{root}/videos.txt", "x/a.mp4 1\nx/b.avi 0\n")
    parsed = lists.load(root, kind="videos", train_list=None, test_list="videos.txt")
    assert not parsed.multi_label and parsed.class_names == ["class_0", "class_1"]
    assert parsed.splits["test"][0].video_id == "x/a"
    _write(f"{root}/bad.txt", "x/a.mp4 one\n")
    with pytest.raises(DatasetLayoutError, match="bad.txt:1"):
        lists.load(root, kind="videos", train_list="bad.txt", test_list=None)
    with pytest.raises(DatasetLayoutError, match="--train_list"):
        lists.load(root, kind="videos", train_list=None, test_list=None)


def test_load_dataset_attaches_ground_truth_found_next_to_the_raw_data(synthetic_raw):
    parsed = preparation.load_dataset("ucf101", synthetic_raw)
    tasks = parsed.splits["train"] + parsed.splits["test"]
    assert all(t.boxes for t in tasks) and all(t.segments is not None and len(t.segments) == 1 for t in tasks)
    assert all(t.segment_labels.tolist() == list(t.labels) for t in tasks)
    bare = preparation.load_dataset("ucf101", synthetic_raw, boxes_pkl="none", segments_dir="none")
    assert all(t.boxes is None and t.segments is None for t in bare.splits["train"])
    with pytest.raises(ValueError, match="ucf101, ucf101_24, hmdb51"):
        preparation.load_dataset("kinetics", synthetic_raw)


def test_duplicate_video_ids_are_refused_naming_both_files(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/test.txt", "clips/a.mp4 0\nclips/test.avi 1\nclips/b.mp4 0\nclips/test.mp4 1\n")
    with pytest.raises(DatasetLayoutError) as refused:
        preparation.load_dataset("videos", root, test_list="test.txt")
    assert str(refused.value) == (
        "test: clips/test.avi and clips/test.mp4 both get video id 'clips/test' (a video's id is its path without "
        "the extension): keep one of them in the list, or rename one file."
    )
    _write(f"{root}/train.txt", "clips/a.mp4 0\nclips/b.mp4 1\nclips/a.mp4 0\n")
    with pytest.raises(DatasetLayoutError, match=r"^train: clips/a.mp4 is listed twice \(video id 'clips/a'\)"):
        preparation.load_dataset("videos", root, train_list="train.txt")
    # The same id in two splits is not a collision (each split has its own records).
    _write(f"{root}/other.txt", "clips/test.avi 1\n")
    parsed = preparation.load_dataset("videos", root, train_list="other.txt", test_list="other.txt")
    assert [t.video_id for t in parsed.splits["train"]] == [t.video_id for t in parsed.splits["test"]] == ["clips/test"]
    # Library callers that build the videos themselves are refused by the shared plan, before any file is written.
    tasks = parsed.splits["train"] * 2
    with pytest.raises(DatasetLayoutError, match="listed twice"):
        preparation.prepare_split(
            tasks, split="train", out_dir=f"{root}/out", dataset_name="videos", class_names=["a", "b"],
            multi_label=False, options=extract.ExtractOptions(flow="none"), raw_dir=root,
            progress=False,
        )  # fmt: skip
    assert not os.path.exists(f"{root}/out")
