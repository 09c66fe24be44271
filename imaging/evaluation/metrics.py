"""Metrics with 95% bootstrap intervals (numpy resampling of cases / patients).

Every metric is reported as `{"value": v, "ci95": [lo, hi], "n": n, "groups": g}` so that a
number is never read without its uncertainty; the validation split is small (a few hundred
images). Given `groups` (the MedPix case, the NIH / COVID patient: `ImageRecord.group`), the
bootstrap resamples whole groups, since the images of one case or patient are not independent
draws; without it, rows (for per-case rows, as in the ddx evaluation). The seed is fixed, so
two predictors scored on the same images and groups see exactly the same resamples.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata

N_BOOT = 1000


def _interval(values: list[float]) -> list[float]:
    vals = np.asarray([v for v in values if np.isfinite(v)])
    if vals.size == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def _resample_indices(n: int, groups: np.ndarray | None, rng: np.random.Generator,
                      n_boot: int):
    """Row indices of `n_boot` bootstrap resamples: whole groups drawn with replacement
    (each row repeated as often as its group was drawn), or rows when `groups` is None."""
    if groups is None:
        for _ in range(n_boot):
            yield rng.integers(0, n, n)
        return
    _, codes = np.unique(groups, return_inverse=True)
    n_groups = int(codes.max()) + 1
    rows = np.arange(n)
    for _ in range(n_boot):
        drawn = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        yield np.repeat(rows, drawn[codes])


def with_ci(fn: Callable[..., float], *arrays: np.ndarray, groups=None, seed: int = 0) -> dict:
    """Point estimate of fn(*arrays) and a 95% percentile bootstrap interval, resampling
    whole `groups` (one label per row: case / patient) when given, else rows."""
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    g = None if groups is None else np.asarray(groups)
    if g is not None and len(g) != n:
        raise ValueError(f"{len(g)} group labels for {n} rows")
    n_groups = n if g is None else len(np.unique(g))
    if n == 0:
        return {"value": None, "ci95": [None, None], "n": 0, "groups": 0}
    try:
        value = float(fn(*arrays))
    except ValueError:
        return {"value": None, "ci95": [None, None], "n": n, "groups": n_groups}
    rng = np.random.default_rng(seed)
    boots = []
    for idx in _resample_indices(n, g, rng, N_BOOT):
        try:
            boots.append(float(fn(*(a[idx] for a in arrays))))
        except ValueError:  # a resample with one class: AUROC undefined
            continue
    return {"value": round(value, 4), "ci95": _interval(boots), "n": n, "groups": n_groups}


def accuracy_score(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def roc_auc(y_true, y_score) -> float:
    """Binary AUROC as the Mann-Whitney statistic (ties count one half): the value of
    sklearn's roc_auc_score without its input checks, which cost more than the AUROC
    itself in 1000 bootstrap resamples. ValueError when only one class is present."""
    y = np.asarray(y_true).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("one class")
    ranks = rankdata(np.asarray(y_score, dtype=float))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def accuracy(y_true, y_pred, groups=None) -> dict:
    return with_ci(accuracy_score, y_true, y_pred, groups=groups)


def auroc(y_true, y_score, groups=None) -> dict:
    return with_ci(roc_auc, y_true, y_score, groups=groups)


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


def ece(y_true, p_positive, groups=None) -> dict:
    return with_ci(expected_calibration_error, y_true, p_positive, groups=groups)


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


def recall_at_k(similarity: np.ndarray, target: np.ndarray, k: int = 10, groups=None) -> dict:
    """Row i hits if column target[i] is among its k most similar columns."""
    sim = np.asarray(similarity)
    target = np.asarray(target)
    # rank of the true column: number of columns strictly more similar
    true_sim = sim[np.arange(len(target)), target]
    rank = (sim > true_sim[:, None]).sum(axis=1)
    hits = (rank < k).astype(float)
    out = with_ci(np.mean, hits, groups=groups)
    out["chance"] = round(min(1.0, k / sim.shape[1]), 4) if sim.size else None
    return out
