"""CT/MR finding heads: linear models over the network's per-slice trunk features.

They sit beside the traced network in the bundle (`models/findings_ctmr.npz`, written by
`imaging.training.findings_ctmr`), so adding or dropping a head never changes the
TorchScript export. Each head is a class-balanced logistic regression on the standardised
trunk features followed by Platt scaling fitted on train-fold predictions, with the
threshold at which the finding counts as present chosen on the same train folds. Only heads
whose validation AUROC beat a pixel baseline's are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FINDINGS_FILE = "models/findings_ctmr.npz"
LABELS = {  # English labels for the note (Chinese in notes/strings.py)
    "mass": "Mass", "enhancement": "Enhancement", "oedema": "Oedema", "cyst": "Cyst",
    "calcification": "Calcification", "haemorrhage": "Haemorrhage", "effusion": "Effusion",
    "fracture": "Fracture", "infarct": "Infarct", "hydrocephalus": "Hydrocephalus",
    "nodule": "Nodule", "dilatation": "Dilatation", "wall_thickening": "Wall thickening",
    "free_fluid": "Fluid", "air": "Air or gas", "stenosis": "Stenosis",
    "lymphadenopathy": "Lymphadenopathy", "mass_effect": "Mass effect",
}


@dataclass(frozen=True)
class FindingHeads:
    names: tuple[str, ...]
    weight: np.ndarray  # (K, F) over the standardised trunk features
    bias: np.ndarray  # (K,)
    platt_a: np.ndarray  # (K,) calibrated p = sigmoid(a * logit + b)
    platt_b: np.ndarray
    thresholds: np.ndarray  # (K,) calibrated probability at which the finding counts

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, F) per-slice features -> (N, K) calibrated probabilities."""
        logits = np.asarray(features, dtype=np.float32) @ self.weight.T + self.bias
        z = self.platt_a * logits + self.platt_b
        return 1.0 / (1.0 + np.exp(-z))


_LOADED: dict[Path, FindingHeads | None] = {}


def load_heads(weights_dir: str | Path | None) -> FindingHeads | None:
    """The bundle's CT/MR heads, or None when the bundle has none (read once per folder)."""
    if weights_dir is None:
        return None
    path = (Path(weights_dir) / FINDINGS_FILE).resolve()
    if path not in _LOADED:
        heads = None
        if path.is_file():
            with np.load(path) as z:
                heads = FindingHeads(
                    names=tuple(str(n) for n in z["names"]), weight=z["weight"],
                    bias=z["bias"], platt_a=z["platt_a"], platt_b=z["platt_b"],
                    thresholds=z["thresholds"])
        _LOADED[path] = heads
    return _LOADED[path]
