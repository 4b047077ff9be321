"""Seed statistics of the studies: mean ± std per row, paired differences with a 95 % t interval, verdicts.

Rows of a study are trained with the same seeds, so two rows are compared seed by seed (a paired difference, which
cancels what a seed does to both). Pure NumPy; the t quantiles are tabulated (no SciPy dependency).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

# Two-sided 95 % quantiles of Student's t, t_{0.975, df}, df = 1 ... 30 (standard tables, 3 decimals).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

AS_PAPER = "as the paper"
OPPOSITE = "opposite"
WITHIN_NOISE = "within noise"
ONE_SEED = "1 seed: no interval"
NO_PAIRS = "no paired seeds"
VERDICT_RULES = (
    f"Verdicts compare two rows seed by seed (the same training seed for both): d_s = row − reference for seed s, "
    f"mean d̄ ± t_{{0.975, n−1}} · sd(d)/√n (95 % t interval). \"{AS_PAPER}\": the interval excludes 0 on the side "
    f"the paper found; \"{OPPOSITE}\": it excludes 0 on the other side; \"{WITHIN_NOISE}\": it contains 0; "
    f"\"{ONE_SEED}\": a single seed gives no interval. Seeds where either run failed are left out of the pair."
)


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: tabulated up to 30 degrees of freedom, then 1.96 + 2.4/df (within 0.002 of the exact value)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    return 1.96 + 2.4 / df


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


def paired_difference(row: Mapping[int, float | None], reference: Mapping[int, float | None],
                      expected_sign: int) -> Comparison:
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
    differences = np.asarray([a - b for a, b in pairs if a is not None and b is not None and math.isfinite(a)
                              and math.isfinite(b)], np.float64)
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
