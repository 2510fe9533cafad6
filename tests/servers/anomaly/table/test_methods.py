"""The three table methods and the automatic choice."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.timeseries import SeriesInputError
from servers.anomaly.table.methods import choose_method, robust_z, run_method


def _data(n: int = 400, d: int = 4) -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(n, d))
    x[7] = [8, -8, 8, -8][:d]
    return x


@pytest.mark.parametrize(
    ("rows", "columns", "method"),
    [(30, 5, "robust_z"), (10_000, 1, "robust_z"), (1_000, 5, "lof"), (1_000, 50, "isolation_forest"),
     (100_000, 10, "isolation_forest")],
)  # fmt: skip
def test_auto_picks_by_shape(rows: int, columns: int, method: str) -> None:
    assert choose_method(rows, columns) == method


@pytest.mark.parametrize("method", ["isolation_forest", "lof", "robust_z"])
def test_each_method_scores_the_planted_outlier_highest_in_0_1(method: str) -> None:
    x = _data()
    scores = run_method(method, x, None, robust_z(x))  # type: ignore[arg-type]
    assert int(np.argmax(scores)) == 7
    assert np.all((scores >= 0) & (scores <= 1))


def test_robust_z_survives_a_column_with_zero_mad() -> None:
    x = np.array([[1.0], [1.0], [1.0], [1.0], [9.0]])
    assert np.all(np.isfinite(robust_z(x)))


def test_lof_refuses_tables_too_large_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import servers.anomaly.table.methods as methods

    monkeypatch.setattr(methods, "LOF_MAX_ROWS", 100)
    x = _data(200)
    with pytest.raises(SeriesInputError, match=r"limited to 100 rows.*isolation_forest"):
        run_method("lof", x, None, robust_z(x))
