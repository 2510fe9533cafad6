"""Values, lengths and horizons: what is refused, and how the message helps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bastion.errors import ConfigError
from bastion.timeseries import (
    SeriesInputError,
    SeriesLimits,
    check_horizon,
    check_length,
    is_constant,
    to_float_array,
)


def test_numbers_and_nulls_become_floats_with_nan_for_missing() -> None:
    out = to_float_array([1, 2.5, None, float("nan")])
    assert out[:2].tolist() == [1.0, 2.5]
    assert np.isnan(out[2]) and np.isnan(out[3])


@pytest.mark.parametrize(("bad", "position"), [("3", 1), (True, 1), ({"v": 1}, 1)])
def test_a_non_numeric_value_is_refused_naming_its_position(bad: object, position: int) -> None:
    with pytest.raises(SeriesInputError, match=rf"`values\[{position}\]` is .* not a number"):
        to_float_array([1, bad, 3])


@pytest.mark.parametrize("bad", [math.inf, -math.inf])
def test_an_infinite_value_is_refused_with_the_fix(bad: float) -> None:
    with pytest.raises(SeriesInputError, match=r"`values\[2\]` is .*inf.*Replace it with null"):
        to_float_array([1, 2, bad])


def test_a_string_instead_of_a_list_is_refused() -> None:
    with pytest.raises(SeriesInputError, match="must be a list of numbers"):
        to_float_array("1,2,3")  # type: ignore[arg-type]


def test_input_errors_are_config_errors_so_callers_know_to_fix_the_input() -> None:
    assert issubclass(SeriesInputError, ConfigError)


def test_too_short_a_series_names_the_minimum() -> None:
    with pytest.raises(SeriesInputError, match="has 3 usable points; at least 8 are needed"):
        check_length(3, SeriesLimits())


def test_too_long_a_series_names_the_limit() -> None:
    with pytest.raises(SeriesInputError, match="above the limit of 100"):
        check_length(101, SeriesLimits(max_points=100))


@pytest.mark.parametrize("horizon", [0, -1, True, 2.5])
def test_a_horizon_must_be_a_positive_integer(horizon: object) -> None:
    with pytest.raises(SeriesInputError, match="`horizon` must be a positive integer"):
        check_horizon(horizon, 50, SeriesLimits())  # type: ignore[arg-type]


def test_a_horizon_longer_than_the_history_is_refused_with_the_most_it_supports() -> None:
    with pytest.raises(SeriesInputError, match=r"longer than the 50-point history.*at most 50 steps"):
        check_horizon(51, 50, SeriesLimits())


def test_a_horizon_above_the_limit_is_refused() -> None:
    with pytest.raises(SeriesInputError, match="above the limit of 10 steps"):
        check_horizon(11, 500, SeriesLimits(max_horizon=10))


def test_constancy_ignores_missing_values() -> None:
    assert is_constant(np.array([2.0, np.nan, 2.0]))
    assert not is_constant(np.array([2.0, 2.0, 2.1]))
