"""Grouping flagged points into episodes."""

from __future__ import annotations

import numpy as np

from servers.anomaly.episodes import episodes


def test_nearby_flags_form_one_episode_with_its_peak_and_kind() -> None:
    flags = np.zeros(20, dtype=bool)
    flags[[3, 5, 12]] = True
    scores = np.zeros(20)
    scores[[3, 5, 12]] = [0.6, 0.8, 0.7]
    kinds = np.zeros(20, dtype=np.int64)
    kinds[12] = 2
    found = episodes(flags, scores, kinds, list(range(20)))
    assert found == [
        {"start": 3, "end": 5, "peak": 5, "peak_score": 0.8, "points": 2, "kind": "spike"},
        {"start": 12, "end": 12, "peak": 12, "peak_score": 0.7, "points": 1, "kind": "variance_change"},
    ]


def test_a_long_run_of_spikes_is_reported_as_a_level_shift() -> None:
    flags = np.ones(6, dtype=bool)
    found = episodes(flags, np.full(6, 0.7), np.zeros(6, dtype=np.int64), ["a", "b", "c", "d", "e", "f"])
    assert found[0]["kind"] == "level_shift"
    assert (found[0]["start"], found[0]["end"]) == ("a", "f")


def test_no_flags_no_episodes() -> None:
    assert episodes(np.zeros(5, dtype=bool), np.zeros(5), np.zeros(5, dtype=np.int64), list(range(5))) == []
