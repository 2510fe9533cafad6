"""Rows to a numeric matrix: column choice, repairs and refusals."""

from __future__ import annotations

import math

import pytest

from bastion.timeseries import SeriesInputError
from servers.anomaly.table.columns import to_matrix


def test_numeric_columns_are_used_and_text_columns_left_out_with_a_warning() -> None:
    m = to_matrix([{"a": 1, "b": "x", "c": 2.0}, {"a": 2, "b": "y", "c": 3.5}], None)
    assert m.features == ["a", "c"]
    assert m.values.tolist() == [[1.0, 2.0], [2.0, 3.5]]
    assert "non-numeric columns were left out: b (e.g. 'x')" in m.warnings[0]


def test_numbers_given_as_text_are_numbers_and_missing_value_words_are_missing() -> None:
    rows = [
        {"temp": "12.5", "hum": 50, "city": "NA"},
        {"temp": 14, "hum": "NA", "city": "DE"},
        {"temp": " 1e1 ", "hum": "", "city": "NA"},
        {"temp": "NaN", "hum": 54, "city": "FR"},
    ]
    m = to_matrix(rows, None)
    assert m.features == ["temp", "hum"]
    assert m.values.tolist() == [[12.5, 50.0], [14.0, 52.0], [10.0, 52.0], [12.5, 54.0]]
    assert "non-numeric columns were left out: city (e.g. 'DE')." in m.warnings
    assert "numbers given as text were read as numbers: temp (e.g. '12.5')." in m.warnings
    assert "3 missing cells were filled with their column's median." in m.warnings
    assert to_matrix(rows, ["temp"]).values[:, 0].tolist() == [12.5, 14.0, 10.0, 12.5]


def test_columns_that_look_like_row_identifiers_are_left_out_unless_named() -> None:
    rows = [{"id": 7 + 3 * i, "row": i, "order_id": (i * 37) % 101, "v": (i * 5) % 7} for i in range(20)]
    m = to_matrix(rows, None)
    assert m.features == ["v"]
    assert (
        "columns that look like row identifiers were left out: id, row, order_id; name them in "
        "`features` to score them." in m.warnings
    )
    assert to_matrix(rows, ["id", "v"]).features == ["id", "v"]
    # Repeated values, or uneven steps under a plain name, are data.
    kept = to_matrix([{"hr": i % 24, "count": i * i, "humid": (i * 37) % 101} for i in range(30)], None)
    assert kept.features == ["hr", "count", "humid"]
    camel = to_matrix([{"customerId": (i * 37) % 101, "v": i % 5} for i in range(30)], None)
    assert camel.features == ["v"]


def test_a_named_text_column_is_an_error_naming_row_and_value() -> None:
    with pytest.raises(SeriesInputError, match=r"column 'b' is not numeric: rows\[1\] has 'oops'"):
        to_matrix([{"a": 1, "b": 2}, {"a": 2, "b": "oops"}], ["a", "b"])


def test_nulls_are_imputed_with_the_median_and_constant_columns_dropped() -> None:
    m = to_matrix([[1.0, 5.0, None], [2.0, 5.0, 4.0], [3.0, 5.0, 6.0]], ["x", "same", "z"])
    assert m.features == ["x", "z"]
    assert m.values[:, 1].tolist() == [5.0, 4.0, 6.0]
    assert any("1 missing cells" in w for w in m.warnings)
    assert any("constant columns" in w and "same" in w for w in m.warnings)


@pytest.mark.parametrize(
    ("rows", "features", "message"),
    [
        ([], None, "non-empty list"),
        ([{"a": math.inf}, {"a": 1}], None, "infinite"),
        ([[1, 2], [1]], None, r"`rows\[1\]` is not an array of 2 values"),
        ([[1, 2]], ["a"], "names 1 columns"),
        ([{"a": 1}, {"a": 1}], None, r"no numeric column varies: .*constant columns .* left out: a\)"),
        # Only text: the refusal names the column it left out, and why.
        (
            [{"a": "x"}, {"a": "y"}],
            None,
            r"nothing to score \(non-numeric columns were left out: a \(e\.g\. 'x'\)\)",
        ),
        (
            [{"a": 1, "b": 2}, {"a": 2, "b": 3}],
            ["a", "zzz"],
            "names 'zzz', which no row has; the rows' columns are: a, b",
        ),
        (["text"], None, "each row must be an object"),
        ([{"a": 1}], [], "non-empty list of column names"),
    ],
)
def test_unusable_tables_are_refused_clearly(
    rows: list[object], features: list[str] | None, message: str
) -> None:
    with pytest.raises(SeriesInputError, match=message):
        to_matrix(rows, features)


def test_too_many_rows_are_refused_naming_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import servers.anomaly.table.columns as columns

    monkeypatch.setattr(columns, "MAX_ROWS", 3)
    with pytest.raises(SeriesInputError, match="above the limit of 3"):
        to_matrix([{"a": i} for i in range(4)], None)
