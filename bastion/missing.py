"""The words data exports write for a missing value.

R writes `NA`, pandas and NumPy `NaN`/`nan`, spreadsheets `#N/A`, SQL dumps `NULL`:
the defaults of pandas' `read_csv`, but for its rarest. The analytics loader reads them
as NULL in CSV columns of numbers, dates or booleans; the anomaly server reads them as
missing cells in numeric columns. Elsewhere they are text like any other (`NA` may be
Namibia).
"""

from __future__ import annotations

__all__ = ["MISSING_MARKERS"]

MISSING_MARKERS = frozenset(
    {"NA", "N/A", "n/a", "#N/A", "#NA", "<NA>", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None"}
)
