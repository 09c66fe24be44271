"""`radassist train`: frozen MONAI/Lite0 trunk -> heads + contrastive alignment -> bundle.

Order of work (each step seeded): cache trunk features (plain + augmented views), fit the
task heads and calibrate them on val, align images with text for both text towers and keep
the better one by validation caption recall, build the OOD reference, write the bundle.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from imaging.datasets import FINDINGS, ImageRecord, load_all, manifest_sha1
from imaging.model.network import SOFTMAX_HEADS, build_clip, trainable_state_dict
from imaging.training.contrastive import train_alignment
from imaging.training.features import extract
from imaging.training.heads import fit_binary_head, fit_softmax_head, load_into

MODEL_VERSION = "0.1.1"  # 0.1.1: class-balanced region head


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def head_targets(records: list[ImageRecord], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, mask of records that carry this label)."""
    if name == "modality":
        return np.array([r.modality for r in records]), np.ones(len(records), bool)
    if name == "region":
        y = np.array([str(r.region) for r in records])
        return y, np.array([r.region is not None for r in records])
    if name == "plane":
        y = np.array([str(r.plane) for r in records])
        return y, np.array([r.plane is not None and r.modality in ("CT", "MR") for r in records])
    y = np.array([r.findings.get(name, -1) for r in records])
    return y, y >= 0


