"""Test objects (QA phantoms) are out of distribution: a bank of synthetic phantoms.

The model's typicality check (nearest training image in embedding space) does not catch
phantoms: a water sphere or a plastic head with geometric inserts sits about as close to
some MedPix image as a real low-resolution EPI brain does. What separates them is which
bank is nearer. So the model also embeds a bank of procedurally drawn phantoms — uniform
spheres and cylinders with coil shading, ellipses with geometric inserts, ACR-like discs
with rings and rods, line-pair grids, vials — rendered with random blur, noise, size,
contrast and gamma. A slice votes "phantom" when its nearest phantom is closer than its
nearest training image; a series is a test object when the median margin is above
PHANTOM_MARGIN.

Nothing here was fitted to a real phantom: the generator draws shapes QA objects are made
of, and the margin was set on validation images (the closest of the 440 MedPix, NIH and
COVID val images stays 0.063 below zero). The bank is deterministic (fixed seed) and cached
per weights bundle, like the TorchScript export.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from scipy import ndimage

from imaging.cache import cache_root

BANK_SIZE = 300
BANK_SEED = 20261206
GENERATOR_VERSION = "1"
PHANTOM_MARGIN = 0.05  # cosine similarity; see the module docstring


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    return (y - side / 2) / (side / 2), (x - side / 2) / (side / 2)


def _ellipse(y, x, cy, cx, ry, rx, angle=0.0) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    yy, xx = (y - cy) * c - (x - cx) * s, (y - cy) * s + (x - cx) * c
    return (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0


def _sphere(rng, y, x, img) -> None:
    """A uniform sphere or cylinder with smooth coil shading (MR QA)."""
    r = rng.uniform(0.5, 0.9)
    mask = _ellipse(y, x, rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), r, r)
    shade = (1 + rng.uniform(-0.3, 0.3) * y + rng.uniform(-0.3, 0.3) * x
             - rng.uniform(0, 0.3) * (x ** 2 + y ** 2))
    img[mask] = (rng.uniform(0.4, 0.9) * shade)[mask]


def _inserts(rng, y, x, img) -> None:
    """An ellipse, sometimes with a shell, holding circles and squares (CT geometry)."""
    ry, rx = rng.uniform(0.45, 0.9), rng.uniform(0.45, 0.9)
    mask = _ellipse(y, x, 0, 0, ry, rx, rng.uniform(-0.3, 0.3))
    img[mask] = rng.uniform(0.2, 0.8)
    if rng.random() < 0.6:
        img[mask & ~_ellipse(y, x, 0, 0, ry - 0.05, rx - 0.05)] = rng.uniform(0.8, 1.0)
    for _ in range(rng.integers(2, 9)):
        cy, cx = rng.uniform(-ry * 0.6, ry * 0.6), rng.uniform(-rx * 0.6, rx * 0.6)
        r = rng.uniform(0.03, 0.15)
        value = rng.choice([0.0, 1.0, rng.uniform(0, 1)])
        if rng.random() < 0.5:
            img[_ellipse(y, x, cy, cx, r, r)] = value
        else:
            img[(np.abs(y - cy) < r) & (np.abs(x - cx) < r)] = value


def _rings(rng, y, x, img) -> None:
    """An ACR-like disc with rings and a circle of rods."""
    r = rng.uniform(0.6, 0.9)
    img[_ellipse(y, x, 0, 0, r, r)] = rng.uniform(0.4, 0.8)
    for _ in range(rng.integers(1, 4)):
        rr = r * rng.uniform(0.2, 0.8)
        img[_ellipse(y, x, 0, 0, rr, rr) & ~_ellipse(y, x, 0, 0, rr - 0.03, rr - 0.03)] = \
            rng.uniform(0, 1)
    n = rng.integers(3, 10)
    for j in range(n):
        a = 2 * np.pi * j / n
        img[_ellipse(y, x, 0.5 * r * np.sin(a), 0.5 * r * np.cos(a), 0.04, 0.04)] = \
            rng.uniform(0, 1)


def _bars(rng, y, x, img) -> None:
    """Line pairs or a grid inside an ellipse (resolution phantoms)."""
    side = img.shape[0]
    img[_ellipse(y, x, 0, 0, rng.uniform(0.45, 0.9), rng.uniform(0.45, 0.9))] = \
        rng.uniform(0.3, 0.7)
    bars = ((np.arange(side) // rng.integers(4, 16)) % 2).astype(bool)
    box = (np.abs(y) < rng.uniform(0.2, 0.5)) & (np.abs(x) < rng.uniform(0.2, 0.5))
    pattern = bars[None, :] if rng.random() < 0.5 else bars[:, None]
    if rng.random() < 0.5:
        pattern = bars[None, :] & bars[:, None]
    img[box & np.broadcast_to(pattern, img.shape)] = rng.uniform(0.8, 1.0)


def _vials(rng, y, x, img) -> None:
    """Several cylinders (vials), in air or in a water bath."""
    if rng.random() < 0.5:
        img[_ellipse(y, x, 0, 0, rng.uniform(0.45, 0.9), rng.uniform(0.45, 0.9))] = \
            rng.uniform(0.1, 0.4)
    for _ in range(rng.integers(3, 12)):
        r = rng.uniform(0.05, 0.2)
        img[_ellipse(y, x, rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), r, r)] = \
            rng.uniform(0.3, 1.0)


_KINDS = (_sphere, _inserts, _rings, _bars, _vials)


def synthetic_phantom(rng: np.random.Generator, side: int = 160) -> np.ndarray:
    """One phantom slice in [0, 1], rendered at a random matrix size (64-255 px)."""
    import torch

    y, x = _grid(side)
    img = np.zeros((side, side), np.float32)
    _KINDS[int(rng.integers(0, len(_KINDS)))](rng, y, x, img)
    img = ndimage.gaussian_filter(img, rng.uniform(0.3, 2.0))
    noise = rng.normal(0, rng.uniform(0.0, 0.06), img.shape).astype(np.float32)
    img = img + noise * (img > 0.02)
    if rng.random() < 0.5:  # windowed as a reader might: contrast and gamma
        img = np.clip((img - rng.uniform(0, 0.2)) * rng.uniform(1, 2.5), 0, 1) \
            ** rng.uniform(0.6, 1.6)
    out = int(rng.integers(64, 256))
    t = torch.from_numpy(np.clip(img, 0, 1).astype(np.float32))[None, None]
    resized = torch.nn.functional.interpolate(t, size=(out, out), mode="bilinear",
                                              align_corners=False)[0, 0].numpy()
    return np.clip(resized, 0, 1).astype(np.float32)


def synthetic_bank(n: int = BANK_SIZE, seed: int = BANK_SEED) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [synthetic_phantom(rng) for _ in range(n)]


def _bank_path(model) -> Path:
    key = hashlib.sha1(f"{model.version}|{GENERATOR_VERSION}|{BANK_SIZE}|{BANK_SEED}".encode())
    return cache_root() / "phantoms" / f"bank-{key.hexdigest()[:16]}.npy"


def phantom_bank(model) -> np.ndarray:
    """L2-normalised embeddings of the synthetic bank for this model (cached on disk)."""
    cached = getattr(model, "_phantom_bank", None)
    if cached is not None:
        return cached
    path = _bank_path(model)
    try:
        bank = np.load(path)
    except (OSError, ValueError):
        import torch

        from imaging.model.preprocess import to_input

        units = synthetic_bank()
        parts = [model.predict(torch.stack([to_input(u) for u in units[i:i + 32]])).embedding
                 for i in range(0, len(units), 32)]
        bank = np.concatenate(parts).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, bank)
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    model._phantom_bank = bank
    return bank


def phantom_margins(embeddings: np.ndarray, model) -> np.ndarray:
    """Per slice: similarity to the nearest phantom minus that to the nearest training image."""
    emb = np.asarray(embeddings, dtype=np.float32)
    return (emb @ phantom_bank(model).T).max(axis=1) - (emb @ model.ood_bank.T).max(axis=1)


def phantom_reason(embeddings: np.ndarray, model) -> str | None:
    """Why the series is a test object, or None (see the module docstring)."""
    margin = float(np.median(phantom_margins(embeddings, model)))
    if margin <= PHANTOM_MARGIN:
        return None
    return (f"a test object (phantom), not anatomy: nearer to synthetic phantoms than to any "
            f"training image (median margin {margin:.3f})")
