"""`forecast_batch`: many series, fanned out over the machine's cores.

Each series is an independent `forecast`; a bad series gets its own `error` entry
and never fails the others. Small batches run in the calling thread (a process pool
costs a second to start); larger ones in a process pool sized to the usable cores,
started for the batch and closed with it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from bastion.errors import ConfigError
from bastion.timeseries import SeriesInputError
from servers.forecast.engine import ForecastRequest, run_forecast

__all__ = ["MAX_BATCH_POINTS", "MAX_BATCH_SERIES", "POOL_THRESHOLD", "run_batch", "usable_cores"]

logger = logging.getLogger(__name__)

MAX_BATCH_SERIES = 5_000
MAX_BATCH_POINTS = 2_000_000
POOL_THRESHOLD = 4


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _requests(series: object, template: ForecastRequest) -> list[tuple[str, ForecastRequest]]:
    if isinstance(series, (str, bytes)) or not isinstance(series, Sequence) or not series:
        raise SeriesInputError("`series` must be a non-empty list of {id, values, timestamps?} objects.")
    if len(series) > MAX_BATCH_SERIES:
        raise SeriesInputError(
            f"`series` has {len(series)} entries, above the limit of {MAX_BATCH_SERIES}: split the batch."
        )
    out: list[tuple[str, ForecastRequest]] = []
    seen: set[str] = set()
    points = 0
    for i, item in enumerate(series):
        if not isinstance(item, Mapping) or "values" not in item:
            raise SeriesInputError(f"`series[{i}]` must be an object with `id` and `values`.")
        raw_id = item.get("id", i)
        key = str(raw_id)
        if key in seen:
            raise SeriesInputError(f"`series[{i}]` repeats the id {raw_id!r}: ids must be unique.")
        seen.add(key)
        values: Any = item["values"]
        points += len(values) if isinstance(values, Sequence) else 0
        out.append((key, replace(template, values=values, timestamps=item.get("timestamps"))))
    if points > MAX_BATCH_POINTS:
        raise SeriesInputError(
            f"the batch holds {points} points, above the limit of {MAX_BATCH_POINTS}: "
            "split it into smaller batches."
        )
    return out


def _run_one(job: tuple[str, ForecastRequest]) -> dict[str, Any]:
    key, request = job
    try:
        return {"id": key, **run_forecast(request)}
    except ConfigError as exc:
        return {"id": key, "error": exc.message}
    except Exception as exc:  # one series must never take the batch down
        logger.exception("forecast of series %s failed", key)
        return {"id": key, "error": f"internal error while forecasting this series: {exc}"}


def run_batch(series: object, template: ForecastRequest, workers: int | None = None) -> list[dict[str, Any]]:
    """One result per series, in order: the `forecast` result with its `id`, or `{id, error}`."""
    jobs = _requests(series, template)
    workers = min(workers or usable_cores(), len(jobs))
    if workers <= 1 or len(jobs) < POOL_THRESHOLD:
        return [_run_one(job) for job in jobs]
    # spawn: a forked copy of a threaded server process can inherit held locks.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_run_one, jobs, chunksize=max(1, len(jobs) // (workers * 8))))
