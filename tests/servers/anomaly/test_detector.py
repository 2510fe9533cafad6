"""The causal detector: each deviation kind is caught, and scoring is streaming-consistent."""

from __future__ import annotations

import numpy as np
import pytest

from servers.anomaly.detector import KINDS, DetectorConfig, detect

FLOORS = (3.0, 3.0, 0.7, 3.0)


def _noise(n: int = 600, seed: int = 0) -> np.ndarray:
    return 10 + np.random.default_rng(seed).normal(size=n)


def _peak_kind(y: np.ndarray, season: int = 1) -> tuple[int, str, float]:
    found = detect(y, season, DetectorConfig(), FLOORS)
    at = int(np.argmax(found.score))
    return at, KINDS[int(found.kind[at])], float(found.score[at])


def test_a_spike_is_the_top_score_and_called_a_spike() -> None:
    y = _noise()
    y[400] += 12
    at, kind, score = _peak_kind(y)
    assert (at, kind) == (400, "spike")
    assert score > 0.6


def test_a_level_shift_is_caught_where_it_starts() -> None:
    y = _noise()
    y[400:] += 4
    at, kind, _ = _peak_kind(y)
    assert 400 <= at <= 412
    assert kind in ("level_shift", "spike")


def test_a_change_in_variance_is_caught() -> None:
    y = _noise()
    y[400:] = 10 + np.random.default_rng(5).normal(scale=6, size=200)
    at, _, score = _peak_kind(y)
    assert 400 <= at <= 470
    assert score > 0.55


def test_a_broken_seasonal_pattern_is_caught_by_the_seasonal_feature() -> None:
    t = np.arange(960)
    y = 10 + 5 * np.sin(t * 2 * np.pi / 48) + np.random.default_rng(1).normal(scale=0.2, size=t.size)
    y[700:724] = y[700]  # the pattern goes flat for half a cycle
    found = detect(y, 48, DetectorConfig(), FLOORS)
    assert found.score[700:730].max() > 0.52
    assert found.score[300:690].max() < found.score[700:730].max()


def test_scores_are_causal_so_appending_points_never_changes_earlier_ones() -> None:
    y = _noise(500)
    full = detect(y, 1, DetectorConfig(), FLOORS).score
    prefix = detect(y[:300], 1, DetectorConfig(), FLOORS).score
    assert np.allclose(full[:300], prefix)


@pytest.mark.parametrize("n", [10, 25])
def test_short_series_score_without_errors_and_the_warm_up_is_zero(n: int) -> None:
    found = detect(_noise(n), 1, DetectorConfig(), FLOORS)
    assert found.score.shape == (n,)
    assert np.all(found.score[: DetectorConfig().min_history] == 0)
    assert np.all((found.score >= 0) & (found.score < 1))
