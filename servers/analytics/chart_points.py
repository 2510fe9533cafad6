"""Fitting a large query result into the points a chart inlines, without losing its shape.

A chart inlines at most `limit` rows. Cutting a longer result at its first rows draws
half a series or a histogram of whatever came first, so each kind is reduced over every
row instead:

- line: per series, in x order, runs of rows each keep their first, last, lowest and
  highest point, so spikes and dips survive (the min/max reduction plotting tools use
  for long time series);
- histogram: the values are binned here (nice bin edges, as Vega-Lite picks them) and
  the chart draws the bins;
- bar counting rows per category (no y): the counts are taken here;
- scatter: an even sample in the result's order, plus the rows holding each axis's
  extremes, so the axes span the whole result;
- bar with a y per row: there is nothing to merge without changing what a bar means, so
  the first rows are drawn and the description says so.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Hashable
from typing import Any

__all__ = ["Reduced", "bins", "counts", "line_points", "nice_step", "scatter_sample"]

Row = dict[str, Any]
Reduced = tuple[list[Row], str]  # the rows to inline, and how they were made (for `description`)


def _number(value: Any) -> float | None:
    """A finite number, or None (NULL, text, NaN and infinities are not drawn)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _order_key(value: Any) -> tuple[int, Any]:
    """A sort key for an x value: numbers by value, ISO dates and times by instant, else text."""
    number = _number(value)
    if number is not None:
        return (0, number)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return (2, value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return (1, moment.timestamp())
    return (3, str(value))


def line_points(rows: list[Row], x: str, y: str, series: str | None, limit: int) -> Reduced:
    """At most `limit` rows drawing the same lines: per series, each run of rows in x order
    keeps its first, last, lowest and highest point."""
    drawn = [r for r in rows if r.get(x) is not None and _number(r.get(y)) is not None]
    groups: dict[Hashable, list[Row]] = {}
    for row in drawn:
        groups.setdefault(_hashable(row.get(series)) if series else None, []).append(row)
    if not groups:
        return [], f"{len(rows):,} rows, none with an {x!r} and a number in {y!r} to draw"
    runs_per_series = limit // (4 * len(groups))
    if runs_per_series < 1:
        # More series than the chart can draw four points each: cut, and say so.
        return rows[:limit], f"first {limit:,} of {len(rows):,} rows ({len(groups):,} series)"
    kept: list[Row] = []
    for group in groups.values():
        group.sort(key=lambda r: _order_key(r[x]))
        size = math.ceil(len(group) / runs_per_series)
        for start in range(0, len(group), size):
            run = group[start : start + size]
            low = min(range(len(run)), key=lambda i: run[i][y])
            high = max(range(len(run)), key=lambda i: run[i][y])
            kept.extend(run[i] for i in sorted({0, low, high, len(run) - 1}))
    how = (
        f"{len(rows):,} rows drawn as {len(kept):,} points: in x order, each run of about "
        f"{math.ceil(len(drawn) / (runs_per_series * len(groups))):,} rows keeps its first, last, "
        "lowest and highest point"
    )
    return kept, how


def nice_step(span: float, max_bins: int) -> float:
    """The smallest step of 1, 2 or 5 times a power of ten giving at most `max_bins` bins."""
    if span <= 0:
        return 1.0
    raw = span / max_bins
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power  # not reached: factor 10 always covers `raw`


def bins(
    rows: list[Row], field: str, count_field: str, series: str | None = None, max_bins: int = 20
) -> Reduced:
    """The rows' `field` values counted in nice bins: rows {field, field_end, count_field},
    and per `series` value (the same edges for every series) when one is given."""
    numbered = [(v, r) for r in rows if (v := _number(r.get(field))) is not None]
    if not numbered:
        return [], f"{len(rows):,} rows, none with a number in {field!r} to bin"
    low, high = min(v for v, _ in numbered), max(v for v, _ in numbered)
    step = nice_step(high - low, max_bins)
    start = math.floor(low / step) * step
    count = max(1, math.floor((high - start) / step) + 1)
    tallies: dict[Hashable, list[int]] = {}
    labels: dict[Hashable, Any] = {}
    for value, row in numbered:
        key = _hashable(row.get(series)) if series else None
        if key not in tallies:
            tallies[key] = [0] * count
            labels[key] = row.get(series) if series else None
        # The epsilon keeps a value on an edge (0.6 by 0.2: 2.9999999999999996) in the bin it starts.
        tallies[key][min(count - 1, math.floor((value - start) / step + 1e-9))] += 1
    end_field = f"{field}_end"
    binned: list[Row] = []
    for key, counted in tallies.items():
        for i, n in enumerate(counted):
            item: Row = {
                field: _tidy(start + i * step),
                end_field: _tidy(start + (i + 1) * step),
                count_field: n,
            }
            if series:
                item[series] = labels[key]
            binned.append(item)
    return binned, f"{len(numbered):,} values of {len(rows):,} rows binned by {_tidy(step):g}"


def counts(rows: list[Row], x: str, series: str | None, count_field: str, limit: int) -> Reduced:
    """Rows counted per x (and series), in the order each first appears."""
    tally: dict[tuple[Hashable, Hashable], list[Any]] = {}
    for row in rows:
        key = (_hashable(row.get(x)), _hashable(row.get(series)) if series else None)
        entry = tally.get(key)
        if entry is None:
            tally[key] = [row.get(x), row.get(series) if series else None, 1]
        else:
            entry[2] += 1
    out: list[Row] = []
    for x_value, s_value, n in tally.values():
        item: Row = {x: x_value, count_field: n}
        if series:
            item[series] = s_value
        out.append(item)
    how = f"{len(rows):,} rows counted into {len(out):,} bars"
    if len(out) > limit:
        how += f", the first {limit:,} drawn"
    return out[:limit], how


def scatter_sample(rows: list[Row], x: str, y: str, limit: int) -> Reduced:
    """An even sample of at most `limit` rows, keeping the rows at each axis's extremes."""
    extremes: set[int] = set()
    for field in (x, y):
        numbered = [(v, i) for i, r in enumerate(rows) if (v := _number(r.get(field))) is not None]
        if numbered:
            extremes.add(min(numbered)[1])
            extremes.add(max(numbered)[1])
    room = max(1, limit - len(extremes))
    every = math.ceil(len(rows) / room)
    chosen = sorted(extremes.union(range(0, len(rows), every)))[:limit]
    kept = [rows[i] for i in chosen]
    how = f"{len(rows):,} rows sampled to {len(kept):,}: one row in every {every:,}, and each axis's extremes"
    return kept, how


def _hashable(value: Any) -> Hashable:
    return value if isinstance(value, Hashable) else repr(value)


def _tidy(value: float) -> float | int:
    """Bin edges without float noise (0.30000000000000004 -> 0.3); integral ones as ints."""
    rounded = round(value, 10)
    return int(rounded) if rounded == int(rounded) and abs(rounded) < 2**53 else rounded
