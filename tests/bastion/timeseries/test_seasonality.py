"""Autocorrelation, the M4 seasonality test, season detection and decomposition."""

from __future__ import annotations

import numpy as np

from bastion.timeseries import (
    acf,
    classical_decomposition,
    detect_season_length,
    seasonal_indices,
    seasonality_test,
)


def _seasonal(n: int, m: int, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10 + np.sin(np.arange(n) * 2 * np.pi / m) + rng.normal(scale=noise, size=n)


def test_acf_matches_the_direct_formula() -> None:
    y = np.random.default_rng(1).normal(size=200)
    x = y - y.mean()
    direct = [float(np.sum(x[k:] * x[:-k]) / np.sum(x * x)) for k in range(1, 6)]
    assert np.allclose(acf(y, 5), direct)


def test_a_seasonal_series_passes_the_m4_test_and_noise_does_not() -> None:
    assert seasonality_test(_seasonal(240, 12), 12)
    assert not seasonality_test(np.random.default_rng(2).normal(size=240), 12)


def test_the_test_needs_three_full_seasons() -> None:
    assert not seasonality_test(_seasonal(30, 12), 12)


def test_the_season_of_an_unlabelled_series_is_detected() -> None:
    assert detect_season_length(_seasonal(400, 24) + np.arange(400) * 0.01) == 24
    assert detect_season_length(np.random.default_rng(3).normal(size=400)) == 1


def test_multiplicative_indices_average_to_one_and_follow_the_pattern() -> None:
    y = np.tile([1.0, 2.0, 3.0, 2.0], 10) * 10
    idx = seasonal_indices(y, 4)
    assert np.isclose(idx.mean(), 1.0)
    assert np.argmax(idx) == 2
    assert classical_decomposition(y, 4).shape == y.shape


def test_no_season_means_neutral_components() -> None:
    y = np.arange(10.0) + 1
    assert np.all(classical_decomposition(y, 1) == 1.0)
    assert np.all(classical_decomposition(y, 1, multiplicative=False) == 0.0)
