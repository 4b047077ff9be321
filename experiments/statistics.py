"""Statistics of the studies: seed summaries, paired differences, and the pre-registered decision rules.

Rows of a study are trained with the same seeds, so two rows are compared seed by seed (a paired difference, which
cancels what a seed does to both). Two levels of evidence:

* From values.csv alone (one number per row and seed): `paired_difference`, the mean difference with a 95 % t
  interval over the seeds and the verdicts "as the paper" / "opposite" / "within noise" (`VERDICT_RULES`). This
  ignores test-set sampling; it is what the old committed results support.
* From per-video correctness (`per_video.csv.gz`, one 0/1 per row, seed and test video): `paired_bootstrap`, the
  same mean difference with a hierarchical bootstrap over seeds *and* test videos (paired: both rows get the same
  video resample), then `decide` / `decide_family`: a two-sided difference test and an equivalence test (TOST with a
  margin), Holm-adjusted over the pre-registered family of primary claims, a four-class verdict (`DECISION_RULES`)
  and the minimum detectable effect.
* A stated sensitivity analysis of the same decisions (`VARIANCE_COMPONENTS_RULES`): `variance_components_se`, the
  standard error of d from a crossed seeds × videos random-effects model (two-way ANOVA, method of moments,
  Satterthwaite degrees of freedom), decided by the same `decide_family` (`decide_family_variance_components`).

NumPy, the standard library and Student's t distribution of `scipy.stats`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

AS_PAPER = "as the paper"
OPPOSITE = "opposite"
WITHIN_NOISE = "within noise"
ONE_SEED = "1 seed: no interval"
NO_PAIRS = "no paired seeds"
VERDICT_RULES = (
    f"Verdicts compare two rows seed by seed (the same training seed for both): d_s = row − reference for seed s, "
    f'mean d̄ ± t_{{0.975, n−1}} · sd(d)/√n (95 % t interval). "{AS_PAPER}": the interval excludes 0 on the side '
    f'the paper found; "{OPPOSITE}": it excludes 0 on the other side; "{WITHIN_NOISE}": it contains 0; '
    f'"{ONE_SEED}": a single seed gives no interval. Seeds where either run failed are left out of the pair.'
)


def t_quantile_975(df: int) -> float:
    """t_{0.975, df} to 3 decimals, the standard tables' value (12.706, 4.303, ...; `scipy.stats.t`, rounded)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return round(float(stats.t.ppf(0.975, df)), 3)


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof = 1; 0 for one value) of a row's values over its seeds."""

    mean: float
    std: float
    n: int


def summarize(values: Sequence[float]) -> Summary | None:
    """Summary of the finite values, or None when there are none."""
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if not len(finite):
        return None
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return Summary(float(np.mean(finite)), std, len(finite))


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A paired difference `row − reference` over the seeds both have, and its verdict."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    verdict: str


def paired_difference(
    row: Mapping[int, float | None], reference: Mapping[int, float | None], expected_sign: int
) -> Comparison:
    """Compares two rows seed by seed.

    Args:
      row: seed -> value (None or NaN: the run failed).
      reference: seed -> value of the row it is compared with.
      expected_sign: +1 when the paper found `row` > `reference`, -1 when it found `row` < `reference`.

    Returns:
      The mean difference, its 95 % t interval (None with one pair) and the verdict (`VERDICT_RULES`).
    """
    if expected_sign not in (1, -1):
        raise ValueError(f"expected_sign must be +1 or -1, got {expected_sign}")
    seeds = sorted(s for s in row if s in reference)
    pairs = [(row[s], reference[s]) for s in seeds]
    differences = np.asarray(
        [a - b for a, b in pairs if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)],
        np.float64,
    )
    n = len(differences)
    if n == 0:
        return Comparison(None, None, None, 0, NO_PAIRS)
    mean = float(np.mean(differences))
    if n == 1:
        return Comparison(mean, None, None, 1, ONE_SEED)
    half = t_quantile_975(n - 1) * float(np.std(differences, ddof=1)) / math.sqrt(n)
    low, high = mean - half, mean + half
    if low > 0 or high < 0:
        verdict = AS_PAPER if (low > 0) == (expected_sign > 0) else OPPOSITE
    else:
        verdict = WITHIN_NOISE
    return Comparison(mean, low, high, n, verdict)


