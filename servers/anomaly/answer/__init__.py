"""Answer risk: sentences, grounding against cited sources, PII, and the combined risk."""

from __future__ import annotations

from servers.anomaly.answer.risk import score_answer

__all__ = ["score_answer"]
