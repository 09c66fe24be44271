"""Quality before anything clinical: what the model was not trained for gets no statement.

A series is out of distribution when its header modality is not one the bundle was trained
for, its image is blank or a colour photograph, it is a test object (phantom), or its
embedding is less typical of the training images than the bundle's OOD threshold allows.
"""

from __future__ import annotations

import numpy as np

from imaging.model.bundle import BundleSpec
from imaging.phantom import phantom_reason

BLANK_STD = 0.01  # windowed [0,1] standard deviation of an empty image
COLOUR_CHROMA = 0.04  # mean |R-G|+|G-B| (0-1 scale) of a photograph, not a grey image
OOD_SCORE_SPAN = 0.1  # typicality at which the "out of distribution" score reaches 0


def ood_reasons(model, spec: BundleSpec, header: str, stds, chromas,
                embeddings: np.ndarray) -> tuple[list[str], float]:
    """(reasons the series is out of distribution, its median typicality; 0 when refused)."""
    reasons = []
    if header not in spec.supported_header_modalities:
        reasons.append(f"unsupported modality {header or 'unknown'}")
    if max(stds) < BLANK_STD:
        reasons.append("blank or uniform image")
    if np.median(chromas) > COLOUR_CHROMA:
        reasons.append("colour photograph, not a radiological image")
    slice_quality = np.array([model.quality(e) for e in embeddings])
    quality = 0.0 if reasons else float(np.median(slice_quality))
    if not reasons:
        phantom = phantom_reason(embeddings, model)
        if phantom:
            reasons.append(phantom)
            quality = 0.0
    if not reasons and quality < spec.ood_quality_threshold:
        reasons.append(f"image unlike the training data (typicality {quality:.3f})")
    return reasons, quality


def ood_score(ood: bool, quality: float) -> float:
    """The "quality:ood" observation: 1 when refused, else how close to atypical it is."""
    return 1.0 if ood else round(float(np.clip(1.0 - quality / OOD_SCORE_SPAN, 0.0, 1.0)), 6)


__all__ = ["ood_reasons", "ood_score"]