# ------------------------------------------------------------------------------------ Student's t and the normal
def t_cdf(t: float, df: float | None) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom (df None or inf: the standard normal); scipy.stats."""
    if math.isnan(t):
        raise ValueError("t_cdf of NaN")
    if df is None or math.isinf(df):
        return float(stats.norm.cdf(t))
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    return float(stats.t.cdf(t, df))


def t_quantile(p: float, df: float | None) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (df None or inf: the standard normal); scipy.stats."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p}")
    if df is None or math.isinf(df):
        return float(stats.norm.ppf(p))
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    return float(stats.t.ppf(p, df))


# ------------------------------------------------------------------ the paired hierarchical bootstrap (per video)
@dataclasses.dataclass(frozen=True)
class PairedEstimate:
    """Row A − row B over seeds and test videos (`paired_bootstrap`). All values in points (percent).

    Attributes:
      mean: d = mean over seeds s of (acc_A,s − acc_B,s), acc = 100 · mean over the test videos.
      se: the bootstrap standard error of d (seeds and videos resampled; ddof = 1 over the resamples).
      low, high: the percentile interval of the bootstrap distribution of d at `level`.
      level: the interval's coverage, e.g. 0.95.
      n_seeds, n_videos: the paired seeds and the test videos.
      t_low, t_high: the analytic paired t interval over the seeds only (test set fixed), for reference; None with
        one seed.
      resamples, rng_seed: the bootstrap's size and its NumPy generator seed (a report re-derives bit for bit).
    """

    mean: float
    se: float
    low: float
    high: float
    level: float
    n_seeds: int
    n_videos: int
    t_low: float | None
    t_high: float | None
    resamples: int
    rng_seed: int

    @property
    def df(self) -> int:
        """Degrees of freedom of the decision tests: n_seeds − 1 (see `DECISION_RULES`)."""
        return self.n_seeds - 1


def resampled_differences(differences: np.ndarray, seed_draws: np.ndarray, video_draws: np.ndarray) -> np.ndarray:
    """d* of each bootstrap draw: the mean of `differences[seed_draws[r]][:, video_draws[r]]`.

    Args:
      differences: (n_seeds, n_videos) float64, per-video A − B (points).
      seed_draws: (R, n_seeds) int, the seeds drawn with replacement for each resample.
      video_draws: (R, n_videos) int, the videos drawn with replacement (the same for A and B: paired).

    Returns:
      (R,) float64 resampled mean differences.
    """
    n, m = differences.shape
    r = seed_draws.shape[0]
    offsets = np.arange(r)[:, None]
    seed_counts = np.bincount((seed_draws + n * offsets).ravel(), minlength=r * n).reshape(r, n)  # (R, n)
    video_counts = np.bincount((video_draws + m * offsets).ravel(), minlength=r * m).reshape(r, m)  # (R, m)
    return np.sum((seed_counts @ differences) * video_counts, axis=1) / (n * m)  # (R,)


def paired_bootstrap(
    a, b, *, level: float = 0.95, resamples: int = 10_000, rng_seed: int = 0, chunk: int = 1000
) -> PairedEstimate:
    """Compares two rows over seeds and test videos with a paired hierarchical bootstrap.

    Each resample draws n seeds with replacement and, independently, m test videos with replacement; the same draw
    applies to A and B (paired: a video that is hard for both cancels). d* is the mean of the drawn per-video
    differences over the drawn seeds, so the spread of d* combines seed variance with test-set sampling.

    Args:
      a: (n_seeds, n_videos) per-video correctness (0/1, or a per-video score in [0, 1]) of row A; row i is seed i,
        column j is video j.
      b: the same for row B, with the same seeds and videos in the same order (`paired_arrays` aligns them).
      level: coverage of the percentile interval.
      resamples: bootstrap resamples R.
      rng_seed: seed of `numpy.random.default_rng` (fixed: a report re-derives the same interval).
      chunk: resamples computed at a time (memory R · n_videos).

    Returns:
      The `PairedEstimate`.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"paired_bootstrap needs two (n_seeds, n_videos) arrays of the same shape, got {a.shape} "
            f"and {b.shape}; align them with paired_arrays."
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("paired_bootstrap: per-video values must be finite (leave failed runs out of the arrays).")
    if not 0.0 < level < 1.0 or resamples < 2:
        raise ValueError(f"paired_bootstrap needs 0 < level < 1 and resamples >= 2, got {level}, {resamples}")
    differences = 100.0 * (a - b)  # (n, m) points
    n, m = differences.shape
    rng = np.random.default_rng(rng_seed)
    parts = []
    for start in range(0, resamples, chunk):
        r = min(chunk, resamples - start)
        seed_draws = rng.integers(0, n, size=(r, n))
        video_draws = rng.integers(0, m, size=(r, m))
        parts.append(resampled_differences(differences, seed_draws, video_draws))
    draws = np.concatenate(parts)  # (R,)
    low, high = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    per_seed = differences.mean(axis=1)  # (n,) acc_A,s − acc_B,s
    t_low = t_high = None
    if n > 1:
        half = t_quantile((1.0 + level) / 2.0, n - 1) * float(np.std(per_seed, ddof=1)) / math.sqrt(n)
        t_low, t_high = float(per_seed.mean() - half), float(per_seed.mean() + half)
    return PairedEstimate(
        mean=float(per_seed.mean()),
        se=float(np.std(draws, ddof=1)),
        low=float(low),
        high=float(high),
        level=level,
        n_seeds=n,
        n_videos=m,
        t_low=t_low,
        t_high=t_high,
        resamples=resamples,
        rng_seed=rng_seed,
    )


