"""UCF101 (Soomro et al. 2012) in its official layout, and UCF101-24 (its 24-class subset with boxes).

    RAW/UCF-101/<Class>/v_<Class>_gGG_cCC.avi
    RAW/ucfTrainTestlist/classInd.txt           "1 ApplyEyeMakeup"   (1-based)
    RAW/ucfTrainTestlist/trainlist0N.txt        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    RAW/ucfTrainTestlist/testlist0N.txt         "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

(the zip files UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip from https://www.crcv.ucf.edu/data/UCF101.php
unpacked into RAW). Video ids are ``<Class>/<stem>``, the keys of UCF101-24's ``UCF101v2-GT.pkl``.
"""

from __future__ import annotations

import os

from data.datasets.base import (
    DatasetLayoutError,
    DatasetSplits,
    VideoTask,
    find_file,
    parse_class_names_file,
    read_lines,
    video_id_from_path,
)

VIDEO_FOLDER_NAMES = ("UCF-101", "UCF101", "videos")


def _video_root(raw_dir: str, class_names: list[str]) -> str:
    for name in VIDEO_FOLDER_NAMES:
        candidate = os.path.join(raw_dir, name)
        if os.path.isdir(candidate):
            return candidate
    if class_names and os.path.isdir(os.path.join(raw_dir, class_names[0])):
        return raw_dir
    raise DatasetLayoutError(
        f"UCF101 videos not found under {raw_dir}: expected {raw_dir}/UCF-101/<Class>/v_*.avi "
        "(unrar UCF101.rar into --raw_dir)."
    )


def find_split_dir(raw_dir: str) -> str:
    """The folder holding ``classInd.txt`` (``RAW/ucfTrainTestlist`` in the official zip)."""
    path = find_file(raw_dir, "classInd.txt", max_depth=2)
    if path is None:
        raise DatasetLayoutError(
            f"UCF101 split files not found: expected {raw_dir}/ucfTrainTestlist/classInd.txt. Download "
            "UCF101TrainTestSplits-RecognitionTask.zip from https://www.crcv.ucf.edu/data/UCF101.php and unzip it "
            "into --raw_dir."
        )
    return os.path.dirname(path)


def load(raw_dir: str, split: int = 1) -> DatasetSplits:
    """Parses UCF101 split ``split`` (1-3) into "train" and "test" video lists.

    Raises:
      DatasetLayoutError: missing files, with what to download / where to put it.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"UCF101 has splits 1, 2, 3; got --split={split}")
    list_dir = find_split_dir(raw_dir)
    class_names = parse_class_names_file(os.path.join(list_dir, "classInd.txt"))
    index_of = {name: i for i, name in enumerate(class_names)}
    video_root = _video_root(raw_dir, class_names)
    splits: dict[str, list[VideoTask]] = {}
    for split_name, file_name in (("train", f"trainlist0{split}.txt"), ("test", f"testlist0{split}.txt")):
        tasks = []
        for line in read_lines(os.path.join(list_dir, file_name), f"UCF101 {split_name} list"):
            relative = line.split()[0]
            class_name = relative.replace("\\", "/").split("/")[0]
            if class_name not in index_of:
                raise DatasetLayoutError(f"{file_name}: class {class_name!r} of {relative} is not in classInd.txt")
            tasks.append(
                VideoTask(
                    video_id=video_id_from_path(relative),
                    source=os.path.join(video_root, relative),
                    labels=(index_of[class_name],),
                )
            )
        splits[split_name] = tasks
    return DatasetSplits(class_names=class_names, splits=splits)


def load_ucf101_24(raw_dir: str, gt_path: str, split: int = 1) -> DatasetSplits:
    """UCF101-24: the classes, train/test lists and boxes of ``UCF101v2-GT.pkl``, videos from ``RAW/UCF-101``.

    Raises:
      DatasetLayoutError: missing files.
    """
    from data.datasets import annotations

    ground_truth = annotations.load_ucf101_24_pickle(gt_path)
    class_names = list(ground_truth["labels"])
    video_root = _video_root(raw_dir, class_names)
    boxes = annotations.boxes_from_ucf101_24(ground_truth)
    splits = {}
    for split_name, key in (("train", "train_videos"), ("test", "test_videos")):
        lists = ground_truth[key]
        if len(lists) < split:
            raise DatasetLayoutError(f"{gt_path} has {len(lists)} {key} lists; --split={split} does not exist")
        tasks = []
        for video in lists[split - 1]:
            labels = tuple(sorted(int(label) for label in ground_truth["gttubes"].get(video, {})))
            tasks.append(
                VideoTask(
                    video_id=video,
                    source=os.path.join(video_root, video + ".avi"),
                    labels=labels,
                    boxes=boxes.get(video),
                )
            )
        splits[split_name] = tasks
    return DatasetSplits(class_names=class_names, splits=splits)
