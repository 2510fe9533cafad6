"""M4 Hourly and Weekly: sMAPE, MASE and OWA of each model and of `auto`, the M4 way.

For each frequency, every series is forecast from its training part and scored on the
official test set. OWA is relative to Naive2 over the whole set:
OWA = (mean sMAPE / mean sMAPE_Naive2 + mean MASE / mean MASE_Naive2) / 2, with MASE
scaled by the in-sample seasonal naive at M4's season (Hourly 24, Weekly 1).

- Naive2 is computed here and checked against the published M4 table;
- single models are fitted directly (no cross-validation), with the seasons the server
  infers for each series (AutoETS and AutoARIMA non-seasonal where that season is above 12,
  as `auto` uses them); where a model cannot run on a series (a seasonal model on a series
  too short for a season) the naive forecast stands in, and the report counts those;
- `auto` runs through `forecast_batch`'s code path (a process pool over the cores),
  given what a user would give: the frequency alias ("h", "W"), from which the server
  infers the seasons (24 and 168 for hourly; 52 for weekly series with two years).

Usage: python benchmarks/forecast.py [--freq Hourly Weekly] [--limit N] [--workers 2]
       [--skip-singles] [--json FILE]
Prints a Markdown report; docs/benchmarks/forecast.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bastion.timeseries import SeriesInputError, prepare_series
from benchmarks._forecast.m4 import FREQUENCIES, Frequency, load, naive2, published
from servers.forecast.batch import run_batch
from servers.forecast.candidates import SHORT_SEASON, auto_candidates
from servers.forecast.engine import ForecastRequest
from servers.forecast.fitting import ModelFailure, fit_forecast
from servers.forecast.metrics import mase, owa, smape

REFERENCES = {"Naive2": "Naive2", "sNaive": "sNaive", "Theta": "Theta", "M4 winner (Smyl)": "118"}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _single(job: tuple[str, np.ndarray, int, str]) -> tuple[np.ndarray, bool]:
    """The model's forecast, or (True) a naive one where the model cannot run on this series."""
    model, y, h, freq = job
    series = prepare_series(y.tolist(), freq=freq)  # the seasons the server would use
    season, seasons = series.season_length, series.seasons
    if model in ("AutoETS", "AutoARIMA") and season > SHORT_SEASON:
        # As auto uses them: never with a long season (AutoARIMA at 52 takes minutes a series).
        season, seasons = 1, [1]
    try:
        return fit_forecast(model, y, h, season, seasons, []).mean, False
    except (ModelFailure, SeriesInputError):  # e.g. a seasonal model on a series too short for a season
        return np.repeat(y[-1], h), True


def _errors(
    histories: list[np.ndarray], actuals: list[np.ndarray], forecasts: list[np.ndarray], m: int
) -> tuple[float, float]:
    s = float(np.mean([smape(a, f) for a, f in zip(actuals, forecasts, strict=True)]))
    k = float(np.mean([mase(a, f, y, m) for y, a, f in zip(histories, actuals, forecasts, strict=True)]))
    return s, k


