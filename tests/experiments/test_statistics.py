"""Study statistics against hand-computed float64 values: t table, paired intervals, the per-video bootstrap
(exact enumeration and closed form), TOST and the t distribution (against SciPy), Holm, the four verdicts, the MDE."""

import dataclasses
import itertools
import math

import numpy as np
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


def test_t_distribution_matches_scipy_and_the_normal():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 9, 29, 100.5):
        for t in (-30.0, -3.1, -0.5, 0.0, 0.2, 1.7, 4.0, 60.0):
            assert statistics.t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), abs=1e-13)
        for p in (0.001, 0.2, 0.8, 0.975, 0.9999):
            assert statistics.t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)
    assert statistics.t_quantile(0.975, 2) == pytest.approx(4.303, abs=5e-4)  # the table
    assert statistics.t_quantile(0.975, None) == pytest.approx(1.959964, abs=1e-6)
    assert statistics.t_cdf(1.0, None) == pytest.approx(0.5 * (1 + math.erf(1 / math.sqrt(2))), abs=1e-15)


# 3 seeds x 4 test videos, per-video correctness of rows A and B (seed = row of the array).
TOY_A = np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 1]], np.float64)
TOY_B = np.array([[0, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]], np.float64)


def _exact_bootstrap(a, b):
    """Every one of the 3^3 x 4^4 = 6912 equally likely (seed draw, video draw) pairs, brute force."""
    d = 100.0 * (a - b)
    n, m = d.shape
    return np.array(
        [
            d[np.ix_(s, v)].mean()
            for s in itertools.product(range(n), repeat=n)
            for v in itertools.product(range(m), repeat=m)
        ]
    )


def test_resampled_differences_equal_brute_force_and_the_closed_form_variance():
    d = 100.0 * (TOY_A - TOY_B)
    seeds = np.array(list(itertools.product(range(3), repeat=3)))  # (27, 3)
    videos = np.array(list(itertools.product(range(4), repeat=4)))  # (256, 4)
    seed_draws, video_draws = np.repeat(seeds, 256, axis=0), np.tile(videos, (27, 1))  # every pair: (6912, .)
    exact = _exact_bootstrap(TOY_A, TOY_B)
    np.testing.assert_allclose(statistics.resampled_differences(d, seed_draws, video_draws), exact, atol=1e-12)
    # Closed form: seed counts W ~ Mult(n, 1/n), video counts U ~ Mult(m, 1/m), independent; d* = W'DU / (nm),
    # E[WW'] = I + (1 - 1/n) J, E[UU'] = I + (1 - 1/m) J: Var = tr(D E[UU'] D' E[WW']) / (nm)^2 - mean(D)^2.
    n, m = d.shape
    eww, euu = np.eye(n) + (1 - 1 / n) * np.ones((n, n)), np.eye(m) + (1 - 1 / m) * np.ones((m, m))
    variance = np.trace(d @ euu @ d.T @ eww) / (n * m) ** 2 - d.mean() ** 2
    assert exact.mean() == pytest.approx(25.0, abs=1e-12)  # d = mean(50, 25, 0)
    assert exact.var() == pytest.approx(variance, rel=1e-12)
    assert math.sqrt(variance) == pytest.approx(22.948211, abs=1e-6)


def test_paired_bootstrap_estimate_interval_and_reproducibility():
    estimate = statistics.paired_bootstrap(TOY_A, TOY_B, resamples=20000, rng_seed=0)
    exact = _exact_bootstrap(TOY_A, TOY_B)
    assert estimate.mean == pytest.approx(25.0) and (estimate.n_seeds, estimate.n_videos, estimate.df) == (3, 4, 2)
    assert estimate.se == pytest.approx(exact.std(), rel=0.02)  # Monte Carlo error of the SE ~ 1 / sqrt(2R) = 0.5 %
    assert (estimate.low, estimate.high) == (-25.0, 75.0)  # the exact 2.5 / 97.5 % quantiles: atoms -25 and 75
    assert tuple(np.quantile(exact, [0.025, 0.975])) == (-25.0, 75.0)
    # Seed-only t interval: per-seed differences 50, 25, 0: sd 25, half 4.302653 * 25 / sqrt(3) = 62.103443.
    assert (estimate.t_low, estimate.t_high) == (
        pytest.approx(25 - 62.103443, abs=1e-5),
        pytest.approx(25 + 62.103443, abs=1e-5),
    )
    assert statistics.paired_bootstrap(TOY_A, TOY_B, resamples=20000, rng_seed=0) == estimate
    assert statistics.paired_bootstrap(TOY_A, TOY_B, resamples=20000, rng_seed=1).se != estimate.se
    with pytest.raises(ValueError, match="same shape"):
        statistics.paired_bootstrap(TOY_A, TOY_B[:, :3])