def paired_arrays(
    a: Mapping[int, Mapping[str, float]], b: Mapping[int, Mapping[str, float]]
) -> tuple[np.ndarray, np.ndarray, list[int], list[str]]:
    """Aligns two rows' per-video values for `paired_bootstrap`.

    Args:
      a: seed -> {video_id: correctness} of row A (a seed whose run failed is absent).
      b: the same for row B.

    Returns:
      (A, B, seeds, video_ids): (n_seeds, n_videos) float64 arrays over the seeds both rows have (sorted) and the
      video ids (sorted).

    Raises:
      ValueError: when two runs were tested on different videos (they must share the test set).
    """
    seeds = sorted(set(a) & set(b))
    videos: set[str] | None = None
    for seed in seeds:
        for name, row in (("A", a), ("B", b)):
            ids = set(row[seed])
            if videos is None:
                videos = ids
            elif ids != videos:
                raise ValueError(
                    f"row {name} seed {seed} was tested on {len(ids)} videos that differ from the "
                    f"others' {len(videos)}; every run of a comparison needs the same test set."
                )
    ids = sorted(videos or ())
    stack = [
        np.asarray([[row[s][v] for v in ids] for s in seeds], np.float64).reshape(len(seeds), len(ids))
        for row in (a, b)
    ]
    return stack[0], stack[1], seeds, ids


