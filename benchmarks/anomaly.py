"""NAB scores of `score_series`, and `score_table` speed on 100,000 rows x 10 features.

1. Scorer check (before trusting it): NAB's published detectors are re-normalised
   from their per-file result files and compared with results/final_results.json; the
   deterministic Windowed Gaussian detector is rebuilt, run on the corpus and scored
   by our scorer, which must reproduce NAB's per-file results (score, TP, FP, FN, TN)
   and the published final scores; the null detector must score 0.
2. `score_series` (default sensitivity) runs on every NAB file, with its timestamps,
   and is scored on the standard, reward-low-FP and reward-low-FN profiles, each with
   its threshold optimised over the corpus as NAB does.
3. `score_table` on 100,000 random rows x 10 features (1% planted outliers), `auto`.

Usage: python benchmarks/anomaly.py [--skip-check] [--skip-nab] [--skip-table] [--json FILE]
Prints a Markdown report; docs/benchmarks/anomaly.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bastion.timeseries import format_timestamps
from benchmarks._nab.corpus import CORPUS, NabFile, load_corpus, load_profiles
from benchmarks._nab.reference import windowed_gaussian
from benchmarks._nab.scorer import score_corpus
from servers.anomaly.series import score_series
from servers.anomaly.table import score_table

PUBLISHED = {
    "numenta": "Numenta HTM",
    "earthgeckoSkyline": "Skyline (earthgecko)",
    "randomCutForest": "Random Cut Forest",
}


def _py2_str(values: np.ndarray) -> np.ndarray:
    # NAB's result files were written by Python 2, whose str() kept 12 significant digits.
    return np.array([float(f"{v:.12g}") for v in values.tolist()])


def check_normalisation() -> list[dict[str, Any]]:
    """Our normalisation of each published detector's per-file totals vs final_results.json."""
    final = json.loads((CORPUS / "results" / "final_results.json").read_text())
    windows = sum(
        len(f) for f in json.loads((CORPUS / "labels" / "combined_windows.json").read_text()).values()
    )
    rows = []
    for profile in load_profiles():
        null = pd.read_csv(CORPUS / "results" / "null" / f"null_{profile.name}_scores.csv")["Score"].iloc[-1]
        for detector in sorted(final):
            path = CORPUS / "results" / detector / f"{detector}_{profile.name}_scores.csv"
            if not path.exists() or detector == "null":
                continue
            raw = float(pd.read_csv(path)["Score"].iloc[-1])
            ours = 100 * (raw - null) / (profile.tp * windows - null)
            rows.append(
                {
                    "detector": detector,
                    "profile": profile.name,
                    "ours": ours,
                    "published": final[detector][profile.name],
                }
            )
    return rows


def check_reference(files: list[NabFile]) -> dict[str, Any]:
    """Windowed Gaussian rebuilt and scored by our scorer vs NAB's per-file results and final scores."""
    started = time.perf_counter()
    scores = [_py2_str(windowed_gaussian(f.values)) for f in files]
    final = json.loads((CORPUS / "results" / "final_results.json").read_text())["windowedGaussian"]
    out: dict[str, Any] = {"seconds": 0.0, "profiles": {}}
    for profile in load_profiles():
        result = score_corpus(files, scores, profile)
        published = pd.read_csv(
            CORPUS / "results" / "windowedGaussian" / f"windowedGaussian_{profile.name}_scores.csv"
        )
        published = published[published["File"].notna()].set_index("File")
        mismatched = [
            fs.name
            for fs in result.files
            if abs(float(published.loc[fs.name, "Score"]) - fs.score) > 1e-6
            or tuple(int(published.loc[fs.name, c]) for c in ("TP", "FP", "FN", "TN"))
            != (fs.tp, fs.fp, fs.fn, fs.tn)
        ]
        null = score_corpus(files, [np.zeros(f.values.size) for f in files], profile, threshold=1.1)
        out["profiles"][profile.name] = {
            "threshold": result.threshold,
            "ours": result.normalised,
            "published": final[profile.name],
            "files_mismatched": mismatched,
            "null": null.normalised,
        }
    out["seconds"] = time.perf_counter() - started
    return out


def run_nab(files: list[NabFile], sensitivity: str) -> dict[str, Any]:
    started = time.perf_counter()
    scores = []
    for f in files:
        labels = format_timestamps(f.timestamps)
        result = score_series(f.values.tolist(), labels, sensitivity=sensitivity)
        # Repeated timestamps were merged into one point: each NAB row gets its point's score.
        by_label = {p["ds"]: p["score"] for p in result["points"]}
        scores.append(np.array([by_label[label] for label in labels]))
    seconds = time.perf_counter() - started
    profiles = {}
    for profile in load_profiles():
        result = score_corpus(files, scores, profile)
        profiles[profile.name] = {
            "score": result.normalised,
            "threshold": result.threshold,
            "tp": sum(fs.tp for fs in result.files),
            "fp": sum(fs.fp for fs in result.files),
        }
    return {"seconds": seconds, "points": sum(f.values.size for f in files), "profiles": profiles}


