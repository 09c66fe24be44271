"""Frozen-trunk features for every image, cached on disk outside the repository.

Training the heads and the joint-space projection on cached features is what makes
training fit 2 CPU cores: the trunk runs once per image view, not once per epoch.
Augmented views (small affine, contrast) give the heads some invariance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from imaging.cache import cache_root
from imaging.datasets import ImageRecord
from imaging.model.preprocess import load_jpeg, monai_to_input


def cache_dir() -> Path:
    path = cache_root() / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _augment(seed: int):
    from monai.transforms import Compose, RandAdjustContrast, RandAffine, RandGaussianNoise

    t = Compose([
        RandAffine(prob=1.0, rotate_range=0.17, scale_range=(0.12, 0.12),
                   translate_range=(12, 12), padding_mode="zeros"),
        RandAdjustContrast(prob=0.8, gamma=(0.7, 1.5)),
        RandGaussianNoise(prob=0.3, std=0.02),
    ])
    t.set_random_state(seed=seed)
    return t


def _fingerprint(record: ImageRecord) -> str:
    """Which pixels a record holds: its id, resolved file, size and modification time. By id
    alone, a sealed folder reusing dev ids for other images would get dev's cached features."""
    try:
        st = Path(record.path).resolve().stat()
        return f"{record.id}:{Path(record.path).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return f"{record.id}:{record.path}"


def image_tensor(record: ImageRecord) -> torch.Tensor:
    return monai_to_input(load_jpeg(record.path))


@torch.no_grad()
def extract(
    encoder: torch.nn.Module,
    records: Sequence[ImageRecord],
    view: int = 0,
    batch_size: int = 32,
    tag: str = "lite0g2",
    desc: str = "features",
) -> np.ndarray:
    """(N, FEATURE_DIM) float32 features; view 0 is the plain image, view k>0 augmented."""
    key = hashlib.sha1(("|".join(_fingerprint(r) for r in records) + f"|{view}|{tag}"
                        ).encode()).hexdigest()
    path = cache_dir() / f"{tag}_v{view}_{key[:16]}.npy"
    if path.is_file():
        return np.load(path)
    encoder.eval()
    aug = _augment(1000 + view) if view else None
    out = []
    for start in tqdm(range(0, len(records), batch_size), desc=f"{desc} (view {view})",
                      unit="batch"):
        batch = []
        for r in records[start:start + batch_size]:
            x = image_tensor(r)
            if aug is not None:
                x = aug(x)
                x = (x.as_tensor() if hasattr(x, "as_tensor") else x).clamp(0, 1)
            batch.append(x)
        out.append(encoder(torch.stack(batch)).numpy())
    feats = np.concatenate(out).astype(np.float32)
    np.save(path, feats)
    return feats
