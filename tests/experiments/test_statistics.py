"""Seed statistics of the studies against hand-computed values (t quantiles from the standard table)."""

import math

import pytest

from experiments import statistics


def test_t_quantiles_are_the_table_values():
    assert statistics.t_quantile_975(1) == 12.706
    assert statistics.t_quantile_975(2) == 4.303
    assert statistics.t_quantile_975(30) == 2.042
    assert statistics.t_quantile_975(60) == pytest.approx(2.000, abs=0.002)  # table: 2.000
    assert statistics.t_quantile_975(120) == pytest.approx(1.980, abs=0.002)  # table: 1.980
    with pytest.raises(ValueError, match="degrees of freedom"):
        statistics.t_quantile_975(0)


def test_summary_is_mean_and_sample_std_of_the_finished_seeds():
    summary = statistics.summarize([50.0, 54.0, 52.0])
    assert (summary.mean, summary.std, summary.n) == (52.0, 2.0, 3)  # deviations -2, 2, 0: sqrt(8 / 2) = 2
    assert statistics.summarize([50.0, None, math.nan]) == statistics.Summary(50.0, 0.0, 1)
    assert statistics.summarize([None]) is None


def test_paired_interval_within_noise():
    # Differences 2, 4, 1: mean 7/3, sd sqrt(((1/3)^2 + (5/3)^2 + (4/3)^2) / 2) = sqrt(7/3) = 1.527525,
    # half width 4.303 * 1.527525 / sqrt(3) = 4.303 * 0.881917 = 3.794889.
    result = statistics.paired_difference({0: 50.0, 1: 54.0, 2: 52.0}, {0: 48.0, 1: 50.0, 2: 51.0}, +1)
    assert result.mean == pytest.approx(7 / 3)
    assert result.low == pytest.approx(7 / 3 - 3.794889, abs=1e-5)
    assert result.high == pytest.approx(7 / 3 + 3.794889, abs=1e-5)
    assert (result.n, result.verdict) == (3, statistics.WITHIN_NOISE)


def test_paired_interval_as_the_paper_and_opposite():
    # Differences 3, 4, 5: mean 4, sd 1, half width 4.303 / sqrt(3) = 2.484338: [1.515662, 6.484338].
    row, reference = {0: 13.0, 1: 14.0, 2: 15.0}, {0: 10.0, 1: 10.0, 2: 10.0}
    higher = statistics.paired_difference(row, reference, +1)
    assert (higher.low, higher.high) == (pytest.approx(1.515662, abs=1e-6), pytest.approx(6.484338, abs=1e-6))
    assert higher.verdict == statistics.AS_PAPER
    assert statistics.paired_difference(row, reference, -1).verdict == statistics.OPPOSITE
    assert statistics.paired_difference(reference, row, +1).verdict == statistics.OPPOSITE
    assert statistics.paired_difference(reference, row, -1).verdict == statistics.AS_PAPER


def test_failed_seeds_leave_the_pair_and_one_seed_has_no_interval():
    # Seed 0 failed in the row: pairs 1, 2 with differences 3, 4: mean 3.5, sd sqrt(0.5), half 12.706 * 0.5.
    result = statistics.paired_difference({0: None, 1: 5.0, 2: 6.0}, {0: 1.0, 1: 2.0, 2: 2.0}, +1)
    assert result.n == 2 and result.mean == pytest.approx(3.5)
    assert (result.low, result.high) == (pytest.approx(3.5 - 6.353), pytest.approx(3.5 + 6.353))
    assert result.verdict == statistics.WITHIN_NOISE
    one = statistics.paired_difference({0: 60.0}, {0: 50.0}, +1)
    assert (one.mean, one.low, one.high, one.n, one.verdict) == (10.0, None, None, 1, statistics.ONE_SEED)
    none = statistics.paired_difference({0: None}, {0: 50.0}, +1)
    assert (none.n, none.verdict) == (0, statistics.NO_PAIRS)
    with pytest.raises(ValueError, match="expected_sign"):
        statistics.paired_difference({0: 1.0}, {0: 1.0}, 0)
