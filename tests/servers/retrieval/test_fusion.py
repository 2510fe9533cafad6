"""Fusion of the keyword and vector rankings."""

from __future__ import annotations

import pytest

from servers.retrieval.fusion import rrf, weighted


def test_rrf_rewards_chunks_both_rankers_agree_on() -> None:
    fused = rrf([(1, 9.0), (2, 5.0), (3, 1.0)], [(4, 0.9), (2, 0.8), (5, 0.7)], k=60)
    assert [c for c, _ in fused][:1] == [2]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 62)
    assert {c for c, _ in fused} == {1, 2, 3, 4, 5}


def test_weighted_fusion_mixes_scaled_scores_by_the_keyword_weight() -> None:
    keyword = [(1, 10.0), (2, 5.0)]
    vector = [(2, 0.9), (3, 0.5)]
    assert [c for c, _ in weighted(keyword, vector, keyword_weight=1.0)][:2] == [1, 2]
    assert next(c for c, _ in weighted(keyword, vector, keyword_weight=0.0)) == 2
    mixed = dict(weighted(keyword, vector, keyword_weight=0.5))
    assert mixed[2] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    assert mixed[3] == pytest.approx(0.0)
    assert weighted([], [], keyword_weight=0.5) == []
