"""forecast_batch: per-series results in order, errors isolated, a process pool for big batches."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.timeseries import SeriesInputError
from servers.forecast.batch import POOL_THRESHOLD, run_batch
from servers.forecast.engine import ForecastRequest

TEMPLATE = ForecastRequest([], 3, model="AutoTheta")


def _series(i: int) -> list[float]:
    return list(50 + np.cumsum(np.random.default_rng(i).normal(size=40)))


def test_a_bad_series_gets_its_own_error_and_the_others_still_forecast() -> None:
    results = run_batch([{"id": "a", "values": _series(0)}, {"id": "b", "values": [1.0, 2.0]}], TEMPLATE)
    assert [r["id"] for r in results] == ["a", "b"]
    assert len(results[0]["forecast"]) == 3
    assert "at least 8 are needed" in results[1]["error"]


def test_a_large_batch_runs_in_a_process_pool_with_results_in_input_order() -> None:
    series = [{"id": f"s{i}", "values": _series(i)} for i in range(POOL_THRESHOLD + 2)]
    pooled = run_batch(series, TEMPLATE, workers=2)
    inline = run_batch(series[:2], TEMPLATE)
    assert [r["id"] for r in pooled] == [s["id"] for s in series]
    assert pooled[0]["forecast"] == inline[0]["forecast"]


def test_per_series_timestamps_are_used() -> None:
    stamps = [f"2024-01-{d:02d}" for d in range(1, 31)]
    results = run_batch([{"id": 1, "values": _series(1)[:30], "timestamps": stamps}], TEMPLATE)
    assert results[0]["id"] == "1"
    assert results[0]["forecast"][0]["ds"] == "2024-01-31"


@pytest.mark.parametrize(
    ("series", "message"),
    [
        ([], "non-empty list"),
        ([{"id": "a"}], "must be an object with `id` and `values`"),
        ([{"id": "a", "values": [1.0] * 10}, {"id": "a", "values": [2.0] * 10}], "repeats the id 'a'"),
    ],
)
def test_a_malformed_batch_is_refused_as_a_whole(series: list[object], message: str) -> None:
    with pytest.raises(SeriesInputError, match=message):
        run_batch(series, TEMPLATE)
