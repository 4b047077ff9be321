"""st_attn.localize: crop geometry, detections from hand-made attention, and the command line on a saved model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data import augment
from data import records as record_format
from st_attn import localize
from tests.st_attn import known_attention, records_helper

H, W, S = 40, 48, 16
OFF_CENTRE_BOX = (0.0625, 0.1, 0.3125, 0.5)


def test_centre_crop_window_matches_the_test_pipeline():
    # A frame whose pixels hold their own normalised centre coordinates; the test crop's corner pixels tell where it is.
    ys, xs = np.meshgrid((np.arange(H) + 0.5) / H, (np.arange(W) + 0.5) / W, indexing="ij")
    frame = np.stack([xs, ys, np.zeros_like(xs)], axis=-1)[None].astype(np.float32)  # (1, H, W, 3)
    crop = augment.eval_crops(tf.constant(frame), S, 1, "rgb").numpy()[0, 0]  # (S, S, 3)
    x1, y1, x2, y2 = localize.centre_crop_window(H, W, S)
    np.testing.assert_allclose(crop[0, 0, :2], [x1 + (x2 - x1) / (2 * S), y1 + (y2 - y1) / (2 * S)], atol=2e-3)
    np.testing.assert_allclose(crop[-1, -1, :2], [x2 - (x2 - x1) / (2 * S), y2 - (y2 - y1) / (2 * S)], atol=2e-3)
    assert localize.centre_crop_window(256, 340, 224) == pytest.approx((58 / 340, 16 / 256, 282 / 340, 240 / 256))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    examples = [
        records_helper.video(f"v{i}", i % 2, num_frames=12, height=H, width=W, box=OFF_CENTRE_BOX, first=3, last=6)
        for i in range(4)
    ]
    return records_helper.write_split(str(tmp_path_factory.mktemp("records") / "test"), examples)


def _perfect_attention(video_id, label, annotation, n=6):
    """Attention that marks exactly the ground-truth box (in the crop) and the ground-truth frames."""
    x1, y1, x2, y2 = localize.centre_crop_window(H, W, S)
    centres = (np.arange(S) + 0.5) / S
    box = np.asarray(OFF_CENTRE_BOX)
    inside_x = (x1 + centres * (x2 - x1) > box[0]) & (x1 + centres * (x2 - x1) < box[2])
    inside_y = (y1 + centres * (y2 - y1) > box[1]) & (y1 + centres * (y2 - y1) < box[3])
    mask = np.where(inside_y[:, None] & inside_x[None, :], 0.9, 0.1)[None].repeat(n, axis=0)  # (n, S, S)
    frame_indices = np.floor(12 / n / 2 + 12 / n * np.arange(n)).astype(int)  # TSN centres: 1, 3, 5, 7, 9, 11
    active = np.isin(frame_indices, list(annotation["boxes"]))  # frames 3..6 -> sampled 3, 5
    weights = np.where(active, 1.0, 0.01)[None].repeat(n, axis=0)
    probabilities = np.eye(2)[label] * 0.8 + 0.1
    return localize.VideoAttention(
        video_id,
        probabilities,
        mask,
        weights / weights.sum(-1, keepdims=True),
        frame_indices,
        12,
        records_helper.FPS,
        H,
        W,
        label,
    )


def test_perfect_attention_beats_the_baselines(split):
    annotations = record_format.read_annotations(split)
    videos = [_perfect_attention(vid, a["labels"][0], a) for vid, a in sorted(annotations.items())]
    result = localize.localize(videos, annotations, input_size=S)
    spatial, temporal = result["spatial"], result["temporal"]
    assert spatial["frames"] == 4 * 2  # annotated sampled frames: 3 and 5 of each video
    assert spatial["rows"]["ST-attn (ours)"] == [1.0, 1.0, 1.0, 1.0]
    assert spatial["rows"]["Centred box of average GT size"] == [0.0, 0.0, 0.0, 0.0]  # off-centre: no overlap
    # Selected frames 3, 5 stand for seconds [0.2, 0.6) against the truth [0.3, 0.7): tIoU 0.3 / 0.5 = 0.6.
    assert temporal["rows"]["ST-attn (ours)"] == [1.0, 1.0, 1.0, 1.0, 1.0]
    # The whole clip [0, 1.2) has tIoU 0.4 / 1.2 = 1/3 with it.
    assert temporal["rows"]["Whole clip as one segment"] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert result["classification"] == {"videos": 4, "top1": 1.0}
    table = localize.format_tables(result)
    assert "Table 5" in table and "Table 6" in table and "100.0%" in table


def test_wrong_class_costs_class_aware_map_only(split):
    annotations = record_format.read_annotations(split)
    videos = [_perfect_attention(vid, 1 - a["labels"][0], a) for vid, a in sorted(annotations.items())]
    result = localize.localize(videos, annotations, input_size=S)
    assert result["spatial"]["rows"]["ST-attn (ours)"] == [0.0] * 4
    assert result["spatial"]["rows"]["ST-attn, class-agnostic AP"] == [1.0] * 4


@pytest.fixture(scope="module")
def one_class_split(tmp_path_factory):
    """Four videos of class 1 (of 2) with the off-centre box on frames 3..6, i.e. the segment [0.3, 0.7) s."""
    examples = [
        records_helper.video(f"w{i}", 1, num_frames=12, height=H, width=W, box=OFF_CENTRE_BOX, first=3, last=6, seed=i)
        for i in range(4)
    ]
    return records_helper.write_split(str(tmp_path_factory.mktemp("one_class") / "test"), examples)


def _box_iou(a, b) -> float:
    width = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    height = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


@pytest.mark.slow
def test_command_line_on_a_saved_model_of_known_attention(one_class_split, tmp_path):
    """A saved model whose outputs are fixed by hand: every mask entry 0.8, uniform temporal attention, class 1.

    The mask is the constant sigmoid of the last mask convolution's bias (its kernel zeroed), the temporal attention
    is softmax of zero energies (v = 0), the logits are the classifier's bias (its kernel zeroed). So each annotated
    frame's box is the whole test crop, and each video's one segment is the whole clip; their IoUs with the ground
    truth, computed here, decide every AP: all detections have the same IoU, so each AP is 1 (all true positives)
    or 0 (none).
    """
    model = known_attention.known_attention_model(
        input_size=S, feature_filters=8, mask_filters=(4, 4), mask_value=0.8, logits_bias=np.array([0.0, 3.0])
    )
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)
    output = str(tmp_path / "new" / "result.json")  # the folder is created
    records_dir = os.path.dirname(one_class_split)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "st_attn.localize",
            f"--model_path={model_path}",
            f"--records_dir={records_dir}",
            "--split=test",
            "--backbone=tiny",
            f"--input_size={S}",
            "--num_frames=6",
            f"--output={output}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Table 5" in completed.stdout and "Table 6" in completed.stdout
    with open(output) as f:
        result = json.load(f)
    assert result["classification"] == {"videos": 4, "top1": 1.0}

    # The test crop, by hand: the short side 40 is resized to 16 * 256 // 224 = 18, so 40x48 -> 18x22
    # (48 * 18 / 40 = 21.6 -> 22); the centre 16x16 starts at row 1, column 3.
    crop = (3 / 22, 1 / 18, 19 / 22, 17 / 18)
    box_iou = _box_iou(crop, OFF_CENTRE_BOX)
    assert box_iou == pytest.approx(0.10422, abs=1e-5)  # (0.3125 - 3/22) * 0.4 / (16/22 * 16/18 + 0.1 - that)
    spatial = result["spatial"]
    assert spatial["thresholds"] == [0.05, 0.1, 0.2, 0.3]
    assert spatial["frames"] == 4 * 2  # sampled frames 1, 3, ..., 11; frames 3 and 5 carry a box
    expected = [float(box_iou >= alpha) for alpha in spatial["thresholds"]]
    assert expected == [1.0, 1.0, 0.0, 0.0]
    assert spatial["rows"]["ST-attn (ours)"] == expected
    assert spatial["rows"]["ST-attn, class-agnostic AP"] == expected  # one class: the same detections count
    # The centred box of the average GT size (0.25 x 0.4) is [0.375, 0.625] wide: no overlap with [0.0625, 0.3125].
    assert spatial["rows"]["Centred box of average GT size"] == [0.0] * 4
    assert spatial["rows"]["Centred box, class-agnostic AP"] == [0.0] * 4

    # Uniform attention selects all six frames: the segment [0, 12 / 10) s; the truth is [0.3, 0.7) s.
    segment_iou = (0.7 - 0.3) / 1.2
    temporal = result["temporal"]
    assert temporal["thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5] and temporal["videos"] == 4
    expected = [float(segment_iou >= alpha) for alpha in temporal["thresholds"]]
    assert expected == [1.0, 1.0, 1.0, 0.0, 0.0]
    for method in temporal["rows"]:  # ours, the whole clip, and both class-agnostic: the same segment everywhere
        assert temporal["rows"][method] == expected, method
