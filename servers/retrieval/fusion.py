"""Fusing the keyword and vector rankings into one.

- `rrf`: reciprocal rank fusion, `sum(1 / (rrf_k + rank))` over the two lists;
- `weighted`: a convex mix of the scores, each scaled to [0, 1] within its own
  candidate list (BM25 divided by its best score, cosine min-max), weighted by
  `keyword_weight`. Tuned on SciFact's train queries (see docs/benchmarks/retrieval.md).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["rrf", "weighted"]

Ranking = Sequence[tuple[int, float]]


def rrf(keyword: Ranking, vector: Ranking, *, k: int) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking in (keyword, vector):
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def weighted(keyword: Ranking, vector: Ranking, *, keyword_weight: float) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    if keyword:
        best = max(score for _, score in keyword) or 1.0
        for chunk_id, score in keyword:
            scores[chunk_id] = keyword_weight * score / best
    if vector:
        high = max(score for _, score in vector)
        low = min(score for _, score in vector)
        span = (high - low) or 1.0
        for chunk_id, score in vector:
            scores[chunk_id] = scores.get(chunk_id, 0.0) + (1 - keyword_weight) * (score - low) / span
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
