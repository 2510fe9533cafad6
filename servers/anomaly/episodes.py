"""Anomalous points grouped into episodes: where each starts and ends, how bad, what kind.

Flagged points closer than `max_gap` steps belong to one episode, so a burst reads as
one event rather than a dozen. The kind is the one that dominated the episode's peak:
spike (one or two points), level_shift, variance_change or seasonal; a "spike" that
lasts longer than a few points is reported as a level shift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from servers.anomaly.detector import KINDS

__all__ = ["MAX_GAP", "episodes"]

MAX_GAP = 3
SPIKE_MAX_POINTS = 3


def episodes(
    flags: npt.NDArray[np.bool_],
    scores: npt.NDArray[np.float64],
    kinds: npt.NDArray[np.int64],
    labels: list[Any],
    max_gap: int = MAX_GAP,
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    positions = np.flatnonzero(flags)
    if positions.size == 0:
        return found
    breaks = np.flatnonzero(np.diff(positions) > max_gap)
    starts = np.r_[positions[0], positions[breaks + 1]]
    ends = np.r_[positions[breaks], positions[-1]]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        peak = start + int(np.argmax(scores[start : end + 1]))
        kind = KINDS[int(kinds[peak])]
        if kind == "spike" and end - start + 1 > SPIKE_MAX_POINTS:
            kind = "level_shift"
        found.append(
            {
                "start": labels[start],
                "end": labels[end],
                "peak": labels[peak],
                "peak_score": round(float(scores[peak]), 4),
                "points": int(np.sum(flags[start : end + 1])),
                "kind": kind,
            }
        )
    return found