# --------------------------------------------------------------------------- tests, Holm, verdicts, detectable effect
EQUIVALENT = "equivalent"
INCONCLUSIVE = "inconclusive"
DECISION_VERDICTS = (AS_PAPER, OPPOSITE, EQUIVALENT, INCONCLUSIVE)
DECISION_RULES = (
    "Each primary claim compares row A with row B on the same seeds and the same test videos: d = mean over seeds of "
    "(top-1 of A − top-1 of B), in points. Its standard error SE combines seed variance with test-set sampling: a "
    "paired hierarchical bootstrap resamples seeds and test videos with replacement (the same videos for A and B), "
    "fixed generator seed. Tests use t = d / SE against Student's t with n_seeds − 1 degrees of freedom (not the "
    "normal: the seed variance, the larger part of SE, is estimated from n_seeds values). Difference: two-sided p "
    "for d = 0. Equivalence (TOST): p = max of the one-sided p values for d <= −margin and d >= +margin. Both p "
    "values are Holm-adjusted over the family of primary claims, and the verdict reads the adjusted values at "
    f'alpha: "{AS_PAPER}" / "{OPPOSITE}" when the difference is significant on the paper\'s side / the other side '
    f"(this takes precedence: a significant difference that is also inside the margin keeps its direction and is "
    f'marked "inside the margin"); otherwise "{EQUIVALENT}" when TOST rejects (|d| < margin); otherwise '
    f'"{INCONCLUSIVE}". A claim with fewer than 2 seeds is "{INCONCLUSIVE}" (p = 1 in the family). The minimum '
    "detectable effect MDE = (t_{1 − alpha'/2, n−1} + t_{0.8, n−1}) · SE is the true difference the claim had 80 % "
    "power to find at alpha' = alpha / (number of primary claims), Holm's strictest step."
)