def test_the_video_resample_is_paired():
    # B is A with video 0 flipped in every seed: the per-video difference is 100 on video 0, 0 elsewhere, the same
    # for every seed. Seeds then add nothing; only the video draw moves d* (count of video 0 among 4 draws x 25).
    rng = np.random.default_rng(3)
    a = (rng.random((5, 4)) < 0.5).astype(np.float64)
    a[:, 0] = 1.0
    b = a.copy()
    b[:, 0] = 0.0
    estimate = statistics.paired_bootstrap(a, b, resamples=40000)
    assert estimate.mean == pytest.approx(25.0)
    assert estimate.se == pytest.approx(25.0 * math.sqrt(4 * 0.25 * 0.75), rel=0.02)  # 25 * sd of Binomial(4, 1/4)
    # Identical rows: d* = 0 in every resample (an unpaired video resample would spread it).
    same = statistics.paired_bootstrap(a, a, resamples=100)
    assert (same.mean, same.se, same.low, same.high) == (0.0, 0.0, 0.0, 0.0)


def test_paired_arrays_align_seeds_and_videos():
    a = {0: {"v2": 1.0, "v1": 0.0}, 1: {"v1": 1.0, "v2": 1.0}, 2: {"v1": 0.0, "v2": 0.0}}
    b = {0: {"v1": 1.0, "v2": 0.0}, 2: {"v2": 1.0, "v1": 1.0}}  # seed 1 of B failed
    a_array, b_array, seeds, videos = statistics.paired_arrays(a, b)
    assert seeds == [0, 2] and videos == ["v1", "v2"]
    np.testing.assert_array_equal(a_array, [[0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(b_array, [[1.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="same test set"):
        statistics.paired_arrays(a, {0: {"v1": 1.0}})


def test_holm_textbook_example():
    assert statistics.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    assert statistics.holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1 and monotone
    assert statistics.holm([0.2]) == [0.2]
    with pytest.raises(ValueError, match="p values"):
        statistics.holm([0.1, 1.5])


def _estimate(mean, se, n_seeds=10):
    return statistics.PairedEstimate(
        mean=mean,
        se=se,
        low=mean - 2 * se,
        high=mean + 2 * se,
        level=0.95,
        n_seeds=n_seeds,
        n_videos=300,
        t_low=None,
        t_high=None,
        resamples=10000,
        rng_seed=0,
    )


def test_tost_p_values_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    # d = 0.5, SE = 1, margin 4, t with 9 df: p_lower = P(T > 4.5), p_upper = P(T < -3.5), difference 2 P(T < -0.5).
    p_difference, p_lower, p_upper = statistics.p_values(_estimate(0.5, 1.0), 4.0)
    assert p_lower == pytest.approx(stats.t.sf(4.5, 9), rel=1e-10)  # 0.000744
    assert p_upper == pytest.approx(stats.t.cdf(-3.5, 9), rel=1e-10)  # 0.003362
    assert p_difference == pytest.approx(2 * stats.t.cdf(-0.5, 9), rel=1e-10)  # 0.629071
    assert statistics.decide(_estimate(0.5, 1.0), expected_sign=1, margin=4.0).p_tost == p_upper
    with pytest.raises(ValueError, match="margin"):
        statistics.p_values(_estimate(0.5, 1.0), 0.0)


def test_each_of_the_four_verdicts():
    decide = statistics.decide
    as_paper = decide(_estimate(5.0, 1.0), expected_sign=+1, margin=4.0)  # p = 2 P(T9 > 5) = 0.000739
    assert as_paper.verdict == statistics.AS_PAPER and not as_paper.inside_margin
    assert as_paper.p_difference == pytest.approx(0.0007389680, rel=1e-6)
    assert decide(_estimate(5.0, 1.0), expected_sign=-1, margin=4.0).verdict == statistics.OPPOSITE
    assert decide(_estimate(-5.0, 1.0), expected_sign=+1, margin=4.0).verdict == statistics.OPPOSITE
    assert decide(_estimate(0.5, 1.0), expected_sign=+1, margin=4.0).verdict == statistics.EQUIVALENT
    inconclusive = decide(_estimate(2.0, 3.0), expected_sign=+1, margin=4.0)  # |t| = 0.67; TOST p = P(T9 < -0.67)
    assert inconclusive.verdict == statistics.INCONCLUSIVE
    # Significant and inside the margin: the direction wins, marked.
    small = decide(_estimate(2.0, 0.5), expected_sign=+1, margin=4.0)
    assert small.verdict == statistics.AS_PAPER and small.inside_margin
    # One seed or no pair: nothing to test.
    one = decide(_estimate(9.0, 1.0, n_seeds=1), expected_sign=+1, margin=4.0)
    assert (one.verdict, one.p_difference, one.mde) == (statistics.INCONCLUSIVE, 1.0, None)
    assert decide(None, expected_sign=+1, margin=4.0).verdict == statistics.INCONCLUSIVE
    # From per-video arrays: 10 seeds x 300 videos where A gets 30 more videos right than B in every seed.
    rng = np.random.default_rng(0)
    b = (rng.random((10, 300)) < 0.5).astype(np.float64)
    a = b.copy()
    a[:, :30] = 1.0
    b[:, :30] = 0.0
    assert decide(statistics.paired_bootstrap(a, b), expected_sign=+1, margin=4.0).verdict == statistics.AS_PAPER


def test_holm_family_recomputes_the_verdicts_and_the_mde():
    stats = pytest.importorskip("scipy.stats")
    # Alone, d = 2.5 / SE 1 is significant (p = 2 P(T9 > 2.5) = 0.0339); among 4 claims Holm multiplies it.
    estimates = [_estimate(2.5, 1.0), _estimate(6.0, 1.0), _estimate(0.0, 1.0), None]
    alone = statistics.decide(estimates[0], expected_sign=+1, margin=4.0)
    assert alone.verdict == statistics.AS_PAPER and alone.p_difference == pytest.approx(2 * stats.t.sf(2.5, 9))
    family = statistics.decide_family(estimates, [+1, +1, -1, +1], [4.0, 4.0, 4.0, 4.0], alpha=0.05)
    raw = [2 * stats.t.sf(2.5, 9), 2 * stats.t.sf(6.0, 9), 1.0, 1.0]
    expected = statistics.holm(raw)
    assert [f.p_difference_adjusted for f in family] == pytest.approx(expected)
    assert family[0].p_difference_adjusted == pytest.approx(3 * raw[0])  # rank 2 of 4: x 3 = 0.1017
    assert [f.verdict for f in family] == [
        statistics.INCONCLUSIVE,
        statistics.AS_PAPER,
        statistics.EQUIVALENT,
        statistics.INCONCLUSIVE,
    ]
    tost = [max(stats.t.sf((d + 4) / 1, 9), stats.t.cdf((d - 4) / 1, 9)) for d in (2.5, 6.0, 0.0)] + [1.0]
    assert [f.p_tost_adjusted for f in family] == pytest.approx(statistics.holm(tost))
    # MDE at alpha / 4 (Holm's strictest step), 80 % power, t with 9 df: (3.110935 + 0.883404) * SE.
    assert family[0].mde == pytest.approx(3.110935 + 0.883404, abs=1e-5)
    assert statistics.minimum_detectable_effect(2.0, 9) == pytest.approx(2.0 * (2.262157 + 0.883404), abs=1e-5)
    assert family[3].mde is None


# ------------------------------------------------------------- sensitivity analysis: variance-components SE
def _anova_by_sums_of_squares(d):
    """An independent float64 computation: SS_resid from the total minus the two main effects' sums of squares."""
    d = np.asarray(d, np.float64)
    s, v = d.shape
    total = float(np.sum((d - d.mean()) ** 2))
    ss_seed = sum(v * (float(np.mean(row)) - d.mean()) ** 2 for row in d)
    ss_video = sum(s * (float(np.mean(column)) - d.mean()) ** 2 for column in d.T)
    ms_seed, ms_video = ss_seed / (s - 1), ss_video / (v - 1)
    ms_resid = (total - ss_seed - ss_video) / ((s - 1) * (v - 1))
    return ms_seed, ms_video, ms_resid


def test_variance_components_se_by_hand():
    # 3 seeds x 4 videos. Grand mean 32/12 = 8/3; seed means 3, 1, 4; video means 3, 0, 2, 17/3.
    # SS_seed = 4 ((1/3)^2 + (5/3)^2 + (4/3)^2) = 56/3, MS_seed = 28/3; SS_video = 3 ((1/3)^2 + (8/3)^2 + (2/3)^2
    # + 3^2) = 50, MS_video = 50/3; SS_total = 158 - 12 (8/3)^2 = 218/3, SS_resid = 218/3 - 56/3 - 50 = 4,
    # MS_resid = 4/6 = 2/3. Components: (28/3 - 2/3)/4 = 13/6, (50/3 - 2/3)/3 = 16/3, 2/3.
    # SE^2 = 13/18 + 16/12 + 2/36 = 19/9 (= (MS_seed + MS_video - MS_resid) / 12).
    # Satterthwaite: (19/9)^2 / ((28/36)^2 / 2 + (50/36)^2 / 3 + (2/36)^2 / 6) = 2888/613 = 4.711256.
    d = np.array([[3, 1, 2, 6], [1, -1, 0, 4], [5, 0, 4, 7]], np.float64)
    result = statistics.variance_components_se(d)
    assert (result.n_seeds, result.n_videos) == (3, 4)
    assert result.mean == pytest.approx(8 / 3, abs=1e-12)
    assert result.sigma2_seed == pytest.approx(13 / 6, abs=1e-12)
    assert result.sigma2_video == pytest.approx(16 / 3, abs=1e-12)
    assert result.sigma2_resid == pytest.approx(2 / 3, abs=1e-12)
    assert result.se == pytest.approx(math.sqrt(19 / 9), abs=1e-12)  # 1.452966
    assert result.df == pytest.approx(2888 / 613, abs=1e-12)
    ms_seed, ms_video, ms_resid = _anova_by_sums_of_squares(d)
    assert (ms_seed, ms_video, ms_resid) == pytest.approx((28 / 3, 50 / 3, 2 / 3), abs=1e-12)
    assert result.se**2 == pytest.approx((ms_seed + ms_video - ms_resid) / 12, abs=1e-12)
    terms = np.array([ms_seed, ms_video, -ms_resid]) / 12
    assert result.df == pytest.approx(np.sum(terms) ** 2 / np.sum(terms**2 / np.array([2, 3, 6])), abs=1e-12)


def test_variance_components_truncate_a_negative_component_at_zero():
    # Every seed has mean 6: MS_seed = 0 < MS_resid, so sigma^2_seed = max(0, (0 - MS_resid) / 4) = 0.
    # Video means 0, 4, 8, 12: SS_video = 3 (36 + 4 + 4 + 36) = 240, MS_video = 80. Residuals d_sv - d_.v (seed
    # effects 0): [0, 0, 2, 0], [1, 1, -2, 0], [-1, -1, 0, 0]: SS_resid = 12, MS_resid = 2.
    # sigma^2_video = (80 - 2)/3 = 26; SE^2 = 26/4 + 2/12 = 20/3 = MS_video / 12 (the seed term and its -MS_resid
    # drop), so Satterthwaite's df is df_video = 3 exactly.
    d = np.array([[0, 4, 8, 12], [1, 5, 6, 12], [-1, 3, 10, 12]], np.float64)
    result = statistics.variance_components_se(d)
    assert _anova_by_sums_of_squares(d) == pytest.approx((0.0, 80.0, 2.0), abs=1e-12)
    assert (result.sigma2_seed, result.sigma2_video, result.sigma2_resid) == (
        0.0,
        pytest.approx(26.0, abs=1e-12),
        pytest.approx(2.0, abs=1e-12),
    )
    assert result.mean == pytest.approx(6.0) and result.se == pytest.approx(math.sqrt(20 / 3), abs=1e-12)
    assert result.df == pytest.approx(3.0, abs=1e-12)
    # Both components truncated (pure noise around a seed- and video-free mean): SE^2 = MS_resid / 12, df = 6.
    noise = np.array([[1, -1, 1, -1], [-1, 1, -1, 1], [0, 0, 0, 0]], np.float64)  # row and column means all 0
    both = statistics.variance_components_se(noise + 5.0)
    assert (both.sigma2_seed, both.sigma2_video) == (0.0, 0.0) and both.sigma2_resid == pytest.approx(8 / 6)
    assert both.se == pytest.approx(math.sqrt(8 / 6 / 12)) and both.df == pytest.approx(6.0)
    # Identical differences: SE 0, df taken as df_resid.
    flat = statistics.variance_components_se(np.full((3, 4), 100.0))
    assert (flat.mean, flat.se, flat.df) == (100.0, 0.0, 6.0)
    with pytest.raises(ValueError, match="at least 2 seeds and 2 videos"):
        statistics.variance_components_se(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="finite"):
        statistics.variance_components_se(np.array([[0.0, math.nan], [0.0, 1.0]]))


def test_variance_components_have_the_bootstrap_mean_of_per_video_correctness():
    result = statistics.variance_components_se(100.0 * (TOY_A - TOY_B))
    assert result.mean == pytest.approx(statistics.paired_bootstrap(TOY_A, TOY_B, resamples=100).mean)
    assert result.mean == pytest.approx(25.0)


def _components(mean, se, df=9.0):
    return statistics.VarianceComponents(mean, 1.0, 1.0, 1.0, se, df, 10, 300)


def test_variance_components_decide_through_the_registered_rules():
    stats = pytest.importorskip("scipy.stats")
    components = [_components(2.5, 1.0, df=15.5), _components(6.0, 1.0), _components(0.0, 1.0), None]
    family = statistics.decide_family_variance_components(components, [+1, +1, -1, +1], [4.0] * 4, alpha=0.05)
    raw = [2 * stats.t.sf(2.5, 15.5), 2 * stats.t.sf(6.0, 9), 1.0, 1.0]  # t with the Satterthwaite df
    assert [f.p_difference for f in family] == pytest.approx(raw, rel=1e-9)
    assert [f.p_difference_adjusted for f in family] == pytest.approx(statistics.holm(raw), rel=1e-9)
    assert [f.verdict for f in family] == [
        statistics.INCONCLUSIVE,  # Holm: rank 2 of 4, 3 x 0.0241 = 0.072
        statistics.AS_PAPER,
        statistics.EQUIVALENT,
        statistics.INCONCLUSIVE,
    ]
    assert family[1].mde == pytest.approx(
        stats.t.ppf(1 - 0.05 / 8, 9) + stats.t.ppf(0.8, 9), rel=1e-6
    )  # alpha / 4 two-sided
    assert family == statistics.decide_family(components, [+1, +1, -1, +1], [4.0] * 4)  # the same code path
    # The registered verdicts themselves are unchanged (no variance_components unless a report attaches them).
    assert statistics.decide(_estimate(5.0, 1.0), expected_sign=+1, margin=4.0).variance_components is None


def test_a_verdict_that_flips_with_the_variance_components_se_is_marked():
    from experiments import preregistration, report

    claims = [
        preregistration.PrimaryClaim("flips", "s", "A", "B", "top-1", +1, 3.0),
        preregistration.PrimaryClaim("stays", "s", "A", "C", "top-1", +1, 3.0),
        preregistration.PrimaryClaim("map", "s", "A", "D", "mAP", +1, 3.0),
    ]
    # Bootstrap: d = 4, SE 2, 9 df: p = 2 P(T9 > 2) = 0.077, Holm x 2 (rank 2 of 3, after "stays") = 0.15:
    # inconclusive. Variance components: SE 1: p = 2 P(T9 > 4) = 0.0031, Holm x 2 = 0.0062: as the paper. "map"
    # has no per-video top-1 (no estimate either way: p = 1 in both families).
    registered = statistics.decide_family(
        [_estimate(4.0, 2.0), _estimate(10.0, 1.0), None], [+1, +1, +1], [3.0, 3.0, 3.0]
    )
    sensitivity = statistics.decide_family_variance_components(
        [_components(4.0, 1.0), _components(10.0, 1.0), None], [+1, +1, +1], [3.0, 3.0, 3.0]
    )
    assert [d.verdict for d in registered] == [statistics.INCONCLUSIVE, statistics.AS_PAPER, statistics.INCONCLUSIVE]
    assert [d.verdict for d in sensitivity[:2]] == [statistics.AS_PAPER, statistics.AS_PAPER]
    decisions = [
        (claims[0], dataclasses.replace(registered[0], variance_components=sensitivity[0])),
        (claims[1], dataclasses.replace(registered[1], variance_components=sensitivity[1])),
        (claims[2], dataclasses.replace(registered[2], variance_components=sensitivity[2])),  # nothing decomposed
    ]
    table = report.primary_table(decisions).splitlines()
    assert table[0].endswith("| Verdict | SE (var. comp.) | Verdict (var. comp.) |")
    assert table[2].startswith("| flips |") and table[2].endswith(
        f"| inconclusive | 1.0 | as the paper {report.DIFFERS} |"
    )
    assert table[3].startswith("| stays |") and table[3].endswith("| as the paper | 1.0 | as the paper |")
    assert table[4].startswith("| map |") and table[4].endswith("| inconclusive | — | — |")
    assert table[5:] == ["", report.SENSITIVITY_NOTE]
    assert report.DIFFERS in report.SENSITIVITY_NOTE
