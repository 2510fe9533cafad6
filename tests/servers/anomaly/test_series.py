"""score_series: the contract, sensitivity, repairs and bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bastion.timeseries import SeriesInputError
from servers.anomaly.series import SENSITIVITIES, score_series


def _spiky(n: int = 300) -> list[float]:
    y = 50 + np.random.default_rng(0).normal(size=n)
    y[250] += 15
    return [float(v) for v in y]


def test_the_result_follows_the_contract_and_finds_the_spike() -> None:
    result = score_series(_spiky())
    point = result["points"][250]
    assert set(point) == {"ds", "value", "score", "expected", "lower", "upper", "is_anomaly"}
    assert point["is_anomaly"] and point["ds"] == 250
    assert not (point["lower"] <= point["value"] <= point["upper"])
    top = max(result["anomalies"], key=lambda a: a["peak_score"])
    assert (top["start"], top["kind"]) == (250, "spike")
    # Noise alone may set a new record now and then (here once, at 3.3 sigma), rarely.
    assert sum(p["is_anomaly"] for p in result["points"]) <= 3


def test_expected_values_and_bands_are_given_to_a_hundred_thousandth_of_the_spread() -> None:
    # The spiky series spans about 20 (47 to 65): four decimals resolve 0.0002.
    points = [p for p in score_series(_spiky())["points"] if p["lower"] is not None]
    numbers = [p[k] for p in points for k in ("expected", "lower", "upper")]
    assert all(n == round(n, 4) for n in numbers)
    assert any(n != round(n, 3) for n in numbers)  # and no coarser


def test_points_may_be_only_the_anomalous_ones_or_none() -> None:
    every = score_series(_spiky())
    flagged = score_series(_spiky(), points="anomalous")
    none = score_series(_spiky(), points="none")
    assert flagged["points"] == [p for p in every["points"] if p["is_anomaly"]]
    assert 250 in [p["ds"] for p in flagged["points"]]
    assert none["points"] == []
    # Everything else is the same answer.
    for result in (flagged, none):
        assert {k: v for k, v in result.items() if k != "points"} == {
            k: v for k, v in every.items() if k != "points"
        }
    with pytest.raises(SeriesInputError, match="`points` 'some' is not one of: all, anomalous, none"):
        score_series(_spiky(), points="some")


def test_the_warm_up_has_no_band_and_flags_nothing() -> None:
    # A jumpy start: the first points deviate wildly, but there is no scale to judge them by.
    values = [0.0, 100.0, -80.0, 250.0, 5.0, *_spiky()]
    points = score_series(values)["points"]
    warm_up, settled = points[:21], points[21:]
    assert all(p["lower"] is None and p["upper"] is None for p in warm_up)
    assert not any(p["is_anomaly"] or p["score"] for p in warm_up)
    assert all(p["lower"] < p["expected"] < p["upper"] for p in settled)


def test_higher_sensitivity_flags_at_least_as_much_with_narrower_bands() -> None:
    low, high = score_series(_spiky(), sensitivity="low"), score_series(_spiky(), sensitivity="high")
    assert sum(p["is_anomaly"] for p in high["points"]) >= sum(p["is_anomaly"] for p in low["points"])
    width = [r["points"][200]["upper"] - r["points"][200]["lower"] for r in (low, high)]
    assert width[0] > width[1]
    assert SENSITIVITIES["high"].threshold < SENSITIVITIES["low"].threshold


def test_timestamps_label_points_and_set_the_season() -> None:
    stamps = [str(t) for t in pd.date_range("2024-01-01", periods=300, freq="h")]
    result = score_series(_spiky(), stamps)
    assert result["freq"] == "h" and result["season_length"] == 24
    assert result["points"][250]["ds"] == "2024-01-11T10:00:00"
    assert "2024-01-11T10:00:00" in [a["start"] for a in result["anomalies"]]


def _hourly_daily_cycle(days: int = 30) -> tuple[pd.DatetimeIndex, np.ndarray]:
    n = 24 * days
    y = 100 + 50 * np.sin(2 * np.pi * np.arange(n) / 24) + np.random.default_rng(1).normal(size=n)
    return pd.date_range("2024-01-01", periods=n, freq="h"), y


def test_skipped_steps_keep_one_season_ago_a_season_of_time() -> None:
    index, y = _hourly_daily_cycle()
    y[600] += 40
    keep = np.ones(y.size, dtype=bool)
    keep[400:405] = False  # five hours never sent: counting points, "a day ago" would be off by five
    result = score_series([float(v) for v in y[keep]], [str(t) for t in index[keep]])
    assert len(result["points"]) == int(keep.sum())
    assert any("5 steps were missing" in w and "2024-01-17T16:00:00" in w for w in result["warnings"])
    assert [(a["start"], a["kind"]) for a in result["anomalies"]] == [("2024-01-26T00:00:00", "seasonal")]


def test_sparse_timestamps_of_a_fine_step_are_compared_by_count_and_say_so() -> None:
    # Pairs one second apart, a day between pairs: the typical step is a second, and a grid of
    # seconds would hold 1.7 million steps for 40 points.
    days = pd.date_range("2024-01-01", periods=20, freq="D")
    stamps = [str(t) for d in days for t in (d, d + pd.Timedelta(seconds=1))]
    values = [float(v) for v in np.tile([1.0, 2.0], 20) + np.arange(40) % 7]
    result = score_series(values, stamps, season_length=2)
    assert len(result["points"]) == 40
    assert any("skip more steps of 's' than they hold" in w for w in result["warnings"])


def test_unsorted_and_repeated_timestamps_and_nulls_are_repaired_with_warnings() -> None:
    stamps = [str(t) for t in pd.date_range("2024-01-01", periods=60, freq="D")]
    stamps[3], stamps[4] = stamps[4], stamps[3]
    stamps[10] = stamps[9]
    values: list[object] = [float(i % 5) for i in range(60)]
    values[30] = None
    result = score_series(values, stamps)
    text = " ".join(result["warnings"])
    assert "not in order" in text and "repeated timestamps" in text and "null" in text
    assert len(result["points"]) == 59
    missing = [p for p in result["points"] if p["value"] is None]
    assert len(missing) == 1 and not missing[0]["is_anomaly"]


def test_a_constant_series_flags_nothing_and_says_why() -> None:
    result = score_series([3.0] * 50)
    assert not any(p["is_anomaly"] for p in result["points"])
    assert "constant" in result["warnings"][0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": [1.0] * 5}, "at least 10 are needed"),
        ({"values": [1.0] * 20 + [math.nan] * 0 + [math.inf]}, "infinite values"),
        ({"values": [1.0] * 20 + ["high"]}, r"`values\[20\]` is 'high'"),
        ({"values": [None] * 20}, "every value is null"),
        ({"values": [1.0] * 100_001}, "above the limit of 100000"),
        ({"values": [1.0] * 20, "sensitivity": "extreme"}, "not one of: low, medium, high"),
        ({"values": [1.0] * 20, "season_length": 0}, "positive integer"),
        ({"values": [1.0] * 20, "timestamps": ["2024-01-01"] * 19}, "has 19 entries"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SeriesInputError, match=message):
        score_series(**kwargs)  # type: ignore[arg-type]
