"""Intermittent demand: how well `auto` forecasts series that are mostly zeros.

No public intermittent-demand set ships with the evaluation data, so the series are
simulated, seeded and varied the way spare-parts and retail demand varies:

- steady: demand on a random share of days (8-60%), sizes negative-binomial;
- lumpy: the same with rare, very large orders;
- dying: steady demand that stops for good in the last 10-30 days of the history;
- rising: steady demand whose rate doubles over the last third of the history.

Each series has 200 days of history (at least 30% zeros, as `auto` requires to treat it
as intermittent) and 14 held-out days. Every method forecasts the 14 days from the
history and is scored on them by RMSSE (the M5 competition's measure: root mean squared
error over the root mean squared one-step change of the history) and by its total
forecast over the total demand (1 is unbiased; 0 is forecasting no demand).

- `auto`: the server's own path (`run_forecast`), which chooses intermittent demand by
  cross-validated RMSSE;
- `auto by OWA`: the same candidates and windows, chosen by OWA (sMAPE and MASE), the
  rule for every other series and, before, for these too;
- single models fitted directly.

Usage: python benchmarks/forecast_intermittent.py [--series 400] [--json FILE]
Prints a Markdown report; docs/benchmarks/forecast.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servers.forecast.candidates import auto_candidates, is_intermittent
from servers.forecast.crossval import cross_validate
from servers.forecast.engine import DEFAULT_WINDOWS, ForecastRequest, run_forecast
from servers.forecast.fitting import fit_forecast
from servers.forecast.metrics import rmsse
from servers.forecast.selection import choose, combine

HISTORY, HORIZON = 200, 14
KINDS = ("steady", "lumpy", "dying", "rising")
SINGLES = ("CrostonSBA", "TSB", "IMAPA", "Naive")
FloatArray = np.ndarray


def simulate(kind: str, rng: np.random.Generator) -> FloatArray:
    """One series of HISTORY + HORIZON days of the given kind with >= 30% zeros in its history."""
    n = HISTORY + HORIZON
    while True:
        rate = np.full(n, rng.uniform(0.08, 0.6))
        mean_size = rng.uniform(1, 12)
        sizes = rng.negative_binomial(2, 2 / (2 + mean_size), n) + 1.0
        if kind == "lumpy":
            big = rng.random(n) < 0.1
            sizes[big] *= rng.uniform(5, 20)
            sizes = np.round(sizes)
        if kind == "dying":
            rate[HISTORY - int(rng.integers(10, 31)) :] = 0.0
        if kind == "rising":
            start = HISTORY - HISTORY // 3
            rate[start:] = np.minimum(rate[start:] * 2, 0.95)
        y = np.where(rng.random(n) < rate, sizes, 0.0)
        history = y[:HISTORY]
        if is_intermittent(history) and np.count_nonzero(history) >= 3:
            return y


def _auto_by_owa(history: FloatArray) -> FloatArray:
    candidates = auto_candidates(history, 1, [1], DEFAULT_WINDOWS)
    cv = cross_validate(history, HORIZON, candidates.models, DEFAULT_WINDOWS, 1, [1], 8)
    choice = choose(cv)
    fits = [fit_forecast(m, history, HORIZON, 1, [1], [80]).mean for m in choice.members]
    return np.maximum(combine(fits, choice.combine), 0)


def _auto(history: FloatArray) -> FloatArray:
    result = run_forecast(ForecastRequest(list(history), HORIZON, season_length=1))
    return np.array([p["mean"] for p in result["forecast"]])


def _single(model: str) -> Callable[[FloatArray], FloatArray]:
    return lambda history: np.maximum(fit_forecast(model, history, HORIZON, 1, [1], [80]).mean, 0)


def run(count: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    methods: dict[str, Callable[[FloatArray], FloatArray]] = {
        "auto": _auto,
        "auto by OWA": _auto_by_owa,
        **{m: _single(m) for m in SINGLES},
    }
    scores: dict[str, dict[str, list[float]]] = {m: {k: [] for k in KINDS} for m in methods}
    totals = {m: [0.0, 0.0] for m in methods}
    zeros: dict[str, dict[str, int]] = {m: dict.fromkeys(KINDS, 0) for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        y = simulate(kind, rng)
        history, actual = y[:HISTORY], y[HISTORY:]
        for name, method in methods.items():
            started = time.perf_counter()
            forecast = method(history)
            seconds[name] += time.perf_counter() - started
            scores[name][kind].append(rmsse(actual, forecast, history))
            totals[name][0] += float(forecast.sum())
            totals[name][1] += float(actual.sum())
            zeros[name][kind] += int(np.all(forecast < 1e-9))
    return {
        "series": count,
        "seed": seed,
        "methods": {
            name: {
                "rmsse_mean": float(np.mean([v for per in scores[name].values() for v in per])),
                "rmsse_median": float(np.median([v for per in scores[name].values() for v in per])),
                "by_kind": {k: float(np.mean(v)) for k, v in scores[name].items()},
                "forecast_over_demand": totals[name][0] / totals[name][1],
                "zero_forecasts": sum(zeros[name].values()),
                "zero_forecasts_by_kind": zeros[name],
                "ms_per_series": 1000 * seconds[name] / count,
            }
            for name in methods
        },
    }


def report(result: dict[str, Any]) -> str:
    methods = result["methods"]
    reference = methods["CrostonSBA"]["rmsse_mean"]
    lines = [
        f"{result['series']} simulated series ({result['series'] // len(KINDS)} of each kind), seed "
        f"{result['seed']}, history {HISTORY} days, horizon {HORIZON}; "
        f"{platform.python_implementation()} {platform.python_version()}; `auto` took "
        f"{methods['auto']['ms_per_series']:.0f} ms per series.",
        "",
        "| method | RMSSE mean | vs CrostonSBA | RMSSE median | "
        + " | ".join(f"{k} RMSSE" for k in KINDS)
        + " | forecast / demand | all-zero forecasts (of dying) |",
        "|---|" + "---:|" * (5 + len(KINDS)),
    ]
    for name, m in methods.items():
        kinds = " | ".join(f"{m['by_kind'][k]:.3f}" for k in KINDS)
        lines.append(
            f"| {name} | {m['rmsse_mean']:.3f} | {m['rmsse_mean'] / reference:.2f} | "
            f"{m['rmsse_median']:.3f} | {kinds} | {m['forecast_over_demand']:.2f} | "
            f"{m['zero_forecasts']} ({m['zero_forecasts_by_kind']['dying']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=400, help="how many series (a multiple of 4)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args()
    if args.series < len(KINDS) or args.series > 100_000:
        parser.error(f"--series must be from {len(KINDS)} to 100000")
    result = run(args.series, args.seed)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
