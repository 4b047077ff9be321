"""Descriptive contrasts and tables of `experiments.mechanism` against values computed by hand in the test."""

import numpy as np
import pytest

from experiments import mechanism, statistics, studies

A, B, A3, B3 = ("STPA", "Flow"), ("Uniform", "Flow"), ("STPA", "Flow (K = 3)"), ("Uniform", "Flow (K = 3)")


def _records(correct, labels):
    """seed -> [(video_id, label, predicted)] from a (seeds, videos) 0/1 array: wrong videos predict label + 1."""
    return {
        seed: [(f"v{j}", int(labels[j]), int(labels[j]) if ok else int(labels[j]) + 1) for j, ok in enumerate(row)]
        for seed, row in enumerate(correct)
    }


def test_difference_of_differences_is_the_paired_bootstrap_of_the_two_deficits():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=12)
    cells = {cell: rng.integers(0, 2, size=(4, 12)) for cell in (A, B, A3, B3)}
    per_video = {cell: _records(values, labels) for cell, values in cells.items()}
    contrast = studies.Contrast("dd", A3, B3, A, B)
    first, second, seeds, videos = mechanism.contrast_arrays(per_video, contrast)
    order = np.argsort([f"v{j}" for j in range(12)])  # paired_arrays sorts the video ids
    np.testing.assert_array_equal(first, (cells[A3] - cells[B3])[:, order])
    np.testing.assert_array_equal(second, (cells[A] - cells[B])[:, order])
    estimate = mechanism.contrast_estimate(per_video, contrast, resamples=200)
    expected = 100 * np.mean((cells[A3] - cells[B3]) - (cells[A] - cells[B]))
    assert estimate.mean == pytest.approx(expected)
    assert estimate == statistics.paired_bootstrap(first, second, resamples=200)
    simple = mechanism.contrast_estimate(per_video, studies.Contrast("d", A, B), resamples=200)
    assert simple.mean == pytest.approx(100 * np.mean(cells[A] - cells[B]))
    assert mechanism.contrast_estimate({A: per_video[A]}, studies.Contrast("d", A, B)) is None


def test_recall_table_names_the_class_that_carries_the_deficit():
    labels = np.array([0, 0, 1, 1, 2, 2])
    tsn = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 1, 1]])
    stpa = np.array([[1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1]])  # loses 1 video of class 0 and 3 of class 1
    study = studies.Study("s", "t", "p", ("TSN", "STPA"), ("Flow",), (), ())
    per_video = {("TSN", "Flow"): _records(tsn, labels), ("STPA", "Flow"): _records(stpa, labels)}
    assert mechanism.class_recall(per_video[("STPA", "Flow")]) == {0: (3, 4), 1: (0, 4), 2: (3, 4)}
    table = mechanism.recall_table(study, per_video, "Flow", "TSN", "STPA").splitlines()
    assert table[0] == "| Row | MoveRight | MoveLeft | MoveUp |"
    assert table[2] == "| TSN | 100.0 | 75.0 | 75.0 |" and table[3] == "| STPA | 75.0 | 0.0 | 75.0 |"
    assert table[-1] == (
        "STPA − TSN (Flow): 4 fewer correct videos over 2 seeds; the largest class share is MoveLeft's, 75 % of the "
        "deficit."
    )
