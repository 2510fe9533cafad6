"""Input checks shared by the forecast and anomaly servers.

Values arrive as JSON: numbers, nulls (missing), and sometimes strings or booleans by
mistake. `to_float_array` turns them into a float array where missing is NaN, and
refuses what cannot be a measurement (text, booleans, infinities) naming the first
offending position. Limits are explicit so a caller learns the bound, not a timeout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bastion.timeseries.errors import SeriesInputError

__all__ = [
    "SeriesLimits",
    "check_choice",
    "check_horizon",
    "check_length",
    "is_constant",
    "is_positive_int",
    "to_float_array",
    "unit_scale",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SeriesLimits:
    """Bounds on one series: fewer points cannot be modelled, more would not answer in time."""

    min_points: int = 8
    max_points: int = 100_000
    max_horizon: int = 10_000


def to_float_array(values: object, name: str = "values") -> FloatArray:
    """`values` as float64; None/NaN become NaN (missing); anything else non-numeric is refused."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise SeriesInputError(f"`{name}` must be a list of numbers, got {type(values).__name__}.")
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None:
            out[i] = math.nan
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SeriesInputError(
                f"`{name}[{i}]` is {v!r} ({type(v).__name__}), not a number. Send numbers only; "
                "use null for a missing value, and convert text columns before calling."
            )
        elif math.isinf(v):
            raise SeriesInputError(
                f"`{name}[{i}]` is {v!r}: infinite values cannot be modelled. Replace it with null "
                "(treated as missing and filled) or with a finite value."
            )
        else:
            out[i] = float(v)
    return out


def check_choice(argument: str, value: object, choices: Sequence[str]) -> str:
    """`value` when it is one of `choices`; else an error naming the argument and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise SeriesInputError(f"`{argument}` {value!r} is not one of: {', '.join(choices)}.")
    return value


def check_length(n: int, limits: SeriesLimits, name: str = "values") -> None:
    if n < limits.min_points:
        raise SeriesInputError(
            f"`{name}` has {n} usable points; at least {limits.min_points} are needed. Send a longer history."
        )
    if n > limits.max_points:
        raise SeriesInputError(
            f"`{name}` has {n} points, above the limit of {limits.max_points}. Aggregate to a coarser "
            "frequency or send only the most recent part of the series."
        )


def is_positive_int(value: object) -> bool:
    """True for 1, 2, ...; False for 0, negatives, floats and booleans (JSON true is not 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_horizon(horizon: object, n: int, limits: SeriesLimits) -> None:
    """A horizon must be positive and no longer than the history that supports it."""
    if not is_positive_int(horizon):
        raise SeriesInputError(f"`horizon` must be a positive integer, got {horizon!r}.")
    assert isinstance(horizon, int)
    if horizon > limits.max_horizon:
        raise SeriesInputError(
            f"`horizon` {horizon} is above the limit of {limits.max_horizon} steps. Forecast fewer steps "
            "or aggregate to a coarser frequency."
        )
    if horizon > n:
        raise SeriesInputError(
            f"`horizon` {horizon} is longer than the {n}-point history: the data cannot support it. "
            f"Ask for at most {n} steps, or send a longer history."
        )


def unit_scale(y: FloatArray) -> float:
    """The power of two just above max |y| (1 when y is all zero or empty): dividing by it
    brings y near 1, and dividing or multiplying back by a power of two is exact."""
    largest = float(np.max(np.abs(y))) if y.size else 0.0
    return math.ldexp(1.0, math.frexp(largest)[1]) if largest > 0.0 else 1.0


def is_constant(y: FloatArray) -> bool:
    finite = y[~np.isnan(y)]
    return finite.size > 0 and bool(np.all(finite == finite[0]))
