"""Model names: canonical names, aliases, explicit seasons and unknown names."""

from __future__ import annotations

import pytest

from bastion.timeseries import SeriesInputError
from servers.forecast.models import MODELS, parse_model, resolve_model


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("auto", "auto"), ("AUTO", "auto"), ("autoets", "AutoETS"), ("ets", "AutoETS"),
     ("croston", "CrostonOptimized"), ("snaive", "SeasonalNaive"),
     ("seasonalnaive(168)", "SeasonalNaive(168)")],
)  # fmt: skip
def test_names_resolve_case_insensitively_and_through_aliases(given: str, canonical: str) -> None:
    assert resolve_model(given) == canonical


def test_an_unknown_model_lists_the_choices() -> None:
    with pytest.raises(SeriesInputError, match=r"unknown `model` 'prophet'. Choose one of: auto, AutoETS"):
        resolve_model("prophet")


def test_only_seasonal_naive_takes_an_explicit_season() -> None:
    with pytest.raises(SeriesInputError, match="only SeasonalNaive takes an explicit season"):
        resolve_model("AutoETS(12)")


def test_an_explicit_season_is_parsed() -> None:
    info, season = parse_model("SeasonalNaive(168)")
    assert info.name == "SeasonalNaive" and season == 168
    assert parse_model("MSTL") == (MODELS["MSTL"], None)


def test_a_seasonal_model_without_a_season_says_how_to_give_one() -> None:
    with pytest.raises(SeriesInputError, match=r"MSTL models seasonality.*Pass `season_length`"):
        MODELS["MSTL"].make(1, [1])
