"""Localisation geometry and detection AP on hand-made inputs with known answers."""

import cv2
import numpy as np
import pytest

from st_attn import localization as loc
from st_attn.localization import Detection, GroundTruth
from stpa.engine import pictures


def test_bilinear_upsampling_equals_opencv():
    image = np.random.default_rng(0).uniform(size=(3, 5)).astype(np.float32)
    expected = cv2.resize(image, (11, 7), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(pictures.upsample_bilinear(image, (7, 11)), expected, rtol=1e-5, atol=1e-6)


def test_box_from_mask_hand_made():
    mask = np.zeros((4, 4))
    mask[1:3, 2:4] = 1.0  # rows 1-2, columns 2-3 of a 4x4 mask
    # Upsampled to 8x8 and thresholded at 0.5 the region is rows 2..5, columns 4..7 -> exactly the mask's cells.
    np.testing.assert_allclose(loc.box_from_mask(mask, (8, 8)), [0.5, 0.25, 1.0, 0.75])
    np.testing.assert_allclose(loc.box_from_mask(mask[..., None], (8, 8)), [0.5, 0.25, 1.0, 0.75])
    # The network saw the centre half (width) of a 8x16 frame: the box maps back into frame coordinates.
    np.testing.assert_allclose(
        loc.box_from_mask(mask, (8, 16), crop_window=(0.25, 0.0, 0.75, 1.0)), [0.5, 0.25, 0.75, 0.75]
    )
    # A single bright cell in the corner of a 2x2 mask, frame 4x4: selected pixels are only (0,0) and its
    # neighbours with interpolated value > 0.5: value at pixel 1 is 0.75*1 + 0.25*0 -> selected; pixel 2 is 0.25.
    corner = np.array([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(loc.box_from_mask(corner, (4, 4)), [0.0, 0.0, 0.5, 0.5])
    assert loc.box_from_mask(np.full((3, 3), 0.5), (6, 6)) is None  # nothing strictly above 0.5


def test_box_iou_known_values():
    boxes = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6], [0, 0, 1, 2]], np.float64)
    np.testing.assert_allclose(loc.box_iou([0, 0, 2, 2], boxes), [1 / 7, 1.0, 0.0, 0.5])


def test_centred_box_baseline():
    size = loc.average_box_size([np.array([[0.0, 0.0, 0.2, 0.4]]), np.array([0.5, 0.5, 0.9, 0.7])])
    assert size == pytest.approx((0.3, 0.3))
    np.testing.assert_allclose(loc.centred_box(size), [0.35, 0.35, 0.65, 0.65])


def test_average_precision_hand_made_detections():
    a, b = np.array([0, 0, 0.5, 0.5]), np.array([0.5, 0.5, 1, 1])
    truths = [GroundTruth(("v", 1), a), GroundTruth(("v", 2), b)]
    detections = [
        Detection(("v", 2), b, 0.6),  # TP (rank 4)
        Detection(("v", 1), a, 0.9),  # TP (rank 1)
        Detection(("v", 1), a, 0.8),  # duplicate: its ground truth is already matched -> FP
        Detection(("v", 2), a, 0.7),  # no overlap -> FP
        Detection(("w", 0), a, 0.1),  # a frame without ground truth -> FP, ranked last: does not lower AP
    ]
    # Ranked flags: T F F T F; precision 1, 1/2, 1/3, 1/2, 2/5 at recall .5 .5 .5 1 1 -> AP = .5*1 + .5*.5.
    assert loc.frame_map(detections, truths, thresholds=(0.5,)) == {0.5: pytest.approx(0.75)}
    assert loc.average_precision([True, False, False, True, False], 2) == pytest.approx(0.75)
    assert loc.average_precision([], 3) == 0.0
    assert loc.average_precision([False, True], 1) == pytest.approx(0.5)


def test_each_ground_truth_is_matched_once_and_to_the_best_free_one():
    truths = [GroundTruth("f", np.array([0, 0, 1, 1.0])), GroundTruth("f", np.array([0, 0, 1, 0.5]))]
    detections = [Detection("f", np.array([0, 0, 1, 1.0]), 0.9), Detection("f", np.array([0, 0, 1, 0.8]), 0.5)]
    # The first takes the identical box; the second (IoU .8 with it, .625 with the other) takes the free one.
    assert loc.frame_map(detections, truths, thresholds=(0.6, 0.7)) == {0.6: 1.0, 0.7: 0.5}


def test_map_averages_classes_with_ground_truth():
    box = np.array([0, 0, 1, 1.0])
    truths = [GroundTruth("f1", box, label=0), GroundTruth("f2", box, label=1)]
    detections = [Detection("f1", box, 0.9, label=0), Detection("f2", box, 0.8, label=2)]  # wrong class on f2
    assert loc.frame_map(detections, truths, thresholds=(0.5,)) == {0.5: pytest.approx(0.5)}  # AP 1 and 0
    assert loc.frame_map(detections, truths, thresholds=(0.5,), class_agnostic=True) == {0.5: 1.0}


def test_segments_from_weights_hand_made():
    importance = np.array([0.0, 0.1, 1.0, 0.9, 0.2, 0.0, 0.8, 0.1])
    segments = loc.segments_from_weights(importance, num_frames=80, fps=10.0)
    # Frame i stands for seconds [i, i+1): runs 2-3 and 6.
    assert segments == [pytest.approx((2.0, 4.0, 0.95)), pytest.approx((6.0, 7.0, 0.8))]
    # Normalisation to [0, 1] first: the same sequence scaled and shifted gives the same segments.
    shifted = loc.segments_from_weights(3 * importance + 2, num_frames=80, fps=10.0)
    np.testing.assert_allclose(shifted, segments)
    # A constant sequence selects the whole clip.
    assert loc.segments_from_weights(np.full(5, 0.2), num_frames=50, fps=25.0) == [pytest.approx((0.0, 2.0, 1.0))]
    weights = np.array([[0.2, 0.8], [0.4, 0.6]])
    np.testing.assert_allclose(loc.frame_importance(weights), [0.3, 0.7])


def test_temporal_iou_and_segment_map():
    np.testing.assert_allclose(loc.temporal_iou([0, 10], [[5, 15], [0, 10], [20, 30]]), [1 / 3, 1.0, 0.0])
    truths = [GroundTruth("v1", np.array([2.0, 6.0]), 3), GroundTruth("v2", np.array([0.0, 4.0]), 3)]
    detections = [
        Detection("v1", np.array([2.0, 5.0]), 0.9, 3),  # tIoU 0.75
        Detection("v2", np.array([3.0, 10.0]), 0.8, 3),  # tIoU 0.1
    ]
    result = loc.segment_map(detections, truths, thresholds=(0.1, 0.5, 0.8))
    assert result == {0.1: 1.0, 0.5: pytest.approx(0.5), 0.8: 0.0}
    np.testing.assert_allclose(loc.whole_clip_segment(250, 25.0), [0.0, 10.0])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="ground truth"):
        loc.frame_map([], [])
    with pytest.raises(ValueError, match="fps"):
        loc.segments_from_weights(np.ones(3), num_frames=3, fps=0)
    with pytest.raises(ValueError, match="mask"):
        loc.box_from_mask(np.zeros((2, 3, 4, 1)), (4, 4))
