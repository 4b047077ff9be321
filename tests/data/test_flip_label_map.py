"""The flip label map: which class a mirrored clip is, in training (both readers) and in 10-crop testing."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data import augment, pipeline, preparation, synthetic
from stpa.engine import evaluation
from tests.data.record_helpers import coded_video, write_split

CLASSES = ["Right", "Left", "Up"]


def test_parse_flip_label_map_pairs_and_never():
    assert augment.parse_flip_label_map("Right:Left, Up:-") == {"Right": "Left", "Left": "Right", "Up": None}
    assert augment.parse_flip_label_map("") == {}
    with pytest.raises(ValueError, match="two mirrors"):
        augment.parse_flip_label_map("Right:Left,Left:Up")
    with pytest.raises(ValueError, match="'A:B' or 'A:-'"):
        augment.parse_flip_label_map("Right")


def test_resolve_flip_label_map_sources():
    manifest_map = {"Right": "Left", "Left": "Right"}
    assert augment.resolve_flip_label_map("manifest", manifest_map) == manifest_map
    assert augment.resolve_flip_label_map("manifest", None) == {}
    assert augment.resolve_flip_label_map("identity", manifest_map) == {}
    assert augment.resolve_flip_label_map("Up:-", manifest_map) == {"Up": None}
    assert augment.resolve_flip_label_map({"Up": "Up", "Left": None}, None) == {"Left": None}


def test_flip_targets_known_indices_and_bad_maps():
    np.testing.assert_array_equal(augment.flip_targets(CLASSES, {"Right": "Left", "Left": "Right"}), [1, 0, 2])
    np.testing.assert_array_equal(augment.flip_targets(CLASSES, {"Right": "Left"}), [1, 0, 2])  # implied back
    np.testing.assert_array_equal(augment.flip_targets(CLASSES, {"Up": None}), [0, 1, -1])
    assert augment.flip_targets(CLASSES, {}) is None
    assert augment.flip_targets(CLASSES, {"Up": "Up"}) is None
    with pytest.raises(ValueError, match="not classes"):
        augment.flip_targets(CLASSES, {"Down": None})
    with pytest.raises(ValueError, match="not symmetric"):
        augment.flip_targets(CLASSES, {"Right": "Left", "Left": "Up"})


def _reference_flip(draws, labels, targets):
    """NumPy reference: a clip is mirrored when drawn and none of its labels is never-mirrored; labels follow."""
    flips, out = [], []
    for draw, clip_labels in zip(draws, labels):
        mirrored = [int(targets[label]) for label in clip_labels]
        flip = bool(draw) and all(m >= 0 for m in mirrored)
        flips.append(flip)
        out.append(mirrored if flip else list(clip_labels))
    return flips, out


def test_flip_with_labels_single_clip_and_batch():
    targets = np.array([1, 0, -1], np.int32)
    for draw, labels, expected_flip, expected_labels in [
        (True, [0], True, [1]), (True, [1], True, [0]), (True, [2], False, [2]), (False, [0], False, [0]),
    ]:  # fmt: skip
        flip, relabelled = augment.flip_with_labels_tf(tf.constant(draw), tf.constant(labels, tf.int64), targets)
        assert bool(flip) is expected_flip
        np.testing.assert_array_equal(relabelled.numpy(), expected_labels)
        assert relabelled.dtype == tf.int64
    draws = [True, True, False, True, True]
    labels = [[0], [0, 1], [1], [0, 2], []]  # multi-label rows; an unlabelled clip may be mirrored
    flips, relabelled = augment.flip_with_labels_tf(tf.constant(draws), tf.ragged.constant(labels, tf.int64), targets)
    expected_flips, expected_labels = _reference_flip(draws, labels, targets)
    np.testing.assert_array_equal(flips.numpy(), expected_flips)
    assert relabelled.to_list() == expected_labels
    # Identity (None): the draws and the labels are returned unchanged.
    flip, same = augment.flip_with_labels_tf(tf.constant(True), tf.constant([2], tf.int64), None)
    assert bool(flip) and same.numpy().tolist() == [2]


def test_unmirror_crop_scores_against_reference():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(2, 10, 3))
    targets = np.array([1, 0, -1])
    out = augment.unmirror_crop_scores(tf.constant(scores), targets).numpy()
    expected = scores.copy()
    for position in range(5):
        plain, mirrored = scores[:, 2 * position], scores[:, 2 * position + 1]
        expected[:, 2 * position + 1] = [[m[1], m[0], p[2]] for p, m in zip(plain, mirrored)]
    np.testing.assert_allclose(out, expected, rtol=0, atol=0)
    np.testing.assert_array_equal(augment.unmirror_crop_scores(tf.constant(scores), None).numpy(), scores)


def test_ten_crop_test_reads_mirrored_crops_through_the_map():
    """A 'model' whose class 0 / 1 scores are the left / right half's brightness: mirroring swaps them."""

    def model(frames, training=False):
        del training
        half = frames.shape[3] // 2
        left = tf.reduce_mean(frames[:, :, :, :half], axis=[1, 2, 3, 4])
        right = tf.reduce_mean(frames[:, :, :, half:], axis=[1, 2, 3, 4])
        return tf.stack([left, right, 0.5 * (left + right)], axis=-1)  # (B, 3)

    frames = np.linspace(0, 255, 2 * 40 * 48 * 3).reshape(1, 2, 40, 48, 3).astype(np.float32)  # (1, K, H, W, 3)
    frames = frames * np.linspace(0, 1, 48)[None, None, None, :, None]  # brighter to the right
    crops = augment.eval_crops(tf.constant(frames[0]), 24, 10, "rgb")[None]  # (1, 10, K, S, S, 3)
    per_crop = np.stack([model(crops[:, c]).numpy()[0] for c in range(10)])  # (10, 3)
    swap = evaluation.make_logits_fn(model, flip_targets=np.array([1, 0, 2]))(crops).numpy()[0]
    np.testing.assert_allclose(swap, per_crop[0::2].mean(axis=0), rtol=1e-5)  # mirrored crops read back = plain
    never = evaluation.make_logits_fn(model, flip_targets=np.array([-1, -1, 2]))(crops).numpy()[0]
    np.testing.assert_allclose(never[:2], per_crop[0::2, :2].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(never[2], per_crop[:, 2].mean(), rtol=1e-5)
    tsn = evaluation.make_logits_fn(model)(crops).numpy()[0]
    np.testing.assert_allclose(tsn, per_crop.mean(axis=0), rtol=1e-5)
    assert abs(tsn[0] - swap[0]) > 1.0  # the map matters on this input


def _coded_split(split_dir: str, class_names: list[str]) -> str:
    """Five coded videos (flow x = 8 i + 4, a left-right R ramp), video i of class i mod C, in two shards."""
    videos = []
    for i, n in enumerate((12, 7, 30, 3, 9)):
        video = coded_video(n)
        video.update(video_id=f"v{i}", labels=[i % len(class_names)], fps=10.0)
        videos.append(video)
    return write_split(split_dir, videos, class_names, shards=2)


@pytest.fixture(scope="module")
def direction_split(tmp_path_factory):
    """The coded videos of classes Right, Left, Up."""
    return _coded_split(str(tmp_path_factory.mktemp("flip") / "train"), CLASSES)


def _take(split_dir, reader, modality, flip_label_map, batches=4, flip=True):
    dataset = pipeline.build_dataset(
        split_dir, training=True, num_frames=2, batch_size=5, modality=modality, flow_length=2, input_size=24,
        seed=3, deterministic=True, reader=reader, frames_dtype="uint8", flip_label_map=flip_label_map, flip=flip,
    )  # fmt: skip
    frames, labels = zip(*[(f.numpy().astype(int), y.numpy()) for f, y in dataset.take(batches)])
    return np.concatenate(frames), np.concatenate(labels)


@pytest.mark.parametrize("reader", ["offsets", "records"])
@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_mirrored_clips_take_the_mirrored_label(direction_split, reader, modality):
    plain, labels = _take(direction_split, reader, modality, "identity")
    never, never_labels = _take(direction_split, reader, modality, "Right:-,Left:-,Up:-")
    swapped, swapped_labels = _take(direction_split, reader, modality, "Right:Left")
    unflipped, unflipped_labels = _take(direction_split, reader, modality, "identity", flip=False)
    np.testing.assert_array_equal(never, unflipped)  # every class never mirrored == no flip at all
    np.testing.assert_array_equal(never_labels, labels)
    np.testing.assert_array_equal(unflipped_labels, labels)
    np.testing.assert_array_equal(swapped, plain)  # the swap vetoes no flip: the same clips ...
    mirrored = np.array([not np.array_equal(a, b) for a, b in zip(plain, never)])  # (N,) clips the draw mirrored
    assert 3 <= mirrored.sum() <= len(mirrored) - 3
    expected = never[mirrored][..., ::-1, :].copy()  # (M, K, S, S, C): mirrored along the width
    if modality == "flow":
        expected[..., 0::2] = 255 - expected[..., 0::2]  # and the x component changes sign
    # Mirroring the small crop before the bilinear resize equals mirroring after it, up to rounding to uint8.
    np.testing.assert_allclose(plain[mirrored], expected, rtol=0, atol=1)
    # ... whose labels follow the map exactly where the clip is mirrored.
    np.testing.assert_array_equal(swapped_labels, np.where(mirrored, np.array([1, 0, 2])[labels], labels))
    assert set(labels[mirrored]) & {0, 1}  # the check covers a mirrored Right or Left clip


# sha256 of the training clips and labels that the pipeline gave before the flip label map existed (commit
# 34475ce: both readers, RGB and flow, seed 7, uint8): the identity map must reproduce them bit for bit.
BEFORE_THE_MAP = "5a638b4ddff5f0c7a08d12f1538960f157d1ffcdf53e85880c2e4204c4fa051b"


def test_identity_map_reproduces_the_pipeline_before_the_map(tmp_path):
    split = _coded_split(str(tmp_path / "train"), ["a", "b"])
    digest = hashlib.sha256()
    for reader in ("offsets", "records"):
        for modality in ("rgb", "flow"):
            dataset = pipeline.build_dataset(
                split, training=True, num_frames=3, batch_size=5, modality=modality, flow_length=2, input_size=24,
                seed=7, deterministic=True, reader=reader, frames_dtype="uint8",
            )  # fmt: skip
            for frames, labels in dataset.take(3):
                digest.update(frames.numpy().tobytes())
                digest.update(labels.numpy().astype(np.int64).tobytes())
    assert digest.hexdigest() == BEFORE_THE_MAP


def test_manifest_map_is_used_and_explicit_map_needs_class_names(direction_split, tmp_path):
    with open(os.path.join(direction_split, "manifest.json")) as f:
        manifest = json.load(f)
    assert pipeline.training_flip_targets(manifest, "manifest") is None  # no map in the manifest: identity
    manifest["flip_label_map"] = {"Up": None}
    np.testing.assert_array_equal(pipeline.training_flip_targets(manifest, "manifest"), [0, 1, -1])
    assert pipeline.training_flip_targets(manifest, "identity") is None
    with pytest.raises(ValueError, match="manifest.json, which is missing"):
        pipeline.training_flip_targets(None, "Up:-")


def test_synthetic_benchmark_writes_its_map_and_prepare_records_it(synthetic_raw, tmp_path):
    # TINY: MoveRight, MoveLeft, MoveUp with the class in colour AND motion: a mirrored mover is no class.
    with open(os.path.join(synthetic_raw, "flip_label_map.json")) as f:
        assert json.load(f) == {"MoveLeft": None, "MoveRight": None}
    out_dir = tmp_path / "records"
    subprocess.run([sys.executable, "-m", "data.prepare", "--dataset=ucf101", f"--raw_dir={synthetic_raw}",
                    f"--out_dir={out_dir}", "--flow=none", "--frame_size=none", "--workers=0", "--noprogress"],
                   check=True, capture_output=True)  # fmt: skip
    for split in ("train", "test"):
        with open(out_dir / split / "manifest.json") as f:
            assert json.load(f)["flip_label_map"] == {"MoveLeft": None, "MoveRight": None}
    assert synthetic.flip_label_map(synthetic.preset("study", cue="motion")) == {
        "MoveRight": "MoveLeft", "MoveLeft": "MoveRight"}  # fmt: skip
    assert synthetic.flip_label_map(synthetic.preset("study", cue="appearance")) == {}
    twelve = synthetic.flip_label_map(synthetic.SyntheticConfig(num_classes=12, cue="motion"))
    assert twelve == {"MoveRight": "MoveLeft", "MoveLeft": "MoveRight", "MoveUpRight": None, "MoveDownLeft": None,
                      "ZigZag": None}  # fmt: skip


def test_bad_flip_label_map_file_is_named(synthetic_raw, tmp_path):
    bad = tmp_path / "map.json"
    bad.write_text('{"Jump": null}')
    with pytest.raises(preparation.DatasetLayoutError, match="map.json.*not classes.*--flip_label_map_file=none"):
        preparation.load_dataset("ucf101", synthetic_raw, flip_label_map_file=str(bad))
    assert preparation.load_dataset("ucf101", synthetic_raw, flip_label_map_file="none").flip_label_map is None


@pytest.mark.slow
def test_training_run_records_its_map_in_config_json(direction_split, tmp_path):
    import stpa.families  # noqa: F401 - registers the families
    from stpa.engine import checkpoints, trainer
    from stpa.engine import config as config_lib

    records = tmp_path / "records"
    split = records / "train"
    split.mkdir(parents=True)
    for name in os.listdir(direction_split):
        data = open(os.path.join(direction_split, name), "rb").read()
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["flip_label_map"] = {"Right": "Left", "Left": "Right"}
            data = json.dumps(manifest).encode()
        (split / name).write_bytes(data)

    def run(name, **options):
        config = config_lib.from_values(dict(
            model_dir=str(tmp_path / name), records_dir=str(records), model="tsn", backbone="tiny", input_size=16,
            dropout=0.0, train_frames=2, batch_size=2, optimizer="adam", learning_rate=1e-3, max_steps=1,
            eval_every=0, eval_split=None, progress=False, **options))  # fmt: skip
        trainer.train(config)
        return checkpoints.load_run_config(config.model_dir).get("flip_label_map")

    assert run("manifest") == {"Right": "Left", "Left": "Right"}
    assert run("identity", flip_label_map="identity") is None  # config.json as before the map existed
    assert run("noflip", flip=False) == {"Right": None, "Left": None, "Up": None}
