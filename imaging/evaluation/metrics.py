"""Metrics with 95% bootstrap intervals (sklearn metrics, numpy resampling).

Every metric is reported as `{"value": v, "ci95": [lo, hi], "n": n}` so that a number is
never read without its uncertainty; the validation split is small (a few hundred images).
Resampling is by image with a fixed seed, so the intervals are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

N_BOOT = 1000


def _interval(values: list[float]) -> list[float]:
    vals = np.asarray([v for v in values if np.isfinite(v)])
    if vals.size == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def with_ci(fn: Callable[..., float], *arrays: np.ndarray, seed: int = 0) -> dict:
    """Point estimate of fn(*arrays) and a percentile bootstrap interval over rows."""
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if n == 0:
        return {"value": None, "ci95": [None, None], "n": 0}
    try:
        value = float(fn(*arrays))
    except ValueError:
        return {"value": None, "ci95": [None, None], "n": n}
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(N_BOOT):
        idx = rng.integers(0, n, n)
        try:
            boots.append(float(fn(*(a[idx] for a in arrays))))
        except ValueError:  # a resample with one class: AUROC undefined
            continue
    return {"value": round(value, 4), "ci95": _interval(boots), "n": n}


def accuracy(y_true, y_pred) -> dict:
    return with_ci(accuracy_score, y_true, y_pred)


def auroc(y_true, y_score) -> dict:
    def _auc(y, s):
        if len(np.unique(y)) < 2:
            raise ValueError("one class")
        return roc_auc_score(y, s)

    return with_ci(_auc, y_true, y_score)


def expected_calibration_error(y_true, p_positive, n_bins: int = 10) -> float:
    """Top-label ECE of a binary classifier with equal-width confidence bins."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(p_positive, dtype=float)
    pred = (p >= 0.5).astype(int)
    conf = np.where(pred == 1, p, 1 - p)
    correct = (pred == y).astype(float)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    ece = 0.0
    for i in range(n_bins):
        lo, hi = edges[i], edges[i + 1]
        m = (conf >= lo) & ((conf < hi) if i < n_bins - 1 else (conf <= hi))
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def ece(y_true, p_positive) -> dict:
    return with_ci(expected_calibration_error, y_true, p_positive)


def ece_floor(p_positive, n_sim: int = 2000, seed: int = 0) -> dict:
    """The ECE a *perfectly* calibrated classifier would show with these probabilities and
    this many images: labels drawn as Bernoulli(p), ECE measured, `n_sim` times.

    Why: a 10-bin ECE on ~150 images is mostly sampling noise; an observed ECE inside this
    range is what perfect calibration looks like at this sample size.
    """
    p = np.asarray(p_positive, dtype=float)
    rng = np.random.default_rng(seed)
    sims = np.array([expected_calibration_error(rng.random(len(p)) < p, p)
                     for _ in range(n_sim)])
    return {"median": float(np.median(sims)), "p05": float(np.percentile(sims, 5)),
            "p95": float(np.percentile(sims, 95)), "share_at_or_below_0.05":
            float(np.mean(sims <= 0.05)), "n": int(len(p))}


def recall_at_k(similarity: np.ndarray, target: np.ndarray, k: int = 10) -> dict:
    """Row i hits if column target[i] is among its k most similar columns."""
    sim = np.asarray(similarity)
    target = np.asarray(target)
    # rank of the true column: number of columns strictly more similar
    true_sim = sim[np.arange(len(target)), target]
    rank = (sim > true_sim[:, None]).sum(axis=1)
    hits = (rank < k).astype(float)
    out = with_ci(np.mean, hits)
    out["chance"] = round(min(1.0, k / sim.shape[1]), 4) if sim.size else None
    return out
