"""Fit the CT/MR finding heads on MedPix train; keep those that beat a pixel baseline on val.

    python -m imaging.training.findings_ctmr --data ../shared/data/dev --out weights/

Labels: `findings_text` (caption + case Findings, negation-aware), candidates chosen by
train-case frequency. Inputs: the network's own per-image trunk features, as `analyze` gets
them. Per finding, on train only: PCA to 256 dimensions, class-balanced logistic regression
with L2 strength chosen by grouped (by case) 5-fold AUROC, Platt scaling on the out-of-fold
scores, and the threshold at 95% out-of-fold specificity; the PCA is folded back into one weight
vector over the features. The baseline is the same recipe on 32x32 pixels. Validation
(image-level AUROC, 95% interval by resampling cases with `scipy.stats.bootstrap`) decides
only which heads are kept: a head must beat its baseline and its interval must clear 0.5.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from ..model.findings_ctmr import FINDINGS_FILE

C_GRID = (0.003, 0.03, 0.3)
N_COMPONENTS = 256
FOLDS = 5
SPECIFICITY = 0.95  # out-of-fold train specificity at each head's threshold


def _fit_one(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict:
    """PCA + balanced logistic regression, C by grouped CV; Platt and threshold from OOF."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.model_selection import GroupKFold

    pca = PCA(n_components=min(N_COMPONENTS, x.shape[0] - 1, x.shape[1]), random_state=seed)
    z = pca.fit_transform(x)
    scale = z.std(axis=0) + 1e-6
    z = z / scale
    folds = list(GroupKFold(n_splits=FOLDS).split(z, y, groups))
    best = None
    for c in C_GRID:
        oof = np.zeros(len(y))
        for tr, te in folds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000,
                                         random_state=seed).fit(z[tr], y[tr])
            oof[te] = clf.decision_function(z[te])
        auc = roc_auc_score(y, oof)
        if best is None or auc > best[0]:
            best = (auc, c, oof)
    auc, c, oof = best
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000,
                                 random_state=seed).fit(z, y)
        platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof[:, None], y)
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    p_oof = 1.0 / (1.0 + np.exp(-(a * oof + b)))
    # present = above what 95% of negative train images score out of fold: a weak head
    # must not turn every CT into "image evidence" (an F1-optimal cut did, at p ~ 0.07)
    threshold = float(np.quantile(p_oof[y == 0], SPECIFICITY))
    f1 = [f1_score(y, p_oof >= threshold)]
    # fold PCA and scaling back: logit = w . ((x - mean) @ V.T / scale) + b0
    w_pca = clf.coef_[0] / scale
    weight = (pca.components_.T @ w_pca).astype(np.float32)
    bias = float(clf.intercept_[0] - pca.mean_ @ weight)
    return {"weight": weight, "bias": bias, "platt_a": a, "platt_b": b,
            "threshold": threshold, "C": c, "train_oof_auroc": round(float(auc), 4),
            "train_oof_f1": round(float(max(f1)), 4)}


def _predict(head: dict, x: np.ndarray) -> np.ndarray:
    logits = x @ head["weight"] + head["bias"]
    return 1.0 / (1.0 + np.exp(-(head["platt_a"] * logits + head["platt_b"])))


def auroc_by_case(y: np.ndarray, score: np.ndarray, groups: np.ndarray) -> dict:
    """Image-level AUROC with a 95% percentile interval that resamples cases."""
    from scipy.stats import bootstrap
    from sklearn.metrics import roc_auc_score

    ids = np.unique(groups)
    rows = {g: np.flatnonzero(groups == g) for g in ids}
    index = {g: i for i, g in enumerate(ids)}

    def stat(sample: np.ndarray) -> float:
        idx = np.concatenate([rows[ids[int(i)]] for i in sample])
        if len(np.unique(y[idx])) < 2:
            return np.nan
        return roc_auc_score(y[idx], score[idx])

    value = float(roc_auc_score(y, score))
    res = bootstrap((np.array([index[g] for g in ids]),), stat, vectorized=False,
                    n_resamples=1000, method="percentile",
                    random_state=np.random.default_rng(0))
    # resamples holding one class have no AUROC: the interval is over the others
    low, high = np.nanpercentile(res.bootstrap_distribution, [2.5, 97.5])
    return {"value": round(value, 4), "ci95": [round(float(low), 4), round(float(high), 4)],
            "positives": int(y.sum()), "positive_cases": int(len(np.unique(groups[y == 1]))),
            "n": int(len(y)), "cases": int(len(ids))}