def run_frequency(freq: Frequency, limit: int | None, workers: int, singles: bool) -> dict[str, Any]:
    ids, histories, actuals = load(freq)
    if limit:
        ids, histories, actuals = ids[:limit], histories[:limit], actuals[:limit]
    h, m = freq.horizon, freq.m
    rows: dict[str, dict[str, Any]] = {}
    bench = _errors(histories, actuals, [naive2(y, h, m) for y in histories], m)
    rows["Naive2"] = {"smape": bench[0], "mase": bench[1]}
    template = ForecastRequest([], h, freq=freq.freq, levels=[80, 95])
    # Every model auto compares on this frequency: its candidates for the longest and the
    # shortest series (which may be too short for a season).
    names: list[str] = []
    for y in (max(histories, key=len), min(histories, key=len)):
        typical = prepare_series(y.tolist(), freq=freq.freq)
        names += auto_candidates(typical.values, typical.season_length, typical.seasons, 2).models
    names = list(dict.fromkeys(names))
    context = multiprocessing.get_context("spawn")
    if singles:
        for name in names:
            started, cpu = time.perf_counter(), _cpu()
            jobs = [(name, y, h, freq.freq) for y in histories]
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                outcomes = list(pool.map(_single, jobs, chunksize=8))
            s, k = _errors(histories, actuals, [f for f, _ in outcomes], m)
            rows[name] = {
                "smape": s,
                "mase": k,
                "wall_s": time.perf_counter() - started,
                "cpu_s": _cpu() - cpu,
                "naive_fallbacks": sum(fell for _, fell in outcomes),
            }
    started, cpu = time.perf_counter(), _cpu()
    results = run_batch(
        [{"id": i, "values": y.tolist()} for i, y in zip(ids, histories, strict=True)], template, workers
    )
    wall, cpu_used = time.perf_counter() - started, _cpu() - cpu
    failed = [r for r in results if "error" in r]
    forecasts = [
        np.array([p["mean"] for p in r["forecast"]]) if "error" not in r else np.repeat(y[-1], h)
        for r, y in zip(results, histories, strict=True)
    ]
    s, k = _errors(histories, actuals, forecasts, m)
    rows["auto"] = {"smape": s, "mase": k, "wall_s": wall, "cpu_s": cpu_used}
    coverage = {}
    for level in ("80", "95"):
        inside = [
            np.mean(
                (a >= np.array([p["lower"][level] for p in r["forecast"]]))
                & (a <= np.array([p["upper"][level] for p in r["forecast"]]))
            )
            for r, a in zip(results, actuals, strict=True)
            if "error" not in r
        ]
        coverage[level] = float(np.mean(inside))
    for row in rows.values():
        row["owa"] = owa(row["smape"], row["mase"], bench[0], bench[1])
    winners = Counter(_kind(r.get("model", "error")) for r in results)
    return {
        "frequency": freq.name,
        "series": len(ids),
        "rows": rows,
        "published": {label: published(code, freq) for label, code in REFERENCES.items()},
        "coverage": coverage,
        "winners": dict(winners.most_common()),
        "failed": [r["id"] for r in failed],
        "candidates": names,
    }


def _kind(model: str) -> str:
    return model.split("(")[0] + "(...)" if model.startswith(("Mean(", "Median(")) else model


def report(results: list[dict[str, Any]], workers: int) -> str:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores visible, {workers} workers, "
        f"Python {platform.python_version()}",
        "",
    ]
    for res in results:
        lines += [f"### {res['frequency']} ({res['series']} series)", ""]
        lines += [
            "| model | sMAPE | MASE | OWA | wall s | CPU s | naive fallbacks |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, row in res["rows"].items():
            wall = f"{row['wall_s']:.1f}" if "wall_s" in row else ""
            cpu = f"{row['cpu_s']:.1f}" if "cpu_s" in row else ""
            fallbacks = row.get("naive_fallbacks", "")
            lines.append(
                f"| {name} | {row['smape']:.3f} | {row['mase']:.3f} | {row['owa']:.3f} | {wall} | {cpu} "
                f"| {fallbacks} |"
            )
        lines += ["", "Published (M4_point_accuracy_by_frequency.csv):", ""]
        lines += ["| method | sMAPE | MASE | OWA |", "|---|---|---|---|"]
        for label, ref in res["published"].items():
            if ref:
                lines.append(f"| {label} | {ref[0]:.3f} | {ref[1]:.3f} | {ref[2]:.3f} |")
        cov = res["coverage"]
        lines += [
            "",
            f"auto interval coverage on the test set: 80% -> {cov['80']:.3f}, 95% -> {cov['95']:.3f}",
            f"auto winners: {res['winners']}",
            f"auto candidates (longest and shortest series): {res['candidates']}; "
            f"failed series: {res['failed'] or 'none'}",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--freq", nargs="+", default=list(FREQUENCIES), choices=list(FREQUENCIES))
    parser.add_argument("--limit", type=int, default=None, help="only the first N series of each frequency")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-singles", action="store_true", help="only Naive2 and auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args()
    results = [
        run_frequency(FREQUENCIES[f], args.limit, args.workers, not args.skip_singles) for f in args.freq
    ]
    print(report(results, args.workers))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
