"""The NAB corpus: data files, labelled windows and cost profiles, read from ../shared/data/nab."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CORPUS", "NabFile", "Profile", "load_corpus", "load_profiles"]

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


@dataclass
class NabFile:
    """One data file with its windows as inclusive (start, end) row indexes."""

    name: str
    timestamps: pd.DatetimeIndex
    values: np.ndarray
    windows: list[tuple[int, int]]


def load_profiles(root: Path = CORPUS) -> list[Profile]:
    raw = json.loads((root / "config" / "profiles.json").read_text())
    return [
        Profile(name, c["CostMatrix"]["tpWeight"], c["CostMatrix"]["fpWeight"], c["CostMatrix"]["fnWeight"])
        for name, c in raw.items()
    ]


def load_corpus(root: Path = CORPUS) -> list[NabFile]:
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    files: list[NabFile] = []
    for name in sorted(windows):
        frame = pd.read_csv(root / "data" / name)
        stamps = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
        limits: list[tuple[int, int]] = []
        for start, end in windows[name]:
            # NAB matches window edges to timestamps exactly.
            lo = stamps.get_loc(pd.Timestamp(start))
            hi = stamps.get_loc(pd.Timestamp(end))
            limits.append((int(lo), int(hi)))  # pyright: ignore[reportArgumentType]
        files.append(NabFile(name, stamps, frame["value"].to_numpy(dtype=np.float64), limits))
    return files
