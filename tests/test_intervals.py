"""analysis/intervals.py against values worked by hand (Student's t and Welch's t-test)."""

import math

import pytest

from analysis.intervals import mean_interval, welch_difference


def test_mean_interval_is_students_t_over_the_replicates():
    # mean 3, sd sqrt(2.5), t(0.975, 4 df) = 2.776445: half-width 2.776445 * 1.581139 / sqrt(5) = 1.963243
    interval = mean_interval([1, 2, 3, 4, 5])
    assert (interval.n, interval.mean) == (5, 3.0)
    assert interval.sd == pytest.approx(math.sqrt(2.5))
    assert (interval.low, interval.high) == pytest.approx((3 - 1.963243, 3 + 1.963243), abs=1e-5)


def test_one_replicate_has_no_interval_and_separates_from_nothing():
    one, many = mean_interval([0.99]), mean_interval([0.5, 0.51, 0.52])
    assert (one.n, one.mean, one.sd, one.low, one.high) == (1, 0.99, None, None, None)
    assert not one.separates_from(many) and not many.separates_from(one)


def test_missing_values_are_left_out_and_none_at_all_is_an_error():
    assert mean_interval([0.9, float("nan"), 0.92]).n == 2
    with pytest.raises(ValueError):
        mean_interval([float("nan")])


def test_intervals_separate_only_when_they_do_not_overlap():
    low, high, overlapping = mean_interval([0.90, 0.91, 0.92]), mean_interval([0.97, 0.98, 0.99]), \
        mean_interval([0.91, 0.95, 0.99])
    assert high.separates_from(low) and low.separates_from(high)
    assert not overlapping.separates_from(high) and not overlapping.separates_from(low)


def test_welch_difference_matches_the_hand_computation():
    # a = 1,2,3 (var 1), b = 4,5,6,7 (var 5/3): se = sqrt(1/3 + 5/12) = 0.866025, t = -4.041452,
    # Welch-Satterthwaite df = 0.5625 / (0.333333**2 / 2 + 0.416667**2 / 3) = 4.959184
    difference = welch_difference([1, 2, 3], [4, 5, 6, 7])
    assert difference.difference == pytest.approx(-3.5)
    half_width = (difference.high - difference.low) / 2
    assert half_width == pytest.approx(2.231711, abs=1e-5)  # t(0.975, 4.959184) * 0.866025
    assert difference.p_value == pytest.approx(0.010077, abs=1e-5)
    assert difference.larger_than_noise()


def test_a_difference_inside_the_noise_is_not_called_an_effect():
    difference = welch_difference([0.980, 0.985, 0.990], [0.9825, 0.9850, 0.9875])
    assert difference.difference == pytest.approx(0.0)
    assert not difference.larger_than_noise()
    assert difference.low < 0 < difference.high


def test_a_failed_replicate_without_an_accuracy_is_left_out_of_a_difference():
    assert welch_difference([0.9, float("nan"), 0.92], [0.8, 0.82]) == welch_difference([0.9, 0.92], [0.8, 0.82])
    with pytest.raises(ValueError):
        welch_difference([float("nan")], [0.8, 0.82])


def test_without_two_replicates_a_side_there_is_no_test():
    difference = welch_difference([0.99], [0.98, 0.97])
    assert difference.difference == pytest.approx(0.015)
    assert difference.p_value is None and not difference.larger_than_noise()


def test_replicates_without_spread_compare_by_their_means():
    assert welch_difference([0.9, 0.9], [0.9, 0.9]).p_value == 1.0
    assert welch_difference([0.95, 0.95], [0.9, 0.9]).larger_than_noise()


def test_float_error_is_neither_a_spread_nor_a_difference():
    gaps_a = [0.1, 0.3 - 0.2]  # 0.1 and 0.09999999999999998
    gaps_b = [0.1 + 0.2 - 0.2, 0.1]  # 0.10000000000000003 and 0.1
    assert mean_interval(gaps_a).sd == 0
    assert welch_difference(gaps_a, gaps_b).p_value == 1.0
