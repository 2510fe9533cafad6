"""The models the forecast server offers, by the name a caller uses.

`SeasonalNaive(168)` names a seasonal naive model at an explicit season (here the
week of hourly data) instead of the series' main season; `auto` compares it when the
frequency has a second, longer season.

Each entry builds a statsforecast model for a season length (and the extra seasons
MSTL takes), says whether the model has its own prediction intervals (the Croston
family does not: theirs come from cross-validation errors), and carries a rough cost
so `auto` can leave out what a request cannot afford.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bastion.timeseries import SeriesInputError

__all__ = ["ALIASES", "MODELS", "ModelInfo", "parse_model", "resolve_model"]

Kind = Literal["baseline", "smooth", "seasonal", "intermittent"]


@dataclass(frozen=True)
class ModelInfo:
    """One model: how to build it and what it needs."""

    name: str
    kind: Kind
    native_intervals: bool
    # Rough CPU seconds per fit of a 1,000-point series (measured on M4 Hourly).
    cost: float
    build: Callable[[int, list[int]], Any]
    needs_season: bool = False

    def make(self, season_length: int, seasons: list[int]) -> Any:
        if self.needs_season and season_length <= 1:
            raise SeriesInputError(
                f"{self.name} models seasonality, and this series has no season length > 1. Pass "
                "`season_length`, send timestamps so it can be inferred, or choose another model."
            )
        return self.build(season_length, seasons)


def _ets(m: int, _: list[int]) -> Any:
    from statsforecast.models import AutoETS

    # statsforecast's ETS (like R's) cannot model seasons above 24.
    return AutoETS(season_length=m if m <= 24 else 1)


def _arima(m: int, _: list[int]) -> Any:
    from statsforecast.models import AutoARIMA

    return AutoARIMA(season_length=m)


def _theta(m: int, _: list[int]) -> Any:
    from statsforecast.models import AutoTheta

    return AutoTheta(season_length=m)


def _ces(m: int, _: list[int]) -> Any:
    from statsforecast.models import AutoCES

    return AutoCES(season_length=m)


def _mstl(_: int, seasons: list[int]) -> Any:
    from statsforecast.models import MSTL, AutoETS

    return MSTL(season_length=[s for s in seasons if s > 1], trend_forecaster=AutoETS(model="ZZN"))


def _snaive(m: int, _: list[int]) -> Any:
    from statsforecast.models import SeasonalNaive

    return SeasonalNaive(season_length=m)


def _naive(_: int, __: list[int]) -> Any:
    from statsforecast.models import Naive

    return Naive()


def _croston(_: int, __: list[int]) -> Any:
    from statsforecast.models import CrostonOptimized

    return CrostonOptimized()


def _sba(_: int, __: list[int]) -> Any:
    from statsforecast.models import CrostonSBA

    return CrostonSBA()


def _tsb(_: int, __: list[int]) -> Any:
    from statsforecast.models import TSB

    return TSB(alpha_d=0.1, alpha_p=0.1)


def _adida(_: int, __: list[int]) -> Any:
    from statsforecast.models import ADIDA

    return ADIDA()


def _imapa(_: int, __: list[int]) -> Any:
    from statsforecast.models import IMAPA

    return IMAPA()


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("AutoETS", "smooth", True, 0.8, _ets),
        ModelInfo("AutoARIMA", "smooth", True, 6.0, _arima),
        ModelInfo("AutoTheta", "smooth", True, 0.06, _theta),
        ModelInfo("AutoCES", "smooth", True, 0.02, _ces),
        ModelInfo("MSTL", "seasonal", True, 0.3, _mstl, needs_season=True),
        ModelInfo("SeasonalNaive", "baseline", True, 0.001, _snaive, needs_season=True),
        ModelInfo("Naive", "baseline", True, 0.001, _naive),
        ModelInfo("CrostonOptimized", "intermittent", False, 0.01, _croston),
        ModelInfo("CrostonSBA", "intermittent", False, 0.005, _sba),
        ModelInfo("TSB", "intermittent", False, 0.005, _tsb),
        ModelInfo("ADIDA", "intermittent", False, 0.01, _adida),
        ModelInfo("IMAPA", "intermittent", False, 0.02, _imapa),
    )
}
# Short names callers reach for first.
ALIASES = {
    "ets": "AutoETS",
    "arima": "AutoARIMA",
    "theta": "AutoTheta",
    "seasonal_naive": "SeasonalNaive",
    "snaive": "SeasonalNaive",
    "croston": "CrostonOptimized",
    "croston_sba": "CrostonSBA",
}
_BY_LOWER = {**{name.lower(): name for name in MODELS}, **ALIASES}


_EXPLICIT_SEASON = re.compile(r"^(?P<base>[A-Za-z_]+)\((?P<season>\d{1,5})\)$")
# Models whose season can be named explicitly, as Model(season).
_SEASON_NAMEABLE = {"SeasonalNaive"}


def parse_model(name: str) -> tuple[ModelInfo, int | None]:
    """The model behind a canonical name, and its explicit season if the name has one."""
    match = _EXPLICIT_SEASON.match(name)
    if match is None:
        return MODELS[name], None
    return MODELS[match["base"]], int(match["season"])


def resolve_model(name: object) -> str:
    """The canonical model name for `name` (case-insensitive, or an alias), `auto`, or a clear error."""
    if not isinstance(name, str):
        raise SeriesInputError(f"`model` must be a string, got {type(name).__name__}.")
    if name.lower() == "auto":
        return "auto"
    match = _EXPLICIT_SEASON.match(name.strip())
    if match is not None:
        base = _BY_LOWER.get(match["base"].lower())
        season = int(match["season"])
        if base not in _SEASON_NAMEABLE or season < 1:
            raise SeriesInputError(
                f"`model` {name!r}: only SeasonalNaive takes an explicit season, as SeasonalNaive(168)."
            )
        return f"{base}({season})"
    canonical = _BY_LOWER.get(name.lower())
    if canonical is None:
        known = ", ".join(["auto", *MODELS, "SeasonalNaive(<season>)"])
        raise SeriesInputError(f"unknown `model` {name!r}. Choose one of: {known}.")
    return canonical
