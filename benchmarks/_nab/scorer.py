"""NAB scoring, as nab/sweeper.py, nab/optimizer.py and nab/runner.py describe it.

Per point (after the probationary first 15% of a file, at most 750 rows):
- inside a labelled window: tpWeight * S(pos) / S(-1), pos = -(right - i + 1) / width, so the
  earliest detection is worth tpWeight and one at the right edge almost nothing;
- outside: fpWeight * S(pos), pos = |right_prev - i| / (width_prev - 1) after a window (cheap
  right after it), or -fpWeight with no window before.
S(x) = 2 / (1 + exp(5x)) - 1 (and -1 for x > 3). A window scores its best (earliest)
detection, or -fnWeight when nothing in it is detected; false positives add up.

A detection is a point whose anomaly score is >= the threshold. The threshold is chosen
per profile to maximise the summed score over the whole corpus, then every file is scored
at it; the corpus total is normalised: 100 * (S - S_null) / (S_perfect - S_null), with
S_perfect = tpWeight * (number of windows) and S_null the score of no detections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchmarks._nab.corpus import NabFile, Profile

__all__ = [
    "FileScore",
    "PreparedFile",
    "Sweep",
    "optimise_threshold",
    "prepare",
    "scaled_sigmoid",
    "score_corpus",
]

PROBATION_PERCENT = 0.15
OUTSIDE = -1


def scaled_sigmoid(position: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        values = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, values)


@dataclass
class PreparedFile:
    """Scorable points of one file: unweighted sweep value and window id (OUTSIDE = none)."""

    name: str
    unweighted: np.ndarray
    window: np.ndarray
    probation: int
    windows: int  # distinct windows among scorable points


def prepare(file: NabFile, window_offset: int = 0) -> PreparedFile:
    n = file.values.size
    unweighted = np.empty(n)
    window = np.full(n, OUTSIDE, dtype=np.int64)
    max_tp = float(scaled_sigmoid(np.array([-1.0]))[0])
    cursor, prev_right, prev_width = 0, None, None

    def outside(lo: int, hi: int) -> None:
        idx = np.arange(lo, hi)
        if prev_right is None:
            unweighted[idx] = -1.0
        else:
            unweighted[idx] = scaled_sigmoid(np.abs(prev_right - idx) / (prev_width - 1.0))

    for k, (lo, hi) in enumerate(sorted(file.windows)):
        outside(cursor, lo)
        width = hi - lo + 1
        idx = np.arange(lo, hi + 1)
        unweighted[idx] = scaled_sigmoid(-(hi - idx + 1) / width) / max_tp
        window[idx] = window_offset + k
        cursor, prev_right, prev_width = hi + 1, hi, width
    outside(cursor, n)
    probation = int(min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * 5000))
    scorable_windows = window[probation:]
    return PreparedFile(
        file.name,
        unweighted[probation:],
        scorable_windows,
        probation,
        int(np.unique(scorable_windows[scorable_windows != OUTSIDE]).size),
    )


def _weighted(p: PreparedFile, profile: Profile) -> np.ndarray:
    return np.where(p.window == OUTSIDE, p.unweighted * profile.fp, p.unweighted * profile.tp)


@dataclass
class Sweep:
    thresholds: np.ndarray
    totals: np.ndarray


def _sweep(scores: np.ndarray, weighted: np.ndarray, window: np.ndarray, profile: Profile) -> Sweep:
    """Total score for every threshold (each distinct anomaly score, highest first)."""
    windows = np.unique(window[window != OUTSIDE])
    best = dict.fromkeys(windows.tolist(), -profile.fn)
    total = -profile.fn * windows.size
    order = np.argsort(-scores, kind="stable")
    thresholds, totals = [1.1], [total]
    s_sorted = scores[order].tolist()
    w_sorted = weighted[order].tolist()
    k_sorted = window[order].tolist()
    for i, (s, w, k) in enumerate(zip(s_sorted, w_sorted, k_sorted, strict=True)):
        if k == OUTSIDE:
            total += w
        elif w > best[k]:
            total += w - best[k]
            best[k] = w
        if i + 1 == len(s_sorted) or s_sorted[i + 1] != s:
            thresholds.append(s)
            totals.append(total)
    return Sweep(np.array(thresholds), np.array(totals))


def optimise_threshold(prepared: list[PreparedFile], scores: list[np.ndarray], profile: Profile) -> float:
    """The threshold maximising the corpus score (the highest one among ties, as NAB's sort)."""
    sweep = _sweep(
        np.concatenate([s[p.probation :] for p, s in zip(prepared, scores, strict=True)]),
        np.concatenate([_weighted(p, profile) for p in prepared]),
        np.concatenate([p.window for p in prepared]),
        profile,
    )
    return float(sweep.thresholds[int(np.argmax(sweep.totals))])


@dataclass
class FileScore:
    name: str
    score: float
    tp: int
    tn: int
    fp: int
    fn: int


def score_file(p: PreparedFile, scores: np.ndarray, profile: Profile, threshold: float) -> FileScore:
    detected = scores[p.probation :] >= threshold
    weighted = _weighted(p, profile)
    inside = p.window != OUTSIDE
    total = float(np.sum(weighted[detected & ~inside]))
    for k in np.unique(p.window[inside]):
        hits = weighted[(p.window == k) & detected]
        total += max(-profile.fn, float(hits.max())) if hits.size else -profile.fn
    return FileScore(
        p.name,
        total,
        tp=int(np.sum(detected & inside)),
        tn=int(np.sum(~detected & ~inside)),
        fp=int(np.sum(detected & ~inside)),
        fn=int(np.sum(~detected & inside)),
    )


@dataclass
class CorpusScore:
    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    files: list[FileScore]

    @property
    def normalised(self) -> float:
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def score_corpus(
    files: list[NabFile], scores: list[np.ndarray], profile: Profile, threshold: float | None = None
) -> CorpusScore:
    """Optimise the threshold (unless given), score every file at it, and normalise."""
    prepared, offset = [], 0
    for f in files:
        prepared.append(prepare(f, offset))
        offset += len(f.windows)
    if threshold is None:
        threshold = optimise_threshold(prepared, scores, profile)
    per_file = [score_file(p, s, profile, threshold) for p, s in zip(prepared, scores, strict=True)]
    null = -profile.fn * sum(p.windows for p in prepared)
    perfect = profile.tp * sum(len(f.windows) for f in files)
    return CorpusScore(profile.name, threshold, sum(fs.score for fs in per_file), null, perfect, per_file)