def train(data_dir: str | Path, out_dir: str | Path, *, seed: int = 0, epochs: int = 30,
          views: int = 2, text_towers: tuple[str, ...] = ("minilm", "transformer"),
          limit: int | None = None, log: Callable[[str], None] = print) -> dict:
    t0 = time.time()
    seed_everything(seed)
    torch.set_num_threads(2)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    records = load_all(data_dir)
    train_recs = [r for r in records if r.split == "train"]
    val_recs = [r for r in records if r.split == "val"]
    if limit:  # smoke tests: a few images of each dataset
        train_recs = _take_per_dataset(train_recs, limit)
        val_recs = _take_per_dataset(val_recs, max(2, limit // 2))
    if not train_recs:
        raise ValueError(f"no training images under {data_dir}")
    log(f"data {data_dir}: {len(train_recs)} train / {len(val_recs)} val images, "
        f"manifest sha1 {manifest_sha1(data_dir)}")

    base, _ = build_clip("minilm", pretrained_trunk=True)
    encoder = base.visual.encoder
    tag = "lite0g2" + ("" if not limit else f"_limit{limit}")
    f_train = [extract(encoder, train_recs, v, tag=tag, desc="train features")
               for v in range(views)]
    f_val = extract(encoder, val_recs, 0, tag=tag, desc="val features") if val_recs else \
        np.zeros((0, f_train[0].shape[1]), np.float32)
    mean = f_train[0].mean(0)
    std = f_train[0].std(0) + 1e-3
    x_train = [(f - mean) / std for f in f_train]
    x_val = (f_val - mean) / std
    x_all = np.concatenate(x_train)
    recs_all = train_recs * views

    heads, finding_rows, head_metrics = fit_heads(x_all, recs_all, x_val, val_recs, seed, log)

    def fresh_model(tower: str):
        clip, tok = build_clip(tower, pretrained_trunk=False)
        clip.visual.encoder.load_state_dict(encoder.state_dict())
        v = clip.visual
        with torch.no_grad():
            v.feat_mean.copy_(torch.from_numpy(mean))
            v.feat_std.copy_(torch.from_numpy(std))
        load_heads(v, heads, finding_rows)
        return clip, tok

    retrieval: dict[str, dict] = {}
    candidates = {}
    for tower in text_towers:
        seed_everything(seed)
        clip, tok = fresh_model(tower)
        log(f"aligning images with text ({tower} text tower)")
        retrieval[tower] = train_alignment(
            clip, tok, tower, x_train, train_recs, x_val, val_recs,
            epochs=epochs if tower == "minilm" else max(1, epochs // 2), seed=seed, log=log)
        candidates[tower] = clip
    chosen = max(retrieval, key=lambda t: np.nan_to_num(retrieval[t]["recall@10"], nan=-1))
    clip = candidates[chosen]
    log(f"text tower chosen by validation caption recall@10: {chosen} {retrieval}")

    with torch.no_grad():
        proj = clip.visual.proj
        bank = torch.nn.functional.normalize(proj(torch.from_numpy(x_train[0])), dim=-1)
        val_emb = torch.nn.functional.normalize(proj(torch.from_numpy(x_val)), dim=-1)
        reference = (val_emb @ bank.T).max(dim=1).values if len(x_val) else torch.ones(1)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "models").mkdir(exist_ok=True)
    (out_dir / "configs").mkdir(exist_ok=True)
    payload = {
        "state_dict": {k: v.contiguous() for k, v in
                       trainable_state_dict(clip, chosen).items()},
        "ood_bank": bank.to(torch.float16),
        "ood_reference": reference.to(torch.float32),
    }
    torch.save(payload, out_dir / "models" / "model.pt")
    info = {
        "version": MODEL_VERSION,
        "text_tower": chosen,
        "seed": seed,
        "epochs": epochs,
        "views": views,
        "data_dir": str(data_dir),
        "data_manifest_sha1": manifest_sha1(data_dir),
        "n_train": len(train_recs),
        "n_val": len(val_recs),
        "heads": head_metrics,
        "retrieval": retrieval,
        "train_seconds": round(time.time() - t0, 1),
    }
    from imaging.training.bundle import write_configs

    write_configs(out_dir, info)
    log(f"weights bundle written to {out_dir} in {info['train_seconds']} s")
    return info



# Region classes are weighted inversely to their training frequency: MedPix training images
# are 45% head, and an unweighted head sends ambiguous neck / spine / pelvis images to the
# majority class ("head", "abdomen"); validation and test mixes are not head-heavy.
CLASS_WEIGHT = {"region": "balanced"}


def fit_heads(x_all, recs_all, x_val, val_recs, seed: int, log=print):
    """Every task head on standardised features, calibrated on val: (heads, findings, metrics)."""
    heads: dict[str, object] = {}
    head_metrics: dict[str, dict] = {}
    for name, labels in SOFTMAX_HEADS.items():
        y_tr, m_tr = head_targets(recs_all, name)
        y_va, m_va = head_targets(val_recs, name)
        fitted = fit_softmax_head(x_all[m_tr], y_tr[m_tr], x_val[m_va], y_va[m_va], labels, seed,
                                  class_weight=CLASS_WEIGHT.get(name))
        heads[name] = fitted
        acc = _acc(fitted, x_val[m_va], y_va[m_va], labels)
        head_metrics[name] = {"val_acc": acc, "C": fitted.C, "temperature": fitted.temperature}
        if name in CLASS_WEIGHT:
            head_metrics[name]["class_weight"] = CLASS_WEIGHT[name]
        log(f"head {name}: C={fitted.C} T={fitted.temperature:.2f} val acc {acc:.3f}")
    finding_rows = []
    for name in FINDINGS:
        y_tr, m_tr = head_targets(recs_all, name)
        y_va, m_va = head_targets(val_recs, name)
        fitted = fit_binary_head(x_all[m_tr], y_tr[m_tr], x_val[m_va], y_va[m_va], seed)
        finding_rows.append(fitted)
        auc = _auc(fitted, x_val[m_va], y_va[m_va])
        head_metrics[name] = {"val_auroc": auc, "C": fitted.C, "temperature": fitted.temperature}
        log(f"head finding:{name}: C={fitted.C} T={fitted.temperature:.2f} val AUROC {auc:.3f}")
    return heads, finding_rows, head_metrics


def load_heads(visual, heads: dict, finding_rows: list) -> None:
    """Copy fitted heads and their temperatures into a `VisualTower`."""
    for name in SOFTMAX_HEADS:
        load_into(visual.head[name], [heads[name]])
        getattr(visual, f"temperature_{name}").fill_(heads[name].temperature)
    load_into(visual.head["findings"], finding_rows)
    with torch.no_grad():
        visual.temperature_findings.copy_(torch.tensor([r.temperature for r in finding_rows]))


def refit_heads(data_dir: str | Path, out_dir: str | Path, *, seed: int = 0,
                log: Callable[[str], None] = print) -> dict:
    """Refit only the task heads of an existing bundle in `out_dir` (same frozen trunk, same
    feature standardisation, projection, text tower and OOD bank), exactly as `train` would
    fit them: minutes instead of a full retraining when only the heads' recipe changed."""
    import json

    t0 = time.time()
    seed_everything(seed)
    torch.set_num_threads(2)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    payload = torch.load(out_dir / "models" / "model.pt", map_location="cpu", weights_only=True)
    meta = json.loads((out_dir / "configs" / "metadata.json").read_text())
    training = meta["training"]
    views = int(training.get("views", 1))
    records = load_all(data_dir)
    train_recs = [r for r in records if r.split == "train"]
    val_recs = [r for r in records if r.split == "val"]
    if manifest_sha1(data_dir) != training.get("data_manifest_sha1"):
        raise ValueError(f"data under {data_dir} differ from the bundle's training data")
    clip, _ = build_clip(training.get("text_tower", "minilm"), pretrained_trunk=False)
    clip.load_state_dict(payload["state_dict"], strict=False)
    visual = clip.visual
    encoder = visual.encoder  # the bundle's frozen trunk: same features as at training time
    f_train = [extract(encoder, train_recs, v, tag="lite0g2", desc="train features")
               for v in range(views)]
    f_val = extract(encoder, val_recs, 0, tag="lite0g2", desc="val features")
    mean, std = visual.feat_mean.numpy(), visual.feat_std.numpy()
    x_train = [(f - mean) / std for f in f_train]
    x_val = (f_val - mean) / std
    heads, finding_rows, head_metrics = fit_heads(
        np.concatenate(x_train), train_recs * views, x_val, val_recs, seed, log)
    load_heads(visual, heads, finding_rows)
    state = trainable_state_dict(clip, training.get("text_tower", "minilm"))
    payload["state_dict"] = {k: v.contiguous() for k, v in state.items()}
    torch.save(payload, out_dir / "models" / "model.pt")
    info = {"version": MODEL_VERSION, "text_tower": training.get("text_tower", "minilm"),
            "seed": seed, "epochs": training.get("epochs"), "views": views,
            "data_dir": str(data_dir), "data_manifest_sha1": training["data_manifest_sha1"],
            "n_train": len(train_recs), "n_val": len(val_recs), "heads": head_metrics,
            "retrieval": meta.get("validation", {}).get("retrieval", {}),
            "train_seconds": training.get("train_seconds"),
            "heads_refit_seconds": round(time.time() - t0, 1)}
    from imaging.training.bundle import write_configs

    write_configs(out_dir, info)
    log(f"heads refitted in {out_dir} in {info['heads_refit_seconds']} s")
    return info

def _take_per_dataset(recs: list[ImageRecord], n: int) -> list[ImageRecord]:
    out, seen = [], {}
    for r in recs:
        key = (r.dataset, r.modality)
        if seen.get(key, 0) < n:
            out.append(r)
            seen[key] = seen.get(key, 0) + 1
    return out


def _acc(fitted, x, y, labels) -> float:
    if len(x) == 0:
        return float("nan")
    pred = np.argmax(x @ fitted.weight.T + fitted.bias, axis=1)
    return float(np.mean(np.array(labels)[pred] == y))


def _auc(fitted, x, y) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, (x @ fitted.weight.T + fitted.bias)[:, 0]))


__all__ = ["train", "MODEL_VERSION", "copy"]
