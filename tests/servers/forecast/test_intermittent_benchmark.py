"""benchmarks/forecast_intermittent.py runs as documented and simulates what it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.forecast_intermittent import HISTORY, HORIZON, KINDS, simulate
from servers.forecast.candidates import is_intermittent

ROOT = Path(__file__).resolve().parents[3]


def test_every_kind_is_intermittent_in_its_history_and_dying_demand_stops() -> None:
    rng = np.random.default_rng(0)
    for kind in KINDS:
        y = simulate(kind, rng)
        assert y.size == HISTORY + HORIZON and is_intermittent(y[:HISTORY])
        if kind == "dying":
            assert not y[HISTORY - 10 :].any()


def test_the_benchmark_reports_every_method(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/forecast_intermittent.py", "--series", "8", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "| auto by OWA |" in run.stdout
    methods = json.loads(out.read_text())["methods"]
    assert {"auto", "auto by OWA", "CrostonSBA", "TSB", "IMAPA", "Naive"} == set(methods)
    assert all(m["rmsse_mean"] >= 0 and set(m["by_kind"]) == set(KINDS) for m in methods.values())
