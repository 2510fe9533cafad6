"""`score_table`: per-row scores, labels and the columns that made each row unusual.

Contributions are the row's robust z-scores (distance from the column median in MAD
units), the three largest by size: they explain any method's verdict in the units an
analyst checks, without per-method attributions.
Labels flag the top `contamination` share of rows when it is given, else the rows
above the method's natural cut-off.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.timeseries import SeriesInputError, check_choice
from servers.anomaly.table.columns import to_matrix
from servers.anomaly.table.methods import DEFAULT_CUTOFF, METHODS, Method, choose_method, robust_z, run_method

__all__ = ["DETAILS", "TOP_CONTRIBUTIONS", "score_table"]

TOP_CONTRIBUTIONS = 3


def _method(name: str, rows: int, columns: int) -> Method:
    if name == "auto":
        return choose_method(rows, columns)
    for method in METHODS:
        if name == method:
            return method
    raise SeriesInputError(f"`method` {name!r} is not one of: auto, {', '.join(METHODS)}.")


def _contamination(value: object | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 0.5:
        raise SeriesInputError(f"`contamination` must be a share of rows in (0, 0.5], got {value!r}.")
    return float(value)


DETAILS = ("all", "anomalous")


def score_table(
    rows: object,
    features: object | None = None,
    method: str = "auto",
    contamination: object | None = None,
    detail: object = "all",
) -> dict[str, Any]:
    share = _contamination(contamination)
    shown = check_choice("detail", detail, DETAILS)
    matrix = to_matrix(rows, features)
    x = matrix.values
    chosen = _method(method, x.shape[0], x.shape[1])
    z = robust_z(x)
    scores = run_method(chosen, x, share, z)
    if share is not None:
        flagged = max(1, round(share * scores.size))
        cutoff = float(np.partition(scores, scores.size - flagged)[scores.size - flagged])
    else:
        cutoff = DEFAULT_CUTOFF[chosen]
    labels = scores >= cutoff
    result: dict[str, Any] = {"method": chosen, "features": matrix.features}
    if shown == "all":
        result["scores"] = np.round(scores, 6).tolist()
        result["labels"] = labels.tolist()
        result["contributions"] = _contributions(z, matrix.features)
    else:
        # Only the flagged rows, most unusual first: a long table's every row is megabytes
        # an agent rarely needs.
        picked = np.flatnonzero(labels)
        picked = picked[np.argsort(-scores[picked], kind="stable")]
        explained = _contributions(z[picked], matrix.features)
        result["flagged"] = [
            {"row": int(i), "score": round(float(scores[i]), 6), "contributions": c}
            for i, c in zip(picked.tolist(), explained, strict=True)
        ]
    result.update(threshold=round(cutoff, 6), anomalies=int(labels.sum()), warnings=matrix.warnings)
    return result


def _contributions(z: np.ndarray, names: list[str]) -> list[dict[str, float]]:
    """Per row, {column: robust z} for the (up to) three largest |z|, largest first."""
    k = min(TOP_CONTRIBUTIONS, z.shape[1])
    top = np.argsort(-np.abs(z), axis=1, kind="stable")[:, :k]
    # Rounded and converted in bulk: building 100,000 small dicts is the slow part.
    values = np.take_along_axis(z, top, axis=1).round(3).tolist()
    return [
        {names[j]: v for j, v in zip(cols, row, strict=True)}
        for cols, row in zip(top.tolist(), values, strict=True)
    ]
