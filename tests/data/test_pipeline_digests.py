"""Pinned digests of `data.pipeline.build_dataset`'s batches, so that restructuring it cannot change a number.

The digests were computed with the code before `build_dataset` was split into named steps (issue 18). The records
are small textured videos written here (every pixel differs, so another crop position, flip or frame changes the
digest); training streams use ``seed`` with ``deterministic=True`` under a fixed global TensorFlow seed (the
op-level seeds of the shuffles and of `tf.data.Dataset.random` are combined with it). The two readers crop and resize
training clips with different libraries (TensorFlow, OpenCV), so each has its own training digests; their test
clips are equal to the bit.
"""

import hashlib

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.eager import context

from data import pipeline, video_io
from tests.data.record_helpers import encode_jpeg_444, write_split

NUM_FRAMES = (13, 8, 21, 5, 10, 16)
HEIGHT, WIDTH = 30, 38
BASE = {"num_frames": 3, "batch_size": 2, "input_size": 20, "seed": 7, "deterministic": True}
# name: (build_dataset arguments beyond BASE, batches taken).
CASES = {
    "rgb_train": ({"training": True}, 3),
    "rgb_train_metadata": ({"training": True, "with_metadata": True}, 3),
    "rgb_train_uint8": ({"training": True, "frames_dtype": "uint8"}, 2),
    "rgb_train_no_flip": ({"training": True, "flip": False}, 2),
    "rgb_train_flip_map": ({"training": True, "flip_label_map": {"a": "b", "b": "a", "c": None}}, 3),
    "rgb_train_clips2": ({"training": True, "clips_per_video": 2, "with_metadata": True}, 3),
    "rgb_train_skip": ({"training": True, "skip": 3, "with_metadata": True}, 2),
    "rgb_train_clips2_skip": ({"training": True, "clips_per_video": 2, "skip": 3}, 2),
    "rgb_eval": ({"training": False, "with_metadata": True}, None),
    "rgb_eval_preprocess": ({"training": False, "preprocess": lambda x: x / 127.5 - 1.0}, None),
    "rgb_eval_3crops": ({"training": False, "crops": 3}, 2),
    "rgb_eval_10crops": ({"training": False, "crops": 10, "with_metadata": True}, 2),
    "multi_label_train": ({"training": True, "multi_label": True}, 2),
    "multi_label_eval": ({"training": False, "multi_label": True}, None),
    "flow_train": ({"training": True, "modality": "flow", "flow_length": 2, "with_metadata": True}, 3),
    "flow_eval": ({"training": False, "modality": "flow", "flow_length": 2, "with_metadata": True}, None),
    "flow_eval_10crops": ({"training": False, "modality": "flow", "flow_length": 2, "crops": 10}, 1),
}
# {case: {reader: digest}}.
PINNED = {
    "rgb_train": {"offsets": "91f9d122bd1a2028", "records": "8629692109d58e36"},
    "rgb_train_metadata": {"offsets": "9af8f313b70a6897", "records": "0957b7992244fba4"},
    "rgb_train_uint8": {"offsets": "26c2215c3f58b1fc", "records": "ea635609e3f5d9be"},
    "rgb_train_no_flip": {"offsets": "c45191bbcd3fa514", "records": "ed3e67b717f3d7db"},
    "rgb_train_flip_map": {"offsets": "a56a6dc6219f37e5", "records": "a1f6608d3663ee06"},
    "rgb_train_clips2": {"offsets": "b7de62dd597fd1a4", "records": "d2d77ae31a32b59b"},
    "rgb_train_skip": {"offsets": "45c52e834b2818aa", "records": "237a48bd5cbfde7f"},
    "rgb_train_clips2_skip": {"offsets": "b324ec1a7fa0f0a5", "records": "3740dd63933624e2"},
    "rgb_eval": {"offsets": "7a3a0cc3c882f16f", "records": "7a3a0cc3c882f16f"},
    "rgb_eval_preprocess": {"offsets": "5611cb431983ca44", "records": "5611cb431983ca44"},
    "rgb_eval_3crops": {"offsets": "4b7dae54dd657d3d", "records": "4b7dae54dd657d3d"},
    "rgb_eval_10crops": {"offsets": "702aa286dd9498ff", "records": "702aa286dd9498ff"},
    "multi_label_train": {"offsets": "0203e850f55be4d4", "records": "abe48ef2b8a48c3e"},
    "multi_label_eval": {"offsets": "caf2468e9e16f8d2", "records": "caf2468e9e16f8d2"},
    "flow_train": {"offsets": "df814ed00c7af9c8", "records": "886d681714b2fe1e"},
    "flow_eval": {"offsets": "b35940c7990ec772", "records": "b35940c7990ec772"},
    "flow_eval_10crops": {"offsets": "bd0a3966e12d836a", "records": "bd0a3966e12d836a"},
}


