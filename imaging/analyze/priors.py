"""What the DICOM header already says, combined with the image heads.

The header's modality (CT, MR, CR, DX) and the region(s) its body part, anatomic region,
protocol and descriptions name (`series_header`) each multiply the image head's probability
of the label they name by a likelihood ratio: strong evidence, not certainty (mislabelled
series exist). The plane is different: ImageOrientationPatient is a measurement, not a
label someone typed, so where it exists it decides (`plane_decision`); the image's plane head
decides only without it. Labels are the bundle's, in its heads' order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.series_header import (
    HEADER_REGION_MEASURED,
    HEADER_REGION_RATIO,
    PlaneGeometry,
    agreement_ratio,
    plane_geometry,
    with_prior,
)

HEADER_MODALITY = {"CT": "CT", "MR": "MR", "CR": "XR", "DX": "XR"}
HEADER_LIKELIHOOD_RATIO = 18.0  # how much more we trust a CT/MR/CR/DX header than the pixels




def with_header(p_image: np.ndarray, header: str, modalities: tuple[str, ...]) -> np.ndarray:
    """Combine the modality head with the DICOM header (likelihood ratio 18:1).

    OT/SC headers say nothing about the modality, so the image head decides alone.
    """
    expected = HEADER_MODALITY.get(header)
    if expected is None:
        return p_image
    return with_prior(p_image, modalities, expected, HEADER_LIKELIHOOD_RATIO)


def with_header_regions(p_region: np.ndarray, regions: tuple[str, ...],
                        named: tuple[str, ...]) -> np.ndarray:
    """The region head combined with the region(s) the header names (if any)."""
    return with_prior(p_region, regions, tuple(named), HEADER_REGION_RATIO)


def with_body_part(p_region: np.ndarray, regions: tuple[str, ...],
                   region: str | None) -> np.ndarray:
    """One region named by the header (kept for callers that have only BodyPartExamined)."""
    return with_header_regions(p_region, regions, (region,) if region else ())


@dataclass(frozen=True)
class PlaneDecision:
    """The series' plane probabilities and what decided them."""

    probabilities: dict[str, float]  # plane label -> probability, "oblique" included if so
    source: str  # "geometry" | "image"
    geometry: PlaneGeometry | None
    image_plane: str  # what the image head alone says


def plane_decision(p_image: np.ndarray, planes: tuple[str, ...], orientation) -> PlaneDecision:
    """Geometry first: ImageOrientationPatient's plane (or "oblique") with certainty where
    the header has one; otherwise the image head's probabilities."""
    image_plane = planes[int(np.argmax(p_image))]
    geometry = plane_geometry(orientation)
    if geometry is None:
        return PlaneDecision({p: float(v) for p, v in zip(planes, p_image, strict=True)},
                             "image", None, image_plane)
    probabilities = {p: 0.0 for p in planes}
    probabilities[geometry.plane] = 1.0
    return PlaneDecision(probabilities, "geometry", geometry, image_plane)


__all__ = ["HEADER_MODALITY", "HEADER_REGION_MEASURED", "HEADER_REGION_RATIO", "PlaneDecision",
           "agreement_ratio", "plane_decision", "with_body_part", "with_header",
           "with_header_regions"]