@dataclasses.dataclass(frozen=True)
class Decision:
    """A primary claim decided (`decide`, `decide_family`).

    Attributes:
      estimate: the paired estimate (None: no paired seed).
      expected_sign: +1 when the paper found A > B, −1 when A < B.
      margin: the equivalence margin (points).
      alpha: the family's level.
      p_difference: two-sided p value of d = 0 (1.0 when there is nothing to test).
      p_tost: TOST p value, the larger of the two one-sided p values.
      p_difference_adjusted, p_tost_adjusted: Holm-adjusted over the family (equal to the raw ones for one claim).
      mde: minimum detectable effect at 80 % power (points), None with fewer than 2 seeds.
      verdict: one of `DECISION_VERDICTS`.
      inside_margin: the verdict is a direction and TOST rejects too (a significant difference smaller than the
        margin).
      variance_components: the same claim decided with the variance-components SE and Satterthwaite df instead
        (`decide_family_variance_components` over the same family; its `estimate` is a `VarianceComponents`, None
        where there was no per-video top-1 to decompose); None where not computed. A sensitivity analysis: the
        registered verdict is `verdict`.
    """

    estimate: PairedEstimate | VarianceComponents | None
    expected_sign: int
    margin: float
    alpha: float
    p_difference: float
    p_tost: float
    p_difference_adjusted: float
    p_tost_adjusted: float
    mde: float | None
    verdict: str
    inside_margin: bool
    variance_components: Decision | None = None


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p values (monotone in the sorted order, capped at 1), in the input order.

    The i-th smallest of k p values becomes max over j <= i of min(1, (k − j + 1) · p_(j)); a claim is rejected at
    family level alpha when its adjusted p value is below alpha.
    """
    p = np.asarray(p_values, np.float64)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"holm needs a list of p values in [0, 1], got {list(p_values)}")
    k = len(p)
    adjusted = np.empty(k, np.float64)
    running = 0.0
    for rank, index in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (k - rank) * p[index]))
        adjusted[index] = running
    return [float(x) for x in adjusted]


def p_values(estimate: PairedEstimate | VarianceComponents, margin: float) -> tuple[float, float, float]:
    """(p_difference, p_lower, p_upper): two-sided p of d = 0 and the TOST one-sided p values.

    p_lower tests H0 d <= −margin (small when d is well above −margin), p_upper tests H0 d >= +margin; t with
    the estimate's `df` and `se`: n_seeds − 1 and the bootstrap SE for a `PairedEstimate` (the registered rule),
    the Satterthwaite df and the variance-components SE for a `VarianceComponents` (the sensitivity analysis).
    df < 1 gives p = 1 (nothing to test). SE = 0 (identical per-video values) decides exactly.
    """
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be > 0 points, got {margin}")
    d, se, df = estimate.mean, estimate.se, estimate.df
    if df < 1:
        return 1.0, 1.0, 1.0
    if se == 0.0:
        return (1.0 if d == 0 else 0.0), (0.0 if d > -margin else 1.0), (0.0 if d < margin else 1.0)
    p_difference = min(1.0, 2.0 * t_cdf(-abs(d) / se, df))
    p_lower = 1.0 - t_cdf((d + margin) / se, df)
    p_upper = t_cdf((d - margin) / se, df)
    return p_difference, p_lower, p_upper


def minimum_detectable_effect(se: float, df: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """(t_{1 − alpha/2, df} + t_{power, df}) · SE: the true |d| a two-sided test at `alpha` finds with `power`."""
    if df < 1:
        raise ValueError(f"the minimum detectable effect needs df >= 1 (two seeds), got {df}")
    return (t_quantile(1.0 - alpha / 2.0, df) + t_quantile(power, df)) * se


def verdict(d: float, expected_sign: int, p_difference: float, p_tost: float, alpha: float) -> str:
    """The four-class verdict from (adjusted) p values (`DECISION_RULES`)."""
    if p_difference < alpha:
        return AS_PAPER if (d > 0) == (expected_sign > 0) else OPPOSITE
    if p_tost < alpha:
        return EQUIVALENT
    return INCONCLUSIVE


def decide_family(
    estimates: Sequence[PairedEstimate | VarianceComponents | None],
    expected_signs: Sequence[int],
    margins: Sequence[float],
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> list[Decision]:
    """Decides a family of primary claims with Holm's correction (`DECISION_RULES`).

    Args:
      estimates: one `paired_bootstrap` result per claim (None: no paired seed; it stays in the family with p = 1).
        A `VarianceComponents` (`variance_components_se`) in its place tests with its SE and df instead: the
        sensitivity analysis goes through this same code (`decide_family_variance_components`).
      expected_signs: +1 / −1 per claim (the paper's direction of A − B).
      margins: the equivalence margin per claim (points).
      alpha: the family-wise level.
      power: the power of the minimum detectable effect.

    Returns:
      One `Decision` per claim, in order.
    """
    if not len(estimates) == len(expected_signs) == len(margins):
        raise ValueError(
            f"decide_family: {len(estimates)} estimates, {len(expected_signs)} signs and "
            f"{len(margins)} margins; give one of each per claim."
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    raw = []
    for estimate, sign, margin in zip(estimates, expected_signs, margins):
        if sign not in (1, -1):
            raise ValueError(f"expected_sign must be +1 or -1, got {sign}")
        if estimate is None:
            if margin <= 0:
                raise ValueError(f"the equivalence margin must be > 0 points, got {margin}")
            raw.append((1.0, 1.0))
        else:
            p_difference, p_lower, p_upper = p_values(estimate, margin)
            raw.append((p_difference, max(p_lower, p_upper)))
    adjusted_difference = holm([r[0] for r in raw])
    adjusted_tost = holm([r[1] for r in raw])
    k = len(estimates)
    decisions = []
    for i, (estimate, sign, margin) in enumerate(zip(estimates, expected_signs, margins)):
        mde = None
        if estimate is not None and estimate.df >= 1:
            mde = minimum_detectable_effect(estimate.se, estimate.df, alpha=alpha / k, power=power)
        d = 0.0 if estimate is None else estimate.mean
        label = verdict(d, sign, adjusted_difference[i], adjusted_tost[i], alpha)
        decisions.append(
            Decision(
                estimate=estimate,
                expected_sign=sign,
                margin=float(margin),
                alpha=alpha,
                p_difference=raw[i][0],
                p_tost=raw[i][1],
                p_difference_adjusted=adjusted_difference[i],
                p_tost_adjusted=adjusted_tost[i],
                mde=mde,
                verdict=label,
                inside_margin=label in (AS_PAPER, OPPOSITE) and adjusted_tost[i] < alpha,
            )
        )
    return decisions


def decide(
    estimate: PairedEstimate | None, *, expected_sign: int, margin: float, alpha: float = 0.05, power: float = 0.8
) -> Decision:
    """One claim decided on its own (a family of one: no Holm adjustment)."""
    return decide_family([estimate], [expected_sign], [margin], alpha=alpha, power=power)[0]


# ------------------------------------------------- sensitivity analysis: a variance-components standard error
VARIANCE_COMPONENTS_RULES = (
    "Sensitivity analysis (not the registered decision): the same claims decided with another standard error. The "
    "per-seed, per-video difference d_sv = 100 · (correct_A − correct_B) is modelled as mu + a_s + b_v + e_sv "
    "(crossed seed, video and residual random effects); a two-way ANOVA without replication gives MS_seed, MS_video "
    "and MS_resid, the components are estimated by the method of moments (sigma²_seed = (MS_seed − MS_resid) / "
    "n_videos, sigma²_video = (MS_video − MS_resid) / n_seeds, each truncated at 0; sigma²_resid = MS_resid), and "
    "SE(d) = √(sigma²_seed / n_seeds + sigma²_video / n_videos + sigma²_resid / (n_seeds · n_videos)) with "
    "Satterthwaite's degrees of freedom for that combination of mean squares. Difference test, TOST, Holm over the "
    "same family, verdict and MDE are the registered rules with this SE and df in place of the bootstrap SE and "
    "n_seeds − 1."
)


@dataclasses.dataclass(frozen=True)
class VarianceComponents:
    """d = mean of a crossed seeds × videos matrix of paired differences, and its variance-components SE.

    All values in points (the differences) or points² (the components). The fields `mean`, `se` and `df` are what
    `p_values` / `decide_family` read, as for a `PairedEstimate`.

    Attributes:
      mean: the grand mean of d_sv (equal to `PairedEstimate.mean` of the same arrays: no cell is missing).
      sigma2_seed: the seed component, max(0, (MS_seed − MS_resid) / n_videos).
      sigma2_video: the video component, max(0, (MS_video − MS_resid) / n_seeds).
      sigma2_resid: the residual (seed × video interaction) component, MS_resid.
      se: √(sigma2_seed / n_seeds + sigma2_video / n_videos + sigma2_resid / (n_seeds · n_videos)).
      df: Satterthwaite's degrees of freedom of se² (`variance_components_se`); a float.
      n_seeds, n_videos: the shape of the matrix.
    """

    mean: float
    sigma2_seed: float
    sigma2_video: float
    sigma2_resid: float
    se: float
    df: float
    n_seeds: int
    n_videos: int


def variance_components_se(diffs) -> VarianceComponents:
    """The standard error of the grand mean of a crossed seeds × videos design (two-way ANOVA, no replication).

    Model d_sv = mu + a_s + b_v + e_sv, with a_s ~ (0, sigma²_seed), b_v ~ (0, sigma²_video), e_sv ~ (0,
    sigma²_resid) independent. With S seeds, V videos, row means d_s., column means d_.v and grand mean d_..:

      MS_seed  = V · sum_s (d_s. − d_..)² / (S − 1)                       df_seed  = S − 1
      MS_video = S · sum_v (d_.v − d_..)² / (V − 1)                       df_video = V − 1
      MS_resid = sum_sv (d_sv − d_s. − d_.v + d_..)² / ((S − 1)(V − 1))   df_resid = (S − 1)(V − 1)

    Method of moments (E MS_seed = sigma²_resid + V sigma²_seed, E MS_video = sigma²_resid + S sigma²_video):
    sigma²_seed = max(0, (MS_seed − MS_resid) / V), sigma²_video = max(0, (MS_video − MS_resid) / S), sigma²_resid
    = MS_resid, and Var(d_..) = sigma²_seed / S + sigma²_video / V + sigma²_resid / (S V).

    Degrees of freedom (Satterthwaite): se² is a linear combination sum_k c_k MS_k of the three mean squares, with
    c_seed = [sigma²_seed > 0] / (S V), c_video = [sigma²_video > 0] / (S V) and c_resid = (1 − [sigma²_seed > 0] −
    [sigma²_video > 0]) / (S V) (with no truncation se² = (MS_seed + MS_video − MS_resid) / (S V); a truncated
    component drops its mean square and its −MS_resid), and

      df = (sum_k c_k MS_k)² / sum_k ((c_k MS_k)² / df_k).

    When se² = 0 (every d_sv equal) the ratio is 0 / 0 and df is taken as df_resid (the tests then decide exactly).

    Args:
      diffs: (S, V) per-seed, per-video paired differences in points, 100 · (correct_A − correct_B); no missing
        cell; S >= 2 and V >= 2.

    Returns:
      The `VarianceComponents`.

    Raises:
      ValueError: not a finite 2-D array with at least 2 seeds and 2 videos.
    """
    d = np.asarray(diffs, np.float64)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2:
        raise ValueError(
            f"variance_components_se needs an (n_seeds, n_videos) array with at least 2 seeds and 2 videos, got "
            f"shape {d.shape}."
        )
    if not np.all(np.isfinite(d)):
        raise ValueError("variance_components_se: every (seed, video) difference must be finite (no missing cell).")
    s, v = d.shape
    grand = float(d.mean())
    seed_means, video_means = d.mean(axis=1), d.mean(axis=0)  # (S,), (V,)
    df_seed, df_video, df_resid = s - 1, v - 1, (s - 1) * (v - 1)
    ms_seed = v * float(np.sum((seed_means - grand) ** 2)) / df_seed
    ms_video = s * float(np.sum((video_means - grand) ** 2)) / df_video
    residuals = d - seed_means[:, None] - video_means[None, :] + grand
    ms_resid = float(np.sum(residuals**2)) / df_resid
    sigma2_seed = max(0.0, (ms_seed - ms_resid) / v)
    sigma2_video = max(0.0, (ms_video - ms_resid) / s)
    sigma2_resid = ms_resid
    variance = sigma2_seed / s + sigma2_video / v + sigma2_resid / (s * v)
    keep_seed, keep_video = float(sigma2_seed > 0), float(sigma2_video > 0)
    terms = (  # (c_k MS_k, df_k)
        (keep_seed * ms_seed / (s * v), df_seed),
        (keep_video * ms_video / (s * v), df_video),
        ((1.0 - keep_seed - keep_video) * ms_resid / (s * v), df_resid),
    )
    denominator = sum(term**2 / df for term, df in terms)
    df = variance**2 / denominator if variance > 0 and denominator > 0 else float(df_resid)
    return VarianceComponents(
        mean=grand,
        sigma2_seed=sigma2_seed,
        sigma2_video=sigma2_video,
        sigma2_resid=sigma2_resid,
        se=math.sqrt(variance),
        df=float(df),
        n_seeds=s,
        n_videos=v,
    )


def decide_family_variance_components(
    components: Sequence[VarianceComponents | None],
    expected_signs: Sequence[int],
    margins: Sequence[float],
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> list[Decision]:
    """The family decided as `decide_family` does, with the variance-components SE and df (the sensitivity analysis).

    The same code path as the registered decisions (`decide_family`, `p_values`, `holm`, `verdict`,
    `minimum_detectable_effect`), so the verdict names, the Holm family and the precedence rules are identical;
    only se and df differ (`VARIANCE_COMPONENTS_RULES`).

    Args:
      components: one `variance_components_se` result per claim of the family (None: nothing to decompose; it
        stays in the family with p = 1, as a claim without paired seeds does in the registered decisions).
      expected_signs, margins, alpha, power: as in `decide_family`.

    Returns:
      One `Decision` per claim, its `estimate` the `VarianceComponents`.
    """
    return decide_family(components, expected_signs, margins, alpha=alpha, power=power)
