"""What the DICOM header already says, combined with the image heads by Bayes' rule.

The header's modality (CT, MR, CR, DX), the region its BodyPartExamined maps to, and the plane
of ImageOrientationPatient each multiply the image head's probability of the label they name
by a likelihood ratio: strong evidence, not certainty (mislabelled series exist). Labels are
the bundle's, in its heads' order.
"""

from __future__ import annotations

import numpy as np

from imaging.series_header import OBLIQUE_LIMIT, plane_of, with_prior

HEADER_MODALITY = {"CT": "CT", "MR": "MR", "CR": "XR", "DX": "XR"}
HEADER_LIKELIHOOD_RATIO = 18.0  # how much more we trust a CT/MR/CR/DX header than the pixels
BODY_PART_RATIO = 9.0  # likelihood ratio of a BodyPartExamined that maps to a region
PLANE_RATIO = 50.0  # of the plane ImageOrientationPatient states (clear, not oblique)
OBLIQUE_PLANE_RATIO = 3.0  # of the nearest plane of a strongly oblique orientation


def with_header(p_image: np.ndarray, header: str, modalities: tuple[str, ...]) -> np.ndarray:
    """Combine the modality head with the DICOM header (likelihood ratio 18:1).

    OT/SC headers say nothing about the modality, so the image head decides alone.
    """
    expected = HEADER_MODALITY.get(header)
    if expected is None:
        return p_image
    return with_prior(p_image, modalities, expected, HEADER_LIKELIHOOD_RATIO)


def with_body_part(p_region: np.ndarray, regions: tuple[str, ...],
                   region: str | None) -> np.ndarray:
    """The region head combined with the region BodyPartExamined maps to (if any)."""
    return with_prior(p_region, regions, region, BODY_PART_RATIO)


def with_orientation(p_plane: np.ndarray, planes: tuple[str, ...], orientation
                     ) -> tuple[np.ndarray, str | None]:
    """The plane head combined with ImageOrientationPatient's plane; (posterior, stated)."""
    stated, clarity = plane_of(orientation)
    ratio = PLANE_RATIO if clarity >= OBLIQUE_LIMIT else OBLIQUE_PLANE_RATIO
    return with_prior(p_plane, planes, stated, ratio), stated


__all__ = ["HEADER_MODALITY", "with_body_part", "with_header", "with_orientation"]