@pytest.fixture(scope="module")
def textured_split(tmp_path_factory):
    """Six videos of random smooth textures (RGB 4:4:4 JPEG, flow x / y gray JPEG), labels 0-2 (one video 2 labels)."""
    rng = np.random.default_rng(18)
    videos = []
    for i, n in enumerate(NUM_FRAMES):
        coarse = rng.uniform(0, 255, size=(n, HEIGHT // 3, WIDTH // 3, 3)).astype(np.float32)
        fine = rng.uniform(-40, 40, size=(n, HEIGHT, WIDTH, 3)).astype(np.float32)
        frames = [np.clip(_upsample(c) + f, 0, 255).astype(np.uint8) for c, f in zip(coarse, fine)]
        flow = rng.integers(0, 256, size=(n - 1, 2, HEIGHT, WIDTH), dtype=np.uint8)
        videos.append({
            "video_id": f"v{i}", "labels": [i % 3] if i != 4 else [0, 2], "fps": 10.0 + i,
            "height": HEIGHT, "width": WIDTH, "frames": [encode_jpeg_444(f) for f in frames],
            "flow_x": [video_io.encode_jpeg(f[0], 95) for f in flow],
            "flow_y": [video_io.encode_jpeg(f[1], 95) for f in flow],
        })  # fmt: skip
    return write_split(str(tmp_path_factory.mktemp("textured") / "train"), videos, ["a", "b", "c"], shards=2)


def _upsample(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) -> (HEIGHT, WIDTH, 3) by pixel repetition (then cropped)."""
    return np.repeat(np.repeat(image, 4, 0), 4, 1)[:HEIGHT, :WIDTH]


@pytest.fixture
def fixed_global_seed():
    """A fixed global TensorFlow seed while the datasets are built; the previous one is restored afterwards."""
    previous = context.global_seed()
    tf.random.set_seed(18)
    yield
    tf.random.set_seed(previous)


def batches_digest(dataset: tf.data.Dataset, batches: int | None) -> str:
    """First 16 hex digits of the sha256 of the batches' arrays (every tuple part, dicts by key), in order."""
    digest = hashlib.sha256()
    for batch in dataset if batches is None else dataset.take(batches):
        for part in tf.nest.flatten(batch):  # dicts are flattened in sorted key order
            array = part.numpy()
            digest.update(f"{array.dtype}{array.shape}".encode())
            # String tensors are object arrays (of pointers): their bytes, each ended by a zero byte.
            data = b"".join(v + b"\0" for v in array.ravel()) if array.dtype == object else array.tobytes()
            digest.update(data)
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("reader", ["offsets", "records"])
@pytest.mark.parametrize("case", list(CASES))
def test_build_dataset_yields_the_pinned_batches(textured_split, fixed_global_seed, case, reader):
    arguments, batches = CASES[case]
    dataset = pipeline.build_dataset(textured_split, **BASE, **arguments, reader=reader)
    assert batches_digest(dataset, batches) == PINNED[case][reader]


def test_auto_reader_is_the_offsets_reader_with_indices_and_the_records_reader_without(
    textured_split, fixed_global_seed, tmp_path
):
    import glob
    import os
    import shutil

    arguments, batches = CASES["rgb_train_metadata"]
    dataset = pipeline.build_dataset(textured_split, **BASE, **arguments, reader="auto")
    assert batches_digest(dataset, batches) == PINNED["rgb_train_metadata"]["offsets"]
    copy = str(tmp_path / "train")
    shutil.copytree(textured_split, copy)
    for index in glob.glob(os.path.join(copy, "*.offsets")):
        os.remove(index)
    tf.random.set_seed(18)
    dataset = pipeline.build_dataset(copy, **BASE, **arguments, reader="auto")
    assert batches_digest(dataset, batches) == PINNED["rgb_train_metadata"]["records"]
