"""Small pieces: names, type inference, the DSN vault, JSON values and settings."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

import pytest

from bastion.errors import ConfigError
from bastion.missing import MISSING_MARKERS
from servers.analytics.config import AnalyticsConfig
from servers.analytics.errors import InvalidNameError, SourceError
from servers.analytics.infer import infer_json_type, infer_text_type, text_hint
from servers.analytics.names import check_name, column_names
from servers.analytics.values import jsonable
from servers.analytics.vault import DsnVault


def test_headers_become_unique_safe_column_names() -> None:
    assert column_names(["Sales Amount", "sales-amount", "", "1st", "Ünïcode", "pg_x"]) == [
        "sales_amount",
        "sales_amount_2",
        "column_3",
        "c_1st",
        "unicode",
        "x_pg_x",
    ]


def test_names_are_checked_not_repaired() -> None:
    assert check_name("sales_2024") == "sales_2024"
    for bad in ["Sales", "1abc", "a-b", "bastion_x", "", "a" * 64, "é"]:
        with pytest.raises(InvalidNameError):
            check_name(bad)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "-2", ""], "bigint"),
        (["1", "2.5"], "numeric"),
        (["1e3", "0.1"], "numeric"),
        (["007", "12"], "text"),
        (["true", "F", "yes"], "boolean"),
        (["2024-01-01", "2024-02-29"], "date"),
        (["2024-01-01", "2024-01-01 10:00"], "timestamp"),
        (["2024-01-01T10:00:00Z", "2024-01-01T10:00:00+02:00"], "timestamptz"),
        (["2024-02-30"], "text"),
        (["03/04/2024"], "text"),
        (["2024/03/15", "2024/3/5", "2024-3-5"], "date"),
        (["2024.03.15 14:30", "2024-03-16"], "timestamp"),
        (["2024/02/30"], "text"),
        (["99999999999999999999"], "numeric"),
        ([""], "text"),
        (["1.5", "NA", "NaN", "", "2"], "numeric"),
        (["2024-01-01", "#N/A", "NULL"], "date"),
        (["true", "None"], "boolean"),
        (["NA", "N/A"], "text"),
        (["NA", "Namibia"], "text"),
        (["09:15", "23:59:59", "7:05:00", "12:00:00.25"], "time"),
        (["3:10", "12:30"], "text"),  # a one-digit hour without seconds: a score as likely as a time
        (["24:00", "10:61"], "text"),
        (["09:15", "2024-01-01"], "text"),
    ],
)
def test_csv_types_are_the_narrowest_that_fit_every_sample(values: list[str], expected: str) -> None:
    assert infer_text_type(values) == expected


def test_with_a_decimal_comma_the_point_groups_thousands() -> None:
    assert infer_text_type(["3,5", "-1.234,25", "7"], decimal=",") == "numeric"
    assert infer_text_type(["1.234", "12"], decimal=",") == "bigint"
    assert infer_text_type(["3,5", "1.5"], decimal=",") == "text"  # a point that cannot group thousands
    assert infer_text_type(["3,5", "NA"], decimal=",") == "numeric"
    assert infer_text_type(["3,5"]) == "text"


def test_a_text_column_that_looks_like_numbers_says_why() -> None:
    comma = text_hint(["3,5", "1.234,5", "7"], MISSING_MARKERS, ".")
    assert comma is not None and "decimal comma ('1.234,5'): load it with decimal=','" in comma
    numbers = [str(i) for i in range(30)]
    odd = text_hint([*numbers, "?", "?", "-"], MISSING_MARKERS, ".")
    assert odd is not None and "holds numbers but for '-', '?'" in odd and "null_values" in odd
    assert text_hint([*numbers[:5], "?"], MISSING_MARKERS, ".") is None  # too few numbers to tell
    assert text_hint(["Paris", "Rome"], MISSING_MARKERS, ".") is None
    assert text_hint(["3,5"], MISSING_MARKERS, ",") is None


def test_marks_between_thousands_are_read_when_named() -> None:
    assert infer_text_type(["1,234.50", "12", "-1,234,567"], thousands=",") == "numeric"
    assert infer_text_type(["1,234", "999"], thousands=",") == "bigint"
    assert infer_text_type(["1,23"], thousands=",") == "text"  # not a group of three
    assert infer_text_type(["1 234,5", "1\u00a0234,5", "3,5"], decimal=",", thousands=" ") == "numeric"
    assert infer_text_type(["1'234.50", "1\u2019234.50"], thousands="'") == "numeric"
    assert infer_text_type(["1,234.50"]) == "text"


def test_a_column_of_numbers_with_commas_says_which_option_reads_it() -> None:
    grouped = text_hint(["1,234.50", "12", "7.5"], MISSING_MARKERS, ".")
    assert (
        grouped == "looks like numbers with commas between thousands ('1,234.50'): load it with thousands=','"
    )
    either = text_hint(["1,234", "12"], MISSING_MARKERS, ".")
    assert either is not None and "thousands=',' if they group thousands, or decimal=','" in either
    assert text_hint(["1,234.50"], MISSING_MARKERS, ".", thousands=",") is None


def test_dates_written_day_or_month_first_need_their_order() -> None:
    assert infer_text_type(["15/03/2024", "1.4.2024"], date_order="DMY") == "date"
    assert infer_text_type(["03/15/2024", "3/16/2024 2:30 PM"], date_order="MDY") == "timestamp"
    assert infer_text_type(["15/03/2024"], date_order="MDY") == "text"  # no 15th month
    assert infer_text_type(["15-03-2024 25:00"], date_order="DMY") == "text"
    assert infer_text_type(["15/03/2024"]) == "text"


def test_a_text_column_of_dates_says_which_order_to_pass() -> None:
    day_first = text_hint(["01/02/2024", "15/03/2024"], MISSING_MARKERS, ".")
    assert day_first == "looks like dates written day first, as '15/03/2024': load it with date_order='DMY'"
    month_first = text_hint(["03/15/2024 2:30 PM"], MISSING_MARKERS, ".")
    assert month_first is not None and "month first" in month_first and "date_order='MDY'" in month_first
    either = text_hint(["03/04/2024"], MISSING_MARKERS, ".")
    assert either is not None and "date_order='DMY' (15/03/2024) or date_order='MDY'" in either
    # The wrong order given: the values say which one reads them.
    wrong = text_hint(["15/03/2024"], MISSING_MARKERS, ".", "MDY")
    assert wrong is not None and "date_order='DMY'" in wrong
    assert text_hint(["15/03/2024", "03/15/2024"], MISSING_MARKERS, ".") is None  # no one order


def test_the_words_for_a_missing_value_can_be_replaced() -> None:
    assert infer_text_type(["1", "?", "NA"], frozenset({"?"})) == "text"
    assert infer_text_type(["1", "?"], frozenset({"?"})) == "bigint"
    assert infer_text_type(["1", "NA"], frozenset()) == "text"


def test_json_types_follow_the_json_values() -> None:
    assert infer_json_type([1, None, 2]) == "bigint"
    assert infer_json_type([1, 2.5]) == "numeric"
    assert infer_json_type(["12", "x"]) == "text"
    assert infer_json_type(["2024-01-01"]) == "date"
    assert infer_json_type([{"a": 1}, [1]]) == "jsonb"
    assert infer_json_type([True, False]) == "boolean"


def test_the_vault_binds_a_dsn_to_its_source_and_to_the_instance_key() -> None:
    key = secrets.token_bytes(32)
    vault = DsnVault(key)
    sealed = vault.seal("sales", "postgresql://u:hunter2@db/x")
    assert b"hunter2" not in sealed
    assert vault.open("sales", sealed) == "postgresql://u:hunter2@db/x"
    with pytest.raises(SourceError, match="cannot be decrypted"):
        vault.open("other", sealed)
    with pytest.raises(SourceError, match="cannot be decrypted"):
        DsnVault(secrets.token_bytes(32)).open("sales", sealed)
    with pytest.raises(SourceError, match="damaged"):
        vault.open("sales", b"\x02" + sealed[1:])


def test_values_become_plain_json() -> None:
    assert jsonable(Decimal("10.50")) == 10.5
    assert jsonable(Decimal("12")) == 12
    assert jsonable(Decimal("NaN")) == "NaN"
    assert jsonable(dt.date(2024, 1, 2)) == "2024-01-02"
    assert jsonable(dt.timedelta(minutes=1)) == 60.0
    assert jsonable(b"\x01\xff") == "\\x01ff"
    assert jsonable([Decimal("1.5"), {"a": dt.time(1, 2)}]) == [1.5, {"a": "01:02:00"}]
    assert jsonable(float("inf")) == "Infinity"
    assert jsonable(float("-inf")) == "-Infinity"
    assert jsonable(float("nan")) == "NaN"
    assert jsonable(Decimal(2**64 - 1)) == 2**64 - 1
    assert jsonable(Decimal(2**64)) == str(2**64)
    assert jsonable(Decimal("1e400")) == "1E+400"


def test_limits_are_read_from_the_environment_and_checked() -> None:
    config = AnalyticsConfig.from_environ({"BASTION_ANALYTICS_STATEMENT_TIMEOUT_MS": "1500"})
    assert config.statement_timeout_ms == 1500
    with pytest.raises(ConfigError, match="BASTION_ANALYTICS_MAX_ROWS='many'"):
        AnalyticsConfig.from_environ({"BASTION_ANALYTICS_MAX_ROWS": "many"})
    with pytest.raises(ConfigError, match="expected a positive integer"):
        AnalyticsConfig(max_result_bytes=0)
