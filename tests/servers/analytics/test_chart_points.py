"""Reducing a long result to the points a chart inlines (`servers.analytics.chart_points`)."""

from __future__ import annotations

import pytest

from servers.analytics import chart_points


@pytest.mark.parametrize(
    ("span", "max_bins", "step"),
    [(49, 20, 5), (100, 10, 10), (0.9, 20, 0.05), (28_618, 20, 2_000), (1, 20, 0.05), (0, 20, 1)],
)
def test_bin_steps_are_one_two_or_five_times_a_power_of_ten(span: float, max_bins: int, step: float) -> None:
    assert chart_points.nice_step(span, max_bins) == pytest.approx(step)


def test_each_series_keeps_its_ends_and_extremes_in_x_order() -> None:
    rows = [{"t": f"2024-01-01T{h:02d}:00:00", "s": s, "v": (h * 7) % 11} for s in "ab" for h in range(24)]
    rows[30]["v"] = 99  # series b, 06:00
    rows.reverse()  # the result's order is not x order
    kept, how = chart_points.line_points(rows, "t", "v", "s", limit=16)
    assert len(kept) <= 16
    for series in "ab":
        mine = [r for r in kept if r["s"] == series]
        assert mine[0]["t"] == "2024-01-01T00:00:00" and mine[-1]["t"] == "2024-01-01T23:00:00"
        assert [r["t"] for r in mine] == sorted(r["t"] for r in mine)
        assert min(r["v"] for r in mine) == 0
    assert {"t": "2024-01-01T06:00:00", "s": "b", "v": 99} in kept
    assert how.startswith("48 rows drawn as ")


def test_times_with_different_offsets_are_ordered_by_instant() -> None:
    rows = [
        {"t": "2024-01-01T12:00:00+02:00", "v": 1},  # 10:00 UTC
        {"t": "2024-01-01T11:00:00+00:00", "v": 2},
        {"t": "2024-01-01T09:30:00-00:30", "v": 3},  # 10:00 UTC too
        {"t": "2024-01-01T09:00:00+00:00", "v": 4},
        {"t": "2024-01-01T13:00:00+00:00", "v": 5},
    ]
    kept, _ = chart_points.line_points(rows, "t", "v", None, limit=4)
    assert kept[0]["v"] == 4 and kept[-1]["v"] == 5


def test_rows_a_line_cannot_draw_are_left_out_and_too_many_series_are_cut() -> None:
    rows = [{"x": i, "y": "NaN" if i % 2 else i} for i in range(10)] + [{"x": None, "y": 1}]
    kept, _ = chart_points.line_points(rows, "x", "y", None, limit=4)
    assert all(isinstance(r["y"], int) and r["x"] is not None for r in kept)
    blank, why = chart_points.line_points([{"x": None, "y": 1}] * 9, "x", "y", None, limit=4)
    assert blank == [] and why == "9 rows, none with an 'x' and a number in 'y' to draw"
    many = [{"x": i, "y": i, "s": i} for i in range(10)]
    cut, how = chart_points.line_points(many, "x", "y", "s", limit=8)
    assert cut == many[:8]
    assert how == "first 8 of 10 rows (10 series)"


def test_bins_count_every_number_and_skip_what_is_not_one() -> None:
    rows = [{"v": v} for v in [0.1, 0.2, 0.25, 0.9, None, "NaN", "Infinity", True]]
    binned, how = chart_points.bins(rows, "v", "count", max_bins=4)
    assert binned == [
        {"v": 0, "v_end": 0.2, "count": 1},
        {"v": 0.2, "v_end": 0.4, "count": 2},
        {"v": 0.4, "v_end": 0.6, "count": 0},
        {"v": 0.6, "v_end": 0.8, "count": 0},
        {"v": 0.8, "v_end": 1, "count": 1},
    ]
    assert how == "4 values of 8 rows binned by 0.2"
    on_edges, _ = chart_points.bins([{"v": v} for v in (0.0, 0.2, 0.4, 0.6, 0.8)], "v", "count", max_bins=4)
    assert [b["count"] for b in on_edges] == [1, 1, 1, 1, 1]
    per_series, _ = chart_points.bins(
        [{"v": v, "s": s} for v, s in [(1, "a"), (9, "b"), (2, "a")]], "v", "n", "s", 2
    )
    assert per_series == [
        {"v": 0, "v_end": 5, "n": 2, "s": "a"},
        {"v": 5, "v_end": 10, "n": 0, "s": "a"},
        {"v": 0, "v_end": 5, "n": 0, "s": "b"},
        {"v": 5, "v_end": 10, "n": 1, "s": "b"},
    ]
    nothing, why = chart_points.bins([{"v": None}], "v", "count")
    assert nothing == [] and "none with a number" in why


def test_counts_follow_first_appearance_per_category_and_series() -> None:
    rows = [{"k": k, "s": s} for k, s in ["bx", "ay", "bx", "by", "ay", "bx"]]
    counted, how = chart_points.counts(rows, "k", "s", "n", limit=10)
    assert counted == [
        {"k": "b", "s": "x", "n": 3},
        {"k": "a", "s": "y", "n": 2},
        {"k": "b", "s": "y", "n": 1},
    ]
    assert how == "6 rows counted into 3 bars"
    first_two, how = chart_points.counts(rows, "k", "s", "n", limit=2)
    assert len(first_two) == 2 and how.endswith("the first 2 drawn")


def test_a_scatter_sample_is_even_and_keeps_each_axis_extremes() -> None:
    rows = [{"a": i, "b": (i * 37) % 1000} for i in range(1000)]
    rows[555]["b"] = 5000
    kept, how = chart_points.scatter_sample(rows, "a", "b", limit=50)
    assert len(kept) <= 50
    assert {0, 999} <= {r["a"] for r in kept}
    assert 5000 in {r["b"] for r in kept} and 0 in {r["b"] for r in kept}
    assert how.startswith("1,000 rows sampled to ")
