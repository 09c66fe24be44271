"""What a differential item's number means: P(item is the diagnosis), and how far to trust it.

The ranking's score is a sum of evidence terms; its softmax share among the listed items
says nothing about how often the item is right. This file turns the rank score into a
calibrated probability with one isotonic map per situation (with / without a clinical
history), fitted on MedPix *train* cases each ranked with a library that leaves it out
(`fit_calibration.py`), never on validation. Beside the maps it stores what the note tells
the reader and the evaluation reports, measured on validation with case-level bootstrap
intervals: the top-5 hit rate per situation (modality x history), the top-5 ECE, and the
image-text similarity above which an image "resembles" an entry's typical features.

The calibrated feature is the item's softmax share over *all* knowledge entries (score
minus the log-sum-exp over entries): unlike the raw score it is comparable across cases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CALIBRATION_FILE = "models/ddx_calibration.json"
SITUATIONS = ("history", "no_history")


def situation(has_history: bool) -> str:
    return "history" if has_history else "no_history"


def calibration_feature(scores: np.ndarray) -> np.ndarray:
    """log softmax over all entries of the ranking scores (one case)."""
    s = np.asarray(scores, dtype=np.float64)
    m = float(s.max()) if s.size else 0.0
    return s - (m + np.log(np.exp(s - m).sum()))


@dataclass(frozen=True)
class IsotonicMap:
    """A monotone step map fitted by isotonic regression, kept as its knots."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, value: np.ndarray | float) -> np.ndarray:
        return np.interp(np.asarray(value, dtype=np.float64), self.x, self.y)


@dataclass(frozen=True)
class Rate:
    """A measured proportion with its 95% case-level bootstrap interval."""

    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Calibration:
    maps: dict[str, IsotonicMap]  # situation -> map of calibration_feature
    hit_at_5: dict[str, Rate] = field(default_factory=dict)  # "CT|history", "all|no_history"
    image_similarity_threshold: float | None = None
    ece_top5: dict[str, Rate] = field(default_factory=dict)  # situation -> ECE on val
    source: str = ""

    def probabilities(self, features: np.ndarray, has_history: bool) -> np.ndarray:
        """Calibrated P(item is the diagnosis) for each calibration feature."""
        return np.clip(self.maps[situation(has_history)](features), 0.0, 1.0)

    def hit_rate(self, modality: str | None, has_history: bool) -> Rate | None:
        key = situation(has_history)
        return self.hit_at_5.get(f"{modality}|{key}") or self.hit_at_5.get(f"all|{key}")

    def to_json(self) -> dict:
        def rate(r: Rate) -> dict:
            return {"value": r.value, "ci95": [r.low, r.high], "n": r.n}

        return {
            "source": self.source,
            "feature": "log softmax over all knowledge entries of the ranking score",
            "maps": {k: {"x": list(m.x), "y": list(m.y)} for k, m in self.maps.items()},
            "hit_at_5": {k: rate(r) for k, r in sorted(self.hit_at_5.items())},
            "ece_top5": {k: rate(r) for k, r in sorted(self.ece_top5.items())},
            "image_similarity_threshold": self.image_similarity_threshold,
        }

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        def rate(d: dict) -> Rate:
            return Rate(float(d["value"]), float(d["ci95"][0]), float(d["ci95"][1]),
                        int(d["n"]))

        maps = {k: IsotonicMap(tuple(map(float, m["x"])), tuple(map(float, m["y"])))
                for k, m in data["maps"].items()}
        missing = set(SITUATIONS) - set(maps)
        if missing:
            raise ValueError(f"calibration lacks maps for {sorted(missing)}")
        threshold = data.get("image_similarity_threshold")
        return cls(maps=maps,
                   hit_at_5={k: rate(v) for k, v in data.get("hit_at_5", {}).items()},
                   image_similarity_threshold=None if threshold is None else float(threshold),
                   ece_top5={k: rate(v) for k, v in data.get("ece_top5", {}).items()},
                   source=str(data.get("source", "")))


def load_calibration(weights_dir: str | Path | None) -> Calibration | None:
    """The bundle's calibration file, or None when the bundle has none."""
    if weights_dir is None:
        return None
    path = Path(weights_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    return Calibration.from_json(json.loads(path.read_text()))


def fit_isotonic(features: np.ndarray, hits: np.ndarray) -> IsotonicMap:
    """Isotonic regression of hit (0/1) on the feature, kept as its knots."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(np.asarray(features, dtype=np.float64), np.asarray(hits, dtype=np.float64))
    return IsotonicMap(tuple(round(float(v), 6) for v in iso.X_thresholds_),
                       tuple(round(float(v), 6) for v in iso.y_thresholds_))


def expected_calibration_error(p: np.ndarray, hit: np.ndarray, bins: int = 10) -> float:
    """Equal-width 10-bin ECE of probabilities `p` against 0/1 outcomes `hit`."""
    p, hit = np.asarray(p, dtype=np.float64), np.asarray(hit, dtype=np.float64)
    if p.size == 0:
        raise ValueError("no predictions")
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(float(p[mask].mean()) - float(hit[mask].mean()))
    return total / p.size
