"""A published NAB detector rebuilt from its description, to check the scorer against NAB's results.

Windowed Gaussian (nab/detectors/gaussian): the anomaly score of a point is the two-sided
tail mass 1 - Q(|x - mean| / std) of a Gaussian fitted to a window of up to 6,400 earlier
values; once full, the window slides forward 100 points at a time. It is deterministic,
so its per-file NAB results (results/windowedGaussian/) must come out exactly.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["windowed_gaussian"]

WINDOW = 6400
STEP = 100


def _tail(x: float, mean: float, std: float) -> float:
    z = abs(x - mean) / std
    return 0.5 * math.erfc(z / math.sqrt(2))


def windowed_gaussian(values: np.ndarray) -> np.ndarray:
    scores = np.zeros(values.size)
    window: list[float] = []
    buffer: list[float] = []
    mean, std = 0.0, 1.0

    def refit() -> tuple[float, float]:
        m = float(np.mean(window))
        s = float(np.std(window))
        return m, (s if s != 0.0 else 0.000001)

    for i, x in enumerate(values.tolist()):
        if window:
            scores[i] = 1 - _tail(x, mean, std)
        if len(window) < WINDOW:
            window.append(x)
            mean, std = refit()
        else:
            buffer.append(x)
            if len(buffer) == STEP:
                window = window[STEP:] + buffer
                buffer = []
                mean, std = refit()
    return scores
