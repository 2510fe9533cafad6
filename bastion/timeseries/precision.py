"""The precision values computed from a series (forecasts, expected values, bands) are
reported with: a hundred-thousandth of the series' spread, far finer than any interval or
band, without the sixteen digits of noise a float64 prints (2167.41, not
2167.4145635088225)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["output_decimals"]

RESOLUTION = 1e-5


def output_decimals(history: npt.NDArray[np.float64]) -> int:
    """Decimal places that resolve `RESOLUTION` of the history's spread (of its magnitude
    when it is flat); never fewer than 0, so whole numbers stay whole."""
    finite = history[np.isfinite(history)]
    spread = float(np.ptp(finite)) if finite.size else 0.0
    if spread == 0.0:
        spread = float(np.max(np.abs(finite))) if finite.size else 0.0
    if spread == 0.0:
        return 0
    return max(0, -math.floor(math.log10(spread * RESOLUTION)))
