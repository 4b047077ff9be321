"""ST-attn the paper's way (Meng et al. Sec. 3.1), as one chain of commands at toy size.

TSN fine-tuning of the trunk (`stpa.train --model=tsn`) -> features with that trunk (`st_attn.features
--weights=RUN_DIR`) -> the attention trained on the cached features (`stpa.train --model=st_attn --features_dir`)
-> localisation (`st_attn.localize`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest

import stpa.families  # noqa: F401 - registers the families a run directory is rebuilt with.
from data import pipeline
from st_attn import feature_cache, fine_tuned_trunk, models
from stpa.blocks import backbones
from stpa.blocks.preprocessing import preprocess_for
from stpa.engine import checkpoints
from tests.st_attn import records_helper

SIZE = 32
FRAMES = 4
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _run(*args: str) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain_records")
    for split, count in (("train", 6), ("test", 4)):
        examples = [
            records_helper.video(f"{split}{i}", i % 2, num_frames=10 + i, seed=i + 10 * (split == "test"))
            for i in range(count)
        ]
        records_helper.write_split(str(root / split), examples)
    return str(root)


def _trunk_features(run_dir: str, split_dir: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per video id: the fine-tuned TSN network's own trunk output `(n, h, w, C)` on the test pipeline's frames;
    and those frames `(B, n, S, S, 3)`."""
    tsn = checkpoints.load_model(run_dir)
    feature_layer = backbones.feature_extractor("tiny", input_size=SIZE).layers[-1].name
    # The layer is shared by the backbone's own graph and the TSN graph: take its call inside the TSN graph (last).
    folded = tsn.get_layer(feature_layer)._inbound_nodes[-1].outputs[0]
    trunk = keras.Model(tsn.input, folded)  # frames (B, K, ...) -> (B*K, h, w, C)
    dataset = pipeline.build_dataset(
        split_dir,
        training=False,
        num_frames=FRAMES,
        batch_size=8,
        input_size=SIZE,
        preprocess=preprocess_for("tiny", "rgb"),
        with_metadata=True,
    )
    frames, _, metadata = next(iter(dataset))
    maps = trunk(frames, training=False).numpy()
    maps = maps.reshape(frames.shape[0], FRAMES, *maps.shape[1:])  # (B, K, h, w, C)
    return {vid.decode(): maps[i] for i, vid in enumerate(metadata["video_id"].numpy())}, frames.numpy()


@pytest.mark.slow
def test_fine_tune_features_attention_localize_chain(records_dir, tmp_path):
    tsn_dir = str(tmp_path / "tsn")
    _run(
        "stpa.train",
        "--model=tsn",
        "--backbone=tiny",
        f"--input_size={SIZE}",
        f"--records_dir={records_dir}",
        f"--model_dir={tsn_dir}",
        "--train_frames=2",
        "--batch_size=2",
        "--learning_rate=0.05",
        "--max_steps=3",
        "--eval_every=0",
        "--eval_split=",
        "--progress=false",
    )

    features_dir = str(tmp_path / "features")
    _run(
        "st_attn.features",
        f"--records_dir={records_dir}",
        f"--out_dir={features_dir}",
        "--splits=train,test",
        "--backbone=tiny",
        f"--weights={tsn_dir}",
        f"--num_frames={FRAMES}",
        "--batch_size=2",
        "--dtype=float32",
    )
    manifest = feature_cache.read_feature_manifest(os.path.join(features_dir, "test"))
    assert manifest["extractor"]["weights"] == "run" and manifest["extractor"]["run_dir"] == os.path.abspath(tsn_dir)
    assert manifest["extractor"]["input_size"] == SIZE  # Taken from the run's config.json.

    # The cached features are the fine-tuned trunk's outputs on the same frames, not those of a fresh trunk.
    expected, frames = _trunk_features(tsn_dir, os.path.join(records_dir, "test"))
    seen = 0
    for feats, _, meta in feature_cache.feature_dataset(
        os.path.join(features_dir, "test"), training=False, batch_size=2, with_metadata=True
    ):
        for i, vid in enumerate(meta["video_id"].numpy()):
            np.testing.assert_allclose(feats[i].numpy(), expected[vid.decode()], rtol=1e-4, atol=1e-5)
            seen += 1
    assert seen == 4
    # A trunk at its initialisation (same seed as the run's default) gives other features: the weights came from
    # the run's checkpoint, not from a fresh build.
    keras.utils.set_random_seed(0)
    fresh = backbones.feature_extractor("tiny", input_size=SIZE)
    fresh_maps = fresh(frames.reshape(-1, *frames.shape[2:]), training=False).numpy()
    tuned_maps = np.concatenate([v for v in expected.values()])
    assert np.abs(np.sort(fresh_maps.ravel()) - np.sort(tuned_maps.ravel())).max() > 1e-3

    attention_dir = str(tmp_path / "st_attn")
    _run(
        "stpa.train",
        "--model=st_attn",
        "--backbone=tiny",
        f"--features_dir={features_dir}",
        f"--model_dir={attention_dir}",
        "--train_frames=3",
        f"--eval_frames={FRAMES}",
        "--batch_size=2",
        "--max_steps=2",
        "--eval_every=0",
        "--eval_split=",
        "--progress=false",
        '--model_options="mask_filters=(8,8)",lstm_units=8,init_filters=8,attention_units=8',
    )

    output = str(tmp_path / "localization.json")
    _run(
        "st_attn.localize",
        f"--model_dir={attention_dir}",
        f"--features_dir={features_dir}",
        f"--records_dir={records_dir}",
        "--split=test",
        f"--num_frames={FRAMES}",
        f"--output={output}",
    )
    with open(output) as f:
        result = json.load(f)
    expected = _expected_tables(attention_dir, os.path.join(features_dir, "test"))
    assert result["classification"]["videos"] == 4
    assert result["classification"]["top1"] == pytest.approx(expected["top1"], abs=1e-12)
    assert result["spatial"]["frames"] == expected["frames"] == 9
    assert result["temporal"]["videos"] == 4
    for table in ("spatial", "temporal"):
        assert result[table]["thresholds"] == list(THRESHOLDS[table])
        assert set(result[table]["rows"]) == set(expected[table])
        for method, values in result[table]["rows"].items():
            np.testing.assert_allclose(values, expected[table][method], rtol=0, atol=1e-12, err_msg=method)


