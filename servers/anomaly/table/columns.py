"""Rows (JSON objects or arrays) to a numeric matrix, with every repair reported.

- Numbers may come as text (`"12.5"`, as from a CSV), and the words exports write for a
  missing value (`"NA"`, `"NaN"`, `""`, ...) are missing cells like null.
- Columns named in `features` must be numeric: other text there is an error naming the
  row and the value. Without `features`, every numeric column is used but those that
  look like row identifiers (distinct integers named like `id`, or counting up in equal
  steps), which would make the first and last rows look unusual; the others are listed
  in a warning.
- Missing cells are imputed with the column median (a warning counts them); infinities
  are refused; a column that never varies carries no information and is dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

import numpy as np
import numpy.typing as npt

from bastion.missing import MISSING_MARKERS
from bastion.timeseries import SeriesInputError

__all__ = ["MAX_CELLS", "MAX_FEATURES", "MAX_ROWS", "Matrix", "to_matrix"]

MAX_ROWS = 500_000
MAX_FEATURES = 200
MAX_CELLS = 5_000_000
_IDENTIFIER_NAME = re.compile(r"^(id|idx|index|key|uuid|row|row_?(id|no|num|number))$|_id$", re.IGNORECASE)
_IDENTIFIER_SUFFIX = re.compile(r"[a-z](Id|ID)$")  # customerId, orderID; not "humid"


@dataclass
class Matrix:
    values: npt.NDArray[np.float64]
    features: list[str]
    warnings: list[str] = field(default_factory=list[str])


def _columns(rows: Sequence[object], features: list[str] | None) -> tuple[list[str], bool]:
    first = rows[0]
    if isinstance(first, Mapping):
        if features is not None:
            return features, True
        seen: dict[str, None] = {}
        for row in rows[:1000]:
            if isinstance(row, Mapping):
                seen.update(dict.fromkeys(str(k) for k in row))  # pyright: ignore[reportUnknownVariableType]
        return list(seen), True
    if isinstance(first, Sequence) and not isinstance(first, (str, bytes)):
        width = len(first)
        names = features if features is not None else [str(i) for i in range(width)]
        if len(names) != width:
            raise SeriesInputError(
                f"rows are arrays of {width} values but `features` names {len(names)} columns: "
                "name each column once."
            )
        return names, False
    raise SeriesInputError("each row must be an object {column: value} or an array of values.")


def _is_number(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _from_text(v: str) -> float | str | None:
    """A text cell: None when it says the value is missing, its number, or itself."""
    s = v.strip()
    if not s or s in MISSING_MARKERS:
        return None
    try:
        return float(s)
    except ValueError:
        return v


def _looks_like_identifier(name: str, column: npt.NDArray[np.float64]) -> bool:
    """Distinct integers named like an identifier, or counting in equal steps row by row."""
    if len(column) < 3 or np.isnan(column).any() or not np.all(column == np.round(column)):
        return False
    if len(np.unique(column)) != len(column):
        return False
    steps = np.diff(column)
    named = bool(_IDENTIFIER_NAME.search(name) or _IDENTIFIER_SUFFIX.search(name))
    return named or bool(steps[0] != 0 and np.all(steps == steps[0]))


def to_matrix(rows: object, features: object | None) -> Matrix:
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence) or not rows:
        raise SeriesInputError("`rows` must be a non-empty list of objects (or arrays).")
    if len(rows) > MAX_ROWS:
        raise SeriesInputError(
            f"`rows` has {len(rows)} rows, above the limit of {MAX_ROWS}: score a sample or split it."
        )
    if features is not None and (not isinstance(features, list) or not features):
        raise SeriesInputError("`features` must be a non-empty list of column names, or left out.")
    names, keyed = _columns(rows, [str(f) for f in features] if isinstance(features, list) else None)
    if len(names) > MAX_FEATURES or len(rows) * len(names) > MAX_CELLS:
        raise SeriesInputError(
            f"{len(rows)} rows x {len(names)} columns is above the limits ({MAX_FEATURES} columns, "
            f"{MAX_CELLS} cells): choose fewer `features` or fewer rows."
        )
    explicit = features is not None
    warnings: list[str] = []
    data = np.full((len(rows), len(names)), np.nan)
    text_columns: dict[str, str] = {}
    read_as_numbers: dict[str, str] = {}
    for i, row in enumerate(rows):
        if keyed and not isinstance(row, Mapping):
            raise SeriesInputError(f"`rows[{i}]` is not an object like the rows before it.")
        if not keyed and (
            not isinstance(row, Sequence) or isinstance(row, (str, bytes)) or len(row) != len(names)
        ):
            raise SeriesInputError(
                f"`rows[{i}]` is not an array of {len(names)} values like the rows before it."
            )
        for j, name in enumerate(names):
            v = row.get(name) if keyed else row[j]  # type: ignore[union-attr]  # pyright: ignore
            if isinstance(v, str):
                number = _from_text(v)
                if isinstance(number, float):
                    read_as_numbers.setdefault(name, repr(v))
                    v = number
                elif number is None:
                    v = None
            if v is None:
                continue
            if not _is_number(v):
                if explicit:
                    raise SeriesInputError(
                        f"column {name!r} is not numeric: rows[{i}] has {v!r}. Score numeric columns only, "
                        "or encode this one as numbers first."
                    )
                text_columns.setdefault(name, repr(v))
                continue
            if math.isinf(v):
                raise SeriesInputError(
                    f"column {name!r} is infinite at rows[{i}]: replace it with null or a finite value."
                )
            data[i, j] = float(v)
    if keyed and explicit:
        _check_named_columns(rows, names)
    keep = [j for j, name in enumerate(names) if name not in text_columns]
    if text_columns:
        listed = ", ".join(f"{n} (e.g. {v})" for n, v in list(text_columns.items())[:5])
        warnings.append(f"non-numeric columns were left out: {listed}.")
    numbers_as_text = [f"{n} (e.g. {v})" for n, v in read_as_numbers.items() if n not in text_columns]
    if numbers_as_text:
        warnings.append(f"numbers given as text were read as numbers: {', '.join(numbers_as_text[:5])}.")
    if not explicit:
        identifiers = [j for j in keep if _looks_like_identifier(names[j], data[:, j])]
        if identifiers:
            listed = ", ".join(names[j] for j in identifiers[:5])
            warnings.append(
                f"columns that look like row identifiers were left out: {listed}; name them in "
                "`features` to score them."
            )
            keep = [j for j in keep if j not in identifiers]
    values, kept = data[:, keep], [names[j] for j in keep]
    return _repair(values, kept, warnings)


def _repair(values: npt.NDArray[np.float64], names: list[str], warnings: list[str]) -> Matrix:
    empty = [n for j, n in enumerate(names) if np.isnan(values[:, j]).all()]
    present = ~np.isnan(values)
    if empty:
        warnings.append(f"columns with no values were left out: {', '.join(empty[:5])}.")
    missing = int((~present).sum()) - len(empty) * values.shape[0]
    if missing:
        warnings.append(f"{missing} missing cells were filled with their column's median.")
    medians = np.array(
        [np.nanmedian(values[:, j]) if present[:, j].any() else 0.0 for j in range(values.shape[1])]
    )
    values = np.where(present, values, medians)
    constant = [n for j, n in enumerate(names) if n not in empty and np.ptp(values[:, j]) == 0]
    if constant:
        warnings.append(
            f"constant columns carry no information and were left out: {', '.join(constant[:5])}."
        )
    keep = [j for j, n in enumerate(names) if n not in empty and n not in constant]
    if not keep:
        # Say what was left out and why: that is what the caller has to change.
        left_out = f" ({'; '.join(w.rstrip('.') for w in warnings)})" if warnings else ""
        raise SeriesInputError(
            f"no numeric column varies: there is nothing to score{left_out}. Send numeric "
            "`features` that differ between rows."
        )
    return Matrix(values[:, keep], [names[j] for j in keep], warnings)


def _check_named_columns(rows: Sequence[object], names: list[str]) -> None:
    present: dict[str, None] = {}
    for row in rows:
        if isinstance(row, Mapping):
            present.update(dict.fromkeys(str(k) for k in row))  # pyright: ignore[reportUnknownVariableType]
    absent = [n for n in names if n not in present]
    if absent:
        listed = ", ".join(list(present)[:20]) or "none"
        raise SeriesInputError(
            f"`features` names {', '.join(repr(n) for n in absent)}, which no row has; the rows' "
            f"columns are: {listed}."
        )
