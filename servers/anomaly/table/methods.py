"""The three table methods, each returning scores in [0, 1] (higher = more anomalous).

- isolation_forest: scikit-learn's IsolationForest; the score is the original paper's
  2^(-E[h(x)] / c(n)), 0.5 being the "no distinct anomaly" level, so scores compare
  across datasets.
- lof: LocalOutlierFactor (20 neighbours); score = 1 - 1/LOF, 0 for an inlier with
  the density of its neighbours, 0.5 at twice their sparsity.
- robust_z: per column (x - median) / (1.4826 * MAD); score = z / (z + 3.5) for the
  largest |z| of the row, 0.5 at the classic 3.5 cut-off.

`auto` picks by shape: robust_z for one column or fewer than 50 rows (too few for a
model), lof up to 5,000 rows and 20 columns (local density, its strength on small
data), isolation_forest otherwise (linear in rows).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from bastion.timeseries import SeriesInputError

__all__ = ["DEFAULT_CUTOFF", "METHODS", "Method", "choose_method", "robust_z", "run_method"]

FloatArray = npt.NDArray[np.float64]
Method = Literal["isolation_forest", "lof", "robust_z"]
METHODS: tuple[Method, ...] = ("isolation_forest", "lof", "robust_z")
# Score above which a row is anomalous when no contamination is given.
DEFAULT_CUTOFF: dict[Method, float] = {"isolation_forest": 0.6, "lof": 1 - 1 / 1.5, "robust_z": 0.5}
LOF_MAX_ROWS = 50_000
Z_CUT = 3.5


def choose_method(rows: int, columns: int) -> Method:
    if columns == 1 or rows < 50:
        return "robust_z"
    if rows <= 5_000 and columns <= 20:
        return "lof"
    return "isolation_forest"


def robust_z(x: FloatArray) -> FloatArray:
    """Per-cell robust z-scores; a column with zero MAD falls back to its standard deviation."""
    median = np.median(x, axis=0)
    mad = np.median(np.abs(x - median), axis=0) * 1.4826
    std = x.std(axis=0)
    scale = np.where(mad > 0, mad, np.where(std > 0, std, 1.0))
    return (x - median) / scale


def _standardised(x: FloatArray) -> FloatArray:
    # Models see robustly scaled columns, so no unit dominates the distances or splits.
    return np.clip(robust_z(x), -1e6, 1e6)


def run_method(method: Method, x: FloatArray, contamination: float | None, z: FloatArray) -> FloatArray:
    n = x.shape[0]
    if method == "robust_z":
        top = np.abs(z).max(axis=1)
        return top / (top + Z_CUT)
    if method == "isolation_forest":
        from sklearn.ensemble import IsolationForest

        scaled = _standardised(x)
        # n_jobs=-1: scikit-learn scores the trees in parallel over the cores.
        forest = IsolationForest(
            n_estimators=100, max_samples=min(256, n), contamination="auto", random_state=0, n_jobs=-1
        )
        forest.fit(scaled)
        return np.asarray(-forest.score_samples(scaled), dtype=np.float64)
    if n > LOF_MAX_ROWS:
        raise SeriesInputError(
            f"lof compares every row with its neighbours and is limited to {LOF_MAX_ROWS} rows ({n} given); "
            "use method='isolation_forest' or 'auto'."
        )
    if n < 3:
        raise SeriesInputError("lof needs at least 3 rows; use method='robust_z'.")
    from sklearn.neighbors import LocalOutlierFactor

    lof = LocalOutlierFactor(n_neighbors=min(20, n - 1))
    lof.fit(_standardised(x))
    factor = -np.asarray(lof.negative_outlier_factor_, dtype=np.float64)
    return np.clip(1.0 - 1.0 / np.maximum(factor, 1e-12), 0.0, 1.0)
