"""Intervals over seed replicates, and whether a difference is larger than seed-to-seed noise.

The report's claims rest on these two functions (issue 16):

- `mean_interval`: the mean of n replicates (one per seed) with a 95% confidence interval from
  Student's t with n - 1 degrees of freedom. With one replicate there is no interval (None), and
  the report says so rather than ranking on it.
- `welch_difference`: the difference of two means (a - b) with Welch's t-test, which does not
  assume the two configurations vary alike across seeds, and the confidence interval of the
  difference from the Welch-Satterthwaite degrees of freedom.

Both are scipy.stats; this module only names the results so that the report can print them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats

CONFIDENCE = 0.95
INTERVAL_METHOD = "95% confidence interval, Student's t over seeds"
DIFFERENCE_METHOD = "Welch's t-test (unequal variances), two-sided"


@dataclass(frozen=True)
class MeanInterval:
    n: int
    mean: float
    sd: float | None  # None with one replicate
    low: float | None
    high: float | None

    def separates_from(self, other: MeanInterval) -> bool:
        """True when the two intervals do not overlap (a stricter reading than a test)."""
        if None in (self.low, self.high, other.low, other.high):
            return False
        return self.low > other.high or other.low > self.high  # type: ignore[operator]


@dataclass(frozen=True)
class Difference:
    difference: float  # mean(a) - mean(b)
    low: float | None
    high: float | None
    p_value: float | None
    n_a: int
    n_b: int

    def larger_than_noise(self, alpha: float = 1 - CONFIDENCE) -> bool:
        """True when the test rejects "no difference" at the interval's level."""
        return self.p_value is not None and self.p_value < alpha


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> MeanInterval:
    values = _present(values)
    if not values:
        raise ValueError("no values to average")
    n, mean = len(values), sum(values) / len(values)
    if n == 1:
        return MeanInterval(1, mean, None, None, None)
    if max(values) == min(values):  # no spread (scipy would warn of precision loss): a zero-width interval
        return MeanInterval(n, mean, 0.0, mean, mean)
    sd = stats.tstd(values)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return MeanInterval(n, mean, float(sd), float(low), float(high))


def welch_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Difference:
    """a - b, tested; without two replicates on each side there is no test (p_value None)."""
    a, b = _present(a), _present(b)
    if not a or not b:
        raise ValueError("no values to compare")
    difference = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return Difference(difference, None, None, None, len(a), len(b))
    if max(a) == min(a) and max(b) == min(b):  # no spread on either side: no noise to test against
        p = 1.0 if difference == 0 else 0.0
        return Difference(difference, difference, difference, p, len(a), len(b))
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(confidence)
    return Difference(difference, float(low), float(high), float(result.pvalue), len(a), len(b))


def _present(values: Sequence[float]) -> list[float]:
    """The values without missing ones (a failed replicate has no accuracy), rounded to 12 decimals:
    accuracies and their differences (a train-validation gap) carry float error of about 1e-16,
    which must not read as a spread, nor as a difference between two spreadless sides."""
    return [round(float(v), 12) for v in values if not math.isnan(float(v))]