def _pixels(paths: list[Path]) -> np.ndarray:
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("L").resize((32, 32), Image.BILINEAR),
                                  dtype=np.float32).ravel() / 255.0)
    x = np.stack(out)
    return x


def fit(data_dir: Path, out_dir: Path) -> dict:
    from ..cases.library import read_medpix
    from ..datasets import load_medpix
    from ..evaluation.medpix_study import image_outputs
    from ..knowledge.findings_text import image_labels, select
    from ..model import get_model

    model = get_model()
    cases_findings = {c["U_id"]: (c.get("Case") or {}).get("Findings") or ""
                      for c in json.loads((data_dir / "medpix" / "cases.json").read_text())}
    records = {r.id.split("/", 1)[1]: r for r in load_medpix(data_dir)}
    labels = {item.image_id.split("/", 1)[1]: item
              for item in image_labels(records.values(), cases_findings)}
    names = select(list(labels.values()))
    data = {}
    for split in ("train", "val"):
        stems, outputs = image_outputs(model, read_medpix(data_dir, (split,)), data_dir, True)
        pixels = _pixels([records[s].path for s in stems])
        pixels = (pixels - pixels.mean(axis=1, keepdims=True))
        data[split] = (stems, outputs.features.astype(np.float32), pixels,
                       np.array([records[s].group for s in stems]))
    report: dict = {"labels": list(names), "heads": {}}
    kept = []
    for name in names:
        y = {s: np.array([name in labels[x].findings for x in data[s][0]], dtype=int)
             for s in ("train", "val")}
        head = _fit_one(data["train"][1], y["train"], data["train"][3])
        base = _fit_one(data["train"][2], y["train"], data["train"][3])
        entry = {"C": head["C"], "threshold": head["threshold"],
                 "train_oof_auroc": head["train_oof_auroc"],
                 "train_positive_images": int(y["train"].sum())}
        if y["val"].sum() >= 2:
            entry["val_auroc"] = auroc_by_case(y["val"], _predict(head, data["val"][1]),
                                               data["val"][3])
            entry["baseline_pixels32_val_auroc"] = auroc_by_case(
                y["val"], _predict(base, data["val"][2]), data["val"][3])
            # beating a baseline that is itself below chance is not evidence: the head's
            # interval must also clear 0.5
            entry["kept"] = (entry["val_auroc"]["value"]
                             > entry["baseline_pixels32_val_auroc"]["value"]
                             and entry["val_auroc"]["ci95"][0] > 0.5)
        else:
            entry["kept"] = False
            entry["why_not"] = "fewer than 2 positive val images"
        report["heads"][name] = entry
        print(name, json.dumps(entry), flush=True)
        if entry["kept"]:
            kept.append((name, head))
    path = out_dir / FINDINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, names=np.array([n for n, _ in kept]),
             weight=np.stack([h["weight"] for _, h in kept]).astype(np.float32),
             bias=np.array([h["bias"] for _, h in kept], np.float32),
             platt_a=np.array([h["platt_a"] for _, h in kept], np.float32),
             platt_b=np.array([h["platt_b"] for _, h in kept], np.float32),
             thresholds=np.array([h["threshold"] for _, h in kept], np.float32))
    (out_dir / "models" / "findings_ctmr_report.json").write_text(
        json.dumps(report, indent=1) + "\n")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    fit(args.data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
