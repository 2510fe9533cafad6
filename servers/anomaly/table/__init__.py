"""Tabular anomaly scoring: rows to a numeric matrix, a method, scores and contributions."""

from __future__ import annotations

from servers.anomaly.table.scoring import score_table

__all__ = ["score_table"]
