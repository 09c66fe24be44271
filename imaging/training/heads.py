"""Task heads: logistic regression on frozen features, then temperature scaling on val.

Logistic regression (sklearn, L2) on standardised features is the strongest thing that
trains in seconds here; its weights are copied into the network's `nn.Linear` heads so
inference stays one torch forward pass. The L2 strength is picked on validation log-loss,
and one temperature per head is then fitted on validation (Guo et al. 2017), so the
probabilities mean what they say.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
MISSING_CLASS_BIAS = -30.0  # a class absent from training is never predicted


@dataclass
class FittedHead:
    weight: np.ndarray  # (K, F)
    bias: np.ndarray  # (K,)
    temperature: float
    C: float
    val_logloss: float


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_temperature(logits: np.ndarray, y_index: np.ndarray, binary: bool) -> float:
    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        if binary:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            p = np.clip(p, 1e-7, 1 - 1e-7)
            return float(-np.mean(y_index * np.log(p) + (1 - y_index) * np.log(1 - p)))
        p = np.clip(_softmax(z)[np.arange(len(y_index)), y_index], 1e-7, 1.0)
        return float(-np.mean(np.log(p)))

    if len(y_index) < 5 or len(np.unique(y_index)) < 2:
        return 1.0
    res = minimize_scalar(nll, bounds=(-2.0, 2.0), method="bounded")
    return float(np.exp(res.x))


def fit_softmax_head(x_tr, y_tr, x_va, y_va, labels, seed: int = 0,
                     class_weight: str | None = None) -> FittedHead:
    """Multiclass head over `labels` (strings); labels missing in y_tr get a -30 bias.

    `class_weight="balanced"` weights classes inversely to their training frequency.
    """
    labels = list(labels)
    present = sorted(set(y_tr), key=labels.index)
    k, f = len(labels), x_tr.shape[1]
    best = None
    for c in C_GRID if len(x_va) else C_GRID[2:3]:
        weight = np.zeros((k, f), np.float32)
        bias = np.full(k, MISSING_CLASS_BIAS, np.float32)
        if len(present) == 1:
            bias[labels.index(present[0])] = 0.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf = LogisticRegression(C=c, max_iter=3000, random_state=seed,
                                         class_weight=class_weight).fit(x_tr, y_tr)
            coef, icpt = clf.coef_, clf.intercept_
            if len(present) == 2:  # sklearn binary: one row for the second class
                coef = np.vstack([-coef / 2, coef / 2])
                icpt = np.array([-icpt[0] / 2, icpt[0] / 2])
            for row, cls in enumerate(clf.classes_):
                weight[labels.index(cls)] = coef[row]
                bias[labels.index(cls)] = icpt[row]
        if len(x_va):
            logits = x_va @ weight.T + bias
            yi = np.array([labels.index(v) for v in y_va])
            loss = log_loss(yi, _softmax(logits), labels=list(range(k)))
        else:
            loss = float("nan")
        if best is None or loss < best.val_logloss:
            best = FittedHead(weight, bias, 1.0, c, loss)
    if len(x_va):
        logits = x_va @ best.weight.T + best.bias
        best.temperature = _fit_temperature(logits, np.array([labels.index(v) for v in y_va]),
                                            binary=False)
    return best


def fit_binary_head(x_tr, y_tr, x_va, y_va, seed: int = 0) -> FittedHead:
    """One sigmoid output; returns weight (1, F)."""
    y_tr = np.asarray(y_tr).astype(int)
    y_va = np.asarray(y_va).astype(int)
    f = x_tr.shape[1]
    if len(np.unique(y_tr)) < 2:
        b = MISSING_CLASS_BIAS if (len(y_tr) == 0 or y_tr[0] == 0) else -MISSING_CLASS_BIAS
        return FittedHead(np.zeros((1, f), np.float32), np.array([b], np.float32), 1.0, 0.0,
                          float("nan"))
    best = None
    for c in C_GRID if len(np.unique(y_va)) == 2 else C_GRID[2:3]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(x_tr, y_tr)
        w, b = clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)
        if len(np.unique(y_va)) == 2:
            p = 1 / (1 + np.exp(-(x_va @ w.T + b)[:, 0]))
            loss = log_loss(y_va, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])
        else:
            loss = float("nan")
        if best is None or loss < best.val_logloss:
            best = FittedHead(w, b, 1.0, c, loss)
    if len(np.unique(y_va)) == 2:
        best.temperature = _fit_temperature(x_va @ best.weight.T + best.bias, y_va, binary=True)
    return best


def load_into(linear: torch.nn.Linear, rows: list[FittedHead]) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.vstack([r.weight for r in rows])))
        linear.bias.copy_(torch.from_numpy(np.concatenate([r.bias for r in rows])))
