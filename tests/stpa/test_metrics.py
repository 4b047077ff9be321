"""Metrics against hand-computed values and independent NumPy loops (stpa.engine.metrics)."""

import numpy as np
import pytest

from stpa.engine import metrics


def test_top_k_on_hand_made_scores():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    labels = np.array([1, 1, 2, 2])
    # top-1 predictions 1, 0, 2, 0 -> hits on videos 0 and 2.
    assert metrics.top_k_accuracy(scores, labels, 1) == 0.5
    # top-2 of video 1 = {0, 1} (hit), of video 3 = {0, 2} (hit).
    assert metrics.top_k_accuracy(scores, labels, 2) == 1.0
    assert metrics.top_k_accuracy(scores, labels, 5) == 1.0  # k > C is clipped.


def test_ties_rank_lower_class_first():
    scores = np.array([[1.0, 1.0, 0.0]])
    assert metrics.top_k_accuracy(scores, np.array([0]), 1) == 1.0
    assert metrics.top_k_accuracy(scores, np.array([1]), 1) == 0.0


def test_top_k_random_against_loop():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 7))
    labels = rng.integers(0, 7, 50)
    for k in (1, 3, 5):
        expected = np.mean([labels[i] in np.argsort(-scores[i])[:k] for i in range(50)])
        assert metrics.top_k_accuracy(scores, labels, k) == pytest.approx(expected)


def test_mean_class_accuracy_differs_from_top1_on_imbalanced_data():
    # class 0: 3 videos, all right; class 1: 1 video, wrong. top-1 = 3/4, mean class accuracy = (1 + 0) / 2.
    scores = np.array([[2.0, 0.0]] * 4)
    labels = np.array([0, 0, 0, 1])
    assert metrics.top_k_accuracy(scores, labels, 1) == 0.75
    assert metrics.mean_class_accuracy(scores, labels) == 0.5


def test_mean_class_accuracy_skips_absent_classes():
    scores = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    labels = np.array([1, 1])  # class 0 and 2 never occur; class 1: one of two right.
    assert metrics.mean_class_accuracy(scores, labels) == 0.5


def test_confusion_matrix_counts():
    matrix = metrics.confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])


def test_average_precision_hand_computed():
    # ranking by confidence: v0 (pos), v1 (neg), v2 (pos), v3 (neg) -> precisions at positives 1/1 and 2/3.
    ap = metrics.average_precision(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0]))
    assert ap == pytest.approx((1.0 + 2.0 / 3.0) / 2.0)
    assert np.isnan(metrics.average_precision(np.array([0.3, 0.2]), np.array([0, 0])))


def _charades_reference(scores, targets):
    """Independent loop version of THUMOSeventclspr.m + Charades_v1_classify.m (float64)."""
    aps, weights = [], []
    for c in range(scores.shape[1]):
        conf, labels = scores[:, c], targets[:, c]
        npos = int(np.sum(labels == 1))
        if npos == 0:
            continue
        order = sorted(range(len(conf)), key=lambda i: (-conf[i], i))
        tp = fp = 0
        ap = 0.0
        for i in order:
            if labels[i] == 1:
                tp += 1
                ap += tp / (tp + fp)
            else:
                fp += 1
        aps.append(ap / npos)
        weights.append(npos)
    aps, weights = np.array(aps), np.array(weights, float)
    return aps.mean(), (aps * weights).sum() / weights.sum()


def test_charades_map_and_wap_against_numpy_loops():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(40, 6))
    targets = (rng.random((40, 6)) < 0.25).astype(np.float32)
    targets[:, 5] = 0  # a class without positives is left out.
    targets[:3, 4] = 1
    scores[:, 2] = np.round(scores[:, 2])  # ties
    expected_map, expected_wap = _charades_reference(scores, targets)
    result = metrics.charades_map(scores, targets)
    assert result["mAP"] == pytest.approx(expected_map, rel=1e-12)
    assert result["wAP"] == pytest.approx(expected_wap, rel=1e-12)
    assert np.isnan(result["per_class_ap"][5])
    # wAP differs from mAP when classes have different numbers of positives.
    assert result["wAP"] != pytest.approx(result["mAP"])


def test_perfect_multilabel_ranking_gives_one():
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
    result = metrics.charades_map(targets * 2.0 - 1.0, targets)
    assert result["mAP"] == 1.0 and result["wAP"] == 1.0


def test_classification_report_keys_and_bad_shapes():
    report = metrics.classification_report(np.eye(3), np.arange(3))
    assert report == {"top1": 1.0, "top5": 1.0, "mean_class_accuracy": 1.0, "num_videos": 3}
    with pytest.raises(ValueError, match="labels must be"):
        metrics.top_k_accuracy(np.eye(3), np.arange(2))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        metrics.top_k_accuracy(np.ones(3), np.arange(3))
