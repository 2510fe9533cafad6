"""score_table end to end: scores, labels, contributions, contamination."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.timeseries import SeriesInputError
from servers.anomaly.table import score_table


def _rows(n: int = 300) -> list[dict[str, float]]:
    x = np.random.default_rng(1).normal(size=(n, 3))
    rows = [{"price": float(a), "qty": float(b), "discount": float(c)} for a, b, c in x]
    rows[min(42, n - 1)]["qty"] = 40.0
    return rows


def test_the_planted_row_is_flagged_and_explained_by_its_column() -> None:
    result = score_table(_rows())
    assert result["method"] == "lof"
    assert result["labels"][42] is True
    assert next(iter(result["contributions"][42])) == "qty"
    assert result["contributions"][42]["qty"] > 10
    assert len(result["scores"]) == len(result["labels"]) == len(result["contributions"]) == 300


def test_rows_as_a_csv_gives_them_find_the_planted_row_and_not_the_first_and_last() -> None:
    # An id column, numbers as text and R's NA, as rows read from a CSV arrive.
    rows: list[dict[str, object]] = [
        {"id": i, **{k: str(round(v, 3)) for k, v in row.items()}} for i, row in enumerate(_rows(200))
    ]
    rows[70]["price"] = "NA"
    result = score_table(rows)
    top = sorted(range(200), key=lambda i: -result["scores"][i])
    assert result["features"] == ["price", "qty", "discount"]
    assert top[0] == 42
    assert result["labels"][42] is True
    assert not result["labels"][0] and not result["labels"][199]


def test_contamination_flags_that_share_of_rows() -> None:
    result = score_table(_rows(), method="isolation_forest", contamination=0.05)
    assert result["anomalies"] == 15
    assert result["labels"][42]


@pytest.mark.parametrize("bad", [0, 0.6, -0.1, True])
def test_contamination_outside_0_to_half_is_refused(bad: object) -> None:
    with pytest.raises(SeriesInputError, match=r"`contamination` must be a share of rows in \(0, 0.5\]"):
        score_table(_rows(20), contamination=bad)  # type: ignore[arg-type]


def test_an_unknown_method_is_refused_with_the_choices() -> None:
    with pytest.raises(SeriesInputError, match="not one of: auto, isolation_forest, lof, robust_z"):
        score_table(_rows(20), method="svm")


def test_detail_anomalous_returns_only_the_flagged_rows_most_unusual_first() -> None:
    every = score_table(_rows(), method="isolation_forest", contamination=0.05)
    flagged = score_table(_rows(), method="isolation_forest", contamination=0.05, detail="anomalous")
    assert "scores" not in flagged and "labels" not in flagged and "contributions" not in flagged
    expected = sorted((i for i, hit in enumerate(every["labels"]) if hit), key=lambda i: -every["scores"][i])
    assert [f["row"] for f in flagged["flagged"]] == expected
    assert flagged["flagged"][0]["row"] == 42
    assert flagged["flagged"][0]["contributions"] == every["contributions"][42]
    assert [f["score"] for f in flagged["flagged"]] == [every["scores"][i] for i in expected]
    for key in ("method", "features", "threshold", "anomalies", "warnings"):
        assert flagged[key] == every[key]
    with pytest.raises(SeriesInputError, match="`detail` 'some' is not one of: all, anomalous"):
        score_table(_rows(20), detail="some")
