"""Interval levels and conformal bounds."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.timeseries import SeriesInputError
from servers.forecast.intervals import conformal_bounds, validate_levels


def test_levels_default_to_80_and_95_and_are_sorted_and_deduplicated() -> None:
    assert validate_levels(None) == [80, 95]
    assert validate_levels([95, 80, 95.0]) == [80, 95]  # type: ignore[list-item]


@pytest.mark.parametrize("bad", [[0], [100], [-5], ["95"], [True], [80.5]])
def test_a_level_outside_0_100_or_fractional_is_refused(bad: list[object]) -> None:
    with pytest.raises(SeriesInputError, match="`levels` entry"):
        validate_levels(bad)  # type: ignore[arg-type]


def test_conformal_bounds_use_the_quantile_of_absolute_cv_errors() -> None:
    residuals = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]])
    lower, upper = conformal_bounds(np.zeros(3), residuals, np.arange(10.0), [50])
    assert np.allclose(upper[50], np.quantile([1, 2, 3, 4, 5, 6], 0.5))
    assert np.allclose(lower[50], -upper[50])


def test_without_cv_errors_bounds_widen_with_the_square_root_of_the_step() -> None:
    lower, upper = conformal_bounds(np.zeros(4), None, np.array([0.0, 1.0, 0.0, 1.0, 0.0]), [90])
    assert np.allclose(upper[90], np.sqrt([1, 2, 3, 4]))
    assert np.allclose(lower[90], -upper[90])
