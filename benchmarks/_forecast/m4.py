"""M4 Hourly and Weekly: the series, the official test sets, Naive2 and the published accuracy tables.

Naive2 is the M4 organisers' benchmark: a naive forecast of the seasonally adjusted
series, re-seasonalised, where the adjustment is a classical multiplicative
decomposition applied only when the series passes the 90% autocorrelation test at
its frequency's season (bastion.timeseries.seasonality implements both).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bastion.timeseries.seasonality import seasonal_indices, seasonality_test

__all__ = ["FREQUENCIES", "M4", "Frequency", "load", "naive2", "published"]

M4 = Path(__file__).resolve().parents[3] / "shared" / "data" / "m4"


@dataclass(frozen=True)
class Frequency:
    name: str
    horizon: int
    m: int  # the season M4 uses for MASE and Naive2
    freq: str  # the pandas alias a user would pass


FREQUENCIES = {
    "Hourly": Frequency("Hourly", 48, 24, "h"),
    "Weekly": Frequency("Weekly", 13, 1, "W"),
}


def load(freq: Frequency, root: Path = M4) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Series ids, training histories and test actuals, in file order."""
    train = pd.read_csv(root / "Train" / f"{freq.name}-train.csv")
    test = pd.read_csv(root / "Test" / f"{freq.name}-test.csv")
    ids = train.iloc[:, 0].astype(str).tolist()
    histories = [row[~np.isnan(row)] for row in train.iloc[:, 1:].to_numpy(dtype=np.float64)]
    actuals = [row[: freq.horizon] for row in test.iloc[:, 1:].to_numpy(dtype=np.float64)]
    if test.iloc[:, 0].astype(str).tolist() != ids:
        raise ValueError(f"{freq.name}: train and test list different series")
    return ids, histories, actuals


def naive2(y: np.ndarray, horizon: int, m: int) -> np.ndarray:
    if m > 1 and seasonality_test(y, m):
        indices = seasonal_indices(y, m, multiplicative=True)
        adjusted = y / indices[np.arange(y.size) % m]
        return adjusted[-1] * indices[(y.size + np.arange(horizon)) % m]
    return np.repeat(y[-1], horizon)


def published(method: str, freq: Frequency, root: Path = M4) -> tuple[float, float, float] | None:
    """(sMAPE, MASE, OWA) of `method` from M4_point_accuracy_by_frequency.csv, if listed."""
    with (root / "M4_point_accuracy_by_frequency.csv").open() as handle:
        rows = list(csv.reader(handle))
    header = rows[1]
    for row in rows[2:]:
        if row and row[0] == method:
            cols = [i for i, name in enumerate(header) if name == freq.name]
            smape, mase, owa = (float(row[i]) for i in cols[:3])
            return smape, mase, owa
    return None