# ------------------------------------------------------------------------------------------------------------------
# An independent plain-NumPy scoring of the localisation (Sec. 4.2 of Meng et al.) for the chain's test split.

THRESHOLDS = {"spatial": (0.05, 0.1, 0.2, 0.3), "temporal": (0.1, 0.2, 0.3, 0.4, 0.5)}
GT_BOX = (0.5, 0.25, 0.875, 0.75)  # records_helper.video's default box, on frames 3..8
# Its segment [0.3, 0.9) s as the records store it, in float32: the 12-frame video's whole clip [0, 1.2) then has
# tIoU 0.59999996 / 1.2 < 0.5, a miss at alpha = 0.5 (it would be a hit at exactly 0.5).
GT_SEGMENT = tuple(np.float32([0.3, 0.9]).astype(np.float64))
# The test crop of a 40x48 frame at 32 px: short side 40 -> 32 * 256 // 224 = 36, so 36x43 (48 * 0.9 = 43.2);
# the centre 32x32 starts at row 2, column 5. The mask is upsampled to the crop's round(32/36 * 40) = 36 by
# round(32/43 * 48) = 36 pixels of the stored frame.
WINDOW = (5 / 43, 2 / 36, 37 / 43, 34 / 36)
CROP_PIXELS = 36


def _iou(a, b) -> float:
    """Boxes (x1, y1, x2, y2) or segments (start, end)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    half = len(a) // 2
    overlap = np.prod(np.clip(np.minimum(a[half:], b[half:]) - np.maximum(a[:half], b[:half]), 0, None))
    union = np.prod(a[half:] - a[:half]) + np.prod(b[half:] - b[:half]) - overlap
    return float(overlap / union)


def _mean_ap(detections, truths, alpha, class_agnostic=False) -> float:
    """detections [(key, region, score, class)], truths [(key, region, class)] -> mean over classes with truth."""
    if class_agnostic:
        detections = [(k, r, s, 0) for k, r, s, _ in detections]
        truths = [(k, r, 0) for k, r, _ in truths]
    aps = []
    for c in sorted({t[2] for t in truths}):
        free = [(k, r) for k, r, label in truths if label == c]
        ranked = sorted([d for d in detections if d[3] == c], key=lambda d: -d[2])  # stable: ties keep order
        hits = []
        for key, region, _, _ in ranked:
            overlaps = [_iou(region, r) if k == key else -1.0 for k, r in free]
            best = int(np.argmax(overlaps)) if overlaps else -1
            hits.append(best >= 0 and overlaps[best] >= alpha)
            if hits[-1]:
                free.pop(best)
        hits = np.asarray(hits, bool)
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        # All-point interpolation: each true positive adds 1/G of recall at the best precision from its rank on.
        total = sum(1 for _, _, label in truths if label == c)
        aps.append(sum(precision[i:].max() for i in np.flatnonzero(hits)) / total)
    return float(np.mean(aps))


def _expected_tables(attention_dir: str, features_split: str) -> dict:
    """Tables 5-6 of the chain's test split, recomputed from the trained run's attention on the cached features."""
    probe = models.attention_model(checkpoints.load_model(attention_dir))
    labels, spatial, centred, box_truths, temporal, whole, segment_truths = [], [], [], [], [], [], []
    frames = 0
    for feats, y, meta in feature_cache.feature_dataset(
        features_split, training=False, batch_size=4, num_frames=FRAMES, with_metadata=True
    ):
        outputs = probe(feats, training=False)
        logits = np.asarray(outputs["logits"], np.float64)
        masks, weights = np.asarray(outputs["mask"], np.float64)[..., 0], np.asarray(outputs["temporal_weights"])
        for v, vid in enumerate(meta["video_id"].numpy()):
            index = int(vid.decode()[len("test") :])  # records_dir: video "test{i}" has 10 + i frames, class i % 2
            label, num_frames = index % 2, 10 + index
            assert int(y[v]) == label
            probabilities = np.exp(logits[v] - logits[v].max())
            probabilities /= probabilities.sum()
            predicted = int(np.argmax(probabilities))
            labels.append(predicted == label)
            sampled = np.floor(num_frames / FRAMES / 2 + num_frames / FRAMES * np.arange(FRAMES)).astype(int)
            np.testing.assert_array_equal(meta["frame_indices"][v], sampled)  # TSN's segment centres
            for t, f in enumerate(sampled):
                if not 3 <= f <= 8:
                    continue
                key = (index, int(f))
                frames += 1
                box_truths.append((key, GT_BOX, label))
                centred.append((key, (0.3125, 0.25, 0.6875, 0.75), probabilities[predicted], predicted))  # 0.375x0.5
                up = cv2.resize(masks[v, t], (CROP_PIXELS, CROP_PIXELS), interpolation=cv2.INTER_LINEAR) > 0.5
                if up.any():
                    rows, cols = np.flatnonzero(up.any(1)), np.flatnonzero(up.any(0))
                    in_crop = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]) / CROP_PIXELS
                    x1, y1, x2, y2 = WINDOW
                    box = np.array([x1, y1, x1, y1]) + in_crop * [x2 - x1, y2 - y1, x2 - x1, y2 - y1]
                    confidence = masks[v, t][masks[v, t] > 0.5].mean()
                    spatial.append((key, box, probabilities[predicted] * confidence, predicted))
            segment_truths.append((index, GT_SEGMENT, label))
            whole.append((index, (0.0, num_frames / 10), probabilities[predicted], predicted))
            importance = np.asarray(weights[v], np.float64).mean(axis=0)  # (n,): the mean over the ConvLSTM steps
            spread = importance.max() - importance.min()
            normalised = (importance - importance.min()) / spread if spread > 1e-12 else np.ones(FRAMES)
            span = num_frames / FRAMES / 10  # seconds per attended frame at 10 fps
            start = None
            for i, selected in enumerate([*(normalised >= 0.5), False]):
                if selected and start is None:
                    start = i
                elif not selected and start is not None:
                    score = probabilities[predicted] * normalised[start:i].mean()
                    temporal.append((index, (start * span, i * span), score, predicted))
                    start = None

    def rows(ours, baseline, truths, thresholds, names):
        return {
            names[0]: [_mean_ap(ours, truths, a) for a in thresholds],
            names[1]: [_mean_ap(baseline, truths, a) for a in thresholds],
            names[2]: [_mean_ap(ours, truths, a, True) for a in thresholds],
            names[3]: [_mean_ap(baseline, truths, a, True) for a in thresholds],
        }

    return {
        "top1": float(np.mean(labels)),
        "frames": frames,
        "spatial": rows(
            spatial,
            centred,
            box_truths,
            THRESHOLDS["spatial"],
            (
                "ST-attn (ours)",
                "Centred box of average GT size",
                "ST-attn, class-agnostic AP",
                "Centred box, class-agnostic AP",
            ),
        ),
        "temporal": rows(
            temporal,
            whole,
            segment_truths,
            THRESHOLDS["temporal"],
            (
                "ST-attn (ours)",
                "Whole clip as one segment",
                "ST-attn, class-agnostic AP",
                "Whole clip, class-agnostic AP",
            ),
        ),
    }


def test_run_dir_must_match_the_asked_backbone(records_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    build = {"model": "tsn", "backbone": "tiny", "modality": "rgb", "input_size": SIZE, "flow_length": 5}
    (run_dir / "config.json").write_text(json.dumps({"build": build}))
    assert fine_tuned_trunk.is_run_dir(str(run_dir)) and not fine_tuned_trunk.is_run_dir("imagenet")
    with pytest.raises(ValueError, match=r"--backbone='resnet101' but the run has 'tiny'"):
        fine_tuned_trunk.run_feature_extractor(str(run_dir), backbone="resnet101", modality="rgb")
    with pytest.raises(ValueError, match=r"--input_size=64 but the run has 32"):
        fine_tuned_trunk.run_feature_extractor(str(run_dir), backbone="tiny", modality="rgb", input_size=64)
    (run_dir / "config.json").write_text(json.dumps({"build": {**build, "model": "stpa"}}))
    with pytest.raises(ValueError, match="comes from a `python -m stpa.train --model=tsn` run"):
        fine_tuned_trunk.run_feature_extractor(str(run_dir), backbone="tiny", modality="rgb")
