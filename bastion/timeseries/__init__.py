"""Time-series input handling shared by the forecast and anomaly servers.

errors          SeriesInputError (a ConfigError), require_extra
validation      values to floats, length and horizon limits, constancy
timestamps      ISO 8601 / epoch parsing and formatting
frequency       frequency inference and calendar season lengths
regular         sorting, de-duplication, gap and missing-value filling, with warnings
seasonality     autocorrelation, the M4 seasonality test, season detection, decomposition
prepared        prepare_series: all of the above in order, as a PreparedSeries
precision       the decimals values computed from a series are reported with

Importing this package imports numpy and pandas: servers import it inside tool calls.
"""

from __future__ import annotations

from bastion.timeseries.errors import SeriesInputError, require_extra
from bastion.timeseries.frequency import infer_frequency, normalize_frequency, season_lengths_for
from bastion.timeseries.precision import output_decimals
from bastion.timeseries.prepared import PreparedSeries, prepare_series
from bastion.timeseries.regular import (
    RegularSeries,
    fill_missing,
    merge_duplicates,
    regularize,
    sort_by_time,
)
from bastion.timeseries.seasonality import (
    acf,
    classical_decomposition,
    detect_season_length,
    seasonal_indices,
    seasonality_test,
)
from bastion.timeseries.timestamps import format_timestamps, parse_timestamps
from bastion.timeseries.validation import (
    SeriesLimits,
    check_choice,
    check_horizon,
    check_length,
    is_constant,
    to_float_array,
    unit_scale,
)

__all__ = [
    "PreparedSeries",
    "RegularSeries",
    "SeriesInputError",
    "SeriesLimits",
    "acf",
    "check_choice",
    "check_horizon",
    "check_length",
    "classical_decomposition",
    "detect_season_length",
    "fill_missing",
    "format_timestamps",
    "infer_frequency",
    "is_constant",
    "merge_duplicates",
    "normalize_frequency",
    "output_decimals",
    "parse_timestamps",
    "prepare_series",
    "regularize",
    "require_extra",
    "season_lengths_for",
    "seasonal_indices",
    "seasonality_test",
    "sort_by_time",
    "to_float_array",
    "unit_scale",
]
