"""`auto`'s choice: the lowest cross-validated relative error, combinations when they win."""

from __future__ import annotations

import numpy as np

from servers.forecast.crossval import CrossValidation
from servers.forecast.selection import choose, combine, cv_report


def _cv(forecasts: dict[str, list[list[float]]], actuals: list[list[float]]) -> CrossValidation:
    return CrossValidation(
        horizon=len(actuals[0]),
        season_length=1,
        origins=[10 + i for i in range(len(actuals))],
        actuals=[np.array(a) for a in actuals],
        histories=[np.arange(1.0, 11.0 + i) for i in range(len(actuals))],
        forecasts={k: [np.array(w) for w in v] for k, v in forecasts.items()},
    )


def test_the_model_with_the_lowest_error_wins() -> None:
    cv = _cv({"Naive": [[10, 10]], "A": [[12, 12]], "B": [[19, 19]]}, [[12, 12]])
    choice = choose(cv, allow_combinations=False)
    assert choice.name == "A" and choice.combine == "single"


def test_a_combination_wins_when_its_errors_cancel() -> None:
    # A is too high and B too low by the same amount: their mean is exact.
    cv = _cv({"Naive": [[10, 10]], "A": [[14, 14]], "B": [[10, 10]]}, [[12, 12]])
    choice = choose(cv)
    assert choice.name == "Mean(A+Naive)" or choice.name.startswith(("Mean(", "Median("))
    assert choice.combine in ("mean", "median")
    report = cv_report(cv, choice)
    assert report[choice.name]["smape"] == 0.0
    assert set(report) >= {"Naive", "A", "B"}


def test_combinations_can_be_switched_off() -> None:
    cv = _cv({"Naive": [[10, 10]], "A": [[14, 14]], "B": [[10, 10]]}, [[12, 12]])
    assert choose(cv, allow_combinations=False).combine == "single"


def test_median_and_mean_combine_pointwise() -> None:
    parts = [np.array([1.0, 10.0]), np.array([2.0, 20.0]), np.array([9.0, 30.0])]
    assert combine(parts, "median").tolist() == [2.0, 20.0]
    assert combine(parts, "mean").tolist() == [4.0, 20.0]


def test_a_flat_history_reports_mase_as_null_not_nan() -> None:
    cv = _cv({"Naive": [[1, 1]]}, [[1, 2]])
    cv.histories = [np.ones(10)]
    assert cv_report(cv)["Naive"]["mase"] is None


def test_intermittent_demand_is_chosen_by_rmsse_not_by_a_zero_forecast() -> None:
    # Demand of 4 on one day in four: forecasting zero wins on sMAPE and MASE, the mean
    # rate (1 a day) wins on squared error, the measure that keeps stock on the shelf.
    cv = _cv({"Naive": [[0, 0, 0, 0]], "Croston": [[1, 1, 1, 1]]}, [[0, 4, 0, 0]])
    cv.histories = [np.array([0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0])]
    assert choose(cv, allow_combinations=False).name == "Naive"
    assert choose(cv, allow_combinations=False, intermittent=True).name == "Croston"
    report = cv_report(cv, intermittent=True)
    assert report["Croston"]["rmsse"] is not None and report["Naive"]["rmsse"] is not None
    assert report["Croston"]["rmsse"] < report["Naive"]["rmsse"]
    assert "rmsse" not in cv_report(cv)["Croston"]
