"""Seasonality: autocorrelation, the M4 seasonality test, season detection, decomposition.

`seasonality_test` is the one the M4 competition used to decide whether Naive2 (and
Theta) deseasonalise a series: the autocorrelation at the season lag must exceed the
90% one-sided limit 1.645 * sqrt((1 + 2 * sum_{k<m} r_k^2) / n). `classical_decomposition`
is R's `decompose()`: a centred moving average (2 x m for even m) as the trend, and
seasonal indices as per-position means of the detrended series, normalised.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bastion.timeseries.validation import unit_scale

__all__ = [
    "acf",
    "classical_decomposition",
    "detect_season_length",
    "seasonal_indices",
    "seasonality_test",
]

FloatArray = npt.NDArray[np.float64]


def acf(y: FloatArray, max_lag: int) -> FloatArray:
    """Sample autocorrelations r_1..r_max_lag (index 0 is lag 1), computed by FFT."""
    # r is a ratio: bring the values near 1 first, exactly, so that squares of extreme
    # magnitudes (1e200, 1e-200) neither overflow nor vanish.
    y = y / unit_scale(y)
    x = y - y.mean()
    n = x.size
    denom = float(np.dot(x, x))
    if denom == 0.0 or max_lag < 1:
        return np.zeros(max(max_lag, 0))
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    full = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]
    return np.asarray(full[1:] / denom, dtype=np.float64)


def seasonality_test(y: FloatArray, m: int) -> bool:
    """The M4 90% autocorrelation test for seasonality at lag `m` (needs 3 full seasons)."""
    if m <= 1 or y.size < 3 * m:
        return False
    r = acf(y, m)
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(r[: m - 1] ** 2)) / y.size)
    return bool(abs(r[m - 1]) > limit)


def detect_season_length(y: FloatArray, max_season: int = 400) -> int:
    """The most pronounced seasonal lag of a series with no timestamps, or 1.

    Candidates are local maxima of the autocorrelation of the differenced series (the
    difference removes a trend that would make every lag look correlated) that pass
    the M4 test on the series itself; the strongest wins. Testing many lags would find
    a "season" in pure noise, so a peak must also reach max(0.3, 4 / sqrt(n)).
    """
    if y.size < 12:
        return 1
    diffed = np.diff(y)
    top = min(max_season, diffed.size // 3)
    if top < 2:
        return 1
    r = acf(diffed, top)
    best, best_r = 1, max(0.3, 4 / np.sqrt(diffed.size))
    for lag in range(2, top):
        here = r[lag - 1]
        if here > r[lag - 2] and here >= r[lag] and here > best_r and seasonality_test(y, lag):
            best, best_r = lag, float(here)
    return best


def classical_decomposition(y: FloatArray, m: int, multiplicative: bool = True) -> FloatArray:
    """Seasonal component of `y` (same length), as R's decompose(); ones (or zeros) when m <= 1."""
    neutral = 1.0 if multiplicative else 0.0
    if m <= 1 or y.size < 2 * m:
        return np.full(y.size, neutral)
    indices = seasonal_indices(y, m, multiplicative)
    return indices[np.arange(y.size) % m]


def seasonal_indices(y: FloatArray, m: int, multiplicative: bool = True) -> FloatArray:
    """The m seasonal indices of `y`, position 0 being the season of `y[0]`."""
    weights = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    half = weights.size // 2
    trend = np.full(y.size, np.nan)
    smoothed = np.convolve(y, weights, mode="valid")
    trend[half : half + smoothed.size] = smoothed
    with np.errstate(divide="ignore", invalid="ignore"):
        detrended = y / trend if multiplicative else y - trend
    positions = np.arange(y.size) % m
    figure = np.array([np.nanmean(detrended[positions == i]) for i in range(m)])
    if multiplicative:
        return figure / figure.mean()
    return figure - figure.mean()