def run_table(rows: int, features: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features))
    planted = rng.choice(rows, size=rows // 100, replace=False)
    x[planted] += rng.choice([-6.0, 6.0], size=(planted.size, features)) * (
        rng.random((planted.size, features)) < 0.3
    )
    names = [f"f{j}" for j in range(features)]
    data = [dict(zip(names, r, strict=True)) for r in x.tolist()]
    timings, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = score_table(data)
        timings.append(time.perf_counter() - started)
    assert result is not None
    truth = np.zeros(rows, dtype=bool)
    truth[planted] = True
    at_share = score_table(data, contamination=0.01)
    return {
        "rows": rows,
        "features": features,
        "method": result["method"],
        "seconds": timings,
        "median_seconds": statistics.median(timings),
        "default": _quality(np.array(result["labels"]), truth),
        "contamination_0.01": _quality(np.array(at_share["labels"]), truth),
    }


def _quality(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    hits = float((flagged & truth).sum())
    return {
        "flagged": int(flagged.sum()),
        "precision": hits / max(flagged.sum(), 1),
        "recall": hits / truth.sum(),
    }


def report(results: dict[str, Any]) -> str:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores visible, Python {platform.python_version()}",
        "",
    ]
    if "normalisation" in results:
        rows = results["normalisation"]
        exact = [r for r in rows if abs(r["ours"] - r["published"]) < 1e-6]
        others = [
            f"{r['detector']}/{r['profile']} ({r['ours']:.2f} vs {r['published']:.2f})"
            for r in rows
            if r not in exact
        ]
        lines += [
            f"Normalisation of published per-file totals: {len(exact)} of {len(rows)} (detector, profile) "
            f"pairs reproduce final_results.json to 1e-6; differing: {', '.join(others) or 'none'}.",
            "",
        ]
    if "reference" in results:
        lines += [
            "| Windowed Gaussian | threshold | ours | published | files mismatched | null |",
            "|---|---|---|---|---|---|",
        ]
        for name, p in results["reference"]["profiles"].items():
            lines.append(
                f"| {name} | {p['threshold']:.6g} | {p['ours']:.4f} | {p['published']:.4f} | "
                f"{len(p['files_mismatched'])} of 58 | {p['null']:.1f} |"
            )
        lines += [f"(reference detector and scoring: {results['reference']['seconds']:.0f} s)", ""]
    if "nab" in results:
        nab = results["nab"]
        lines += [
            "| score_series on NAB | score | threshold | TP points | FP points |",
            "|---|---|---|---|---|",
        ]
        for name, p in nab["profiles"].items():
            lines.append(f"| {name} | {p['score']:.1f} | {p['threshold']:.4f} | {p['tp']} | {p['fp']} |")
        lines += [f"({nab['points']} points scored in {nab['seconds']:.1f} s)", ""]
        final = json.loads((CORPUS / "results" / "final_results.json").read_text())
        lines += ["Published (final_results.json):", ""]
        for key, label in PUBLISHED.items():
            if key in final:
                p = final[key]
                lines.append(
                    f"- {label}: standard {p['standard']:.1f}, low FP {p['reward_low_FP_rate']:.1f}, "
                    f"low FN {p['reward_low_FN_rate']:.1f}"
                )
        lines.append("")
    if "table" in results:
        t = results["table"]
        runs = ", ".join(f"{s:.2f}" for s in t["seconds"])
        lines.append(
            f"score_table {t['rows']} x {t['features']} ({t['method']}): median {t['median_seconds']:.2f} s "
            f"(runs: {runs})"
        )
        for name in ("default", "contamination_0.01"):
            q = t[name]
            lines.append(
                f"- {name}: flagged {q['flagged']}, precision {q['precision']:.2f}, recall {q['recall']:.2f} "
                "of the 1% planted rows"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-check", action="store_true", help="skip validating the scorer")
    parser.add_argument("--skip-nab", action="store_true")
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--sensitivity", default="medium", choices=["low", "medium", "high"])
    parser.add_argument("--table-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    files = load_corpus() if not (args.skip_check and args.skip_nab) else []
    if not args.skip_check:
        results["normalisation"] = check_normalisation()
        results["reference"] = check_reference(files)
    if not args.skip_nab:
        results["nab"] = run_nab(files, args.sensitivity)
    if not args.skip_table:
        results["table"] = run_table(args.table_rows, 10, args.repeats)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
