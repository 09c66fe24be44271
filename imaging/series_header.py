"""What a series' DICOM header already says about anatomy and plane, before any pixel is read.

The model reads region and plane from pixels; the header often states them outright:
BodyPartExamined (a defined term list, PS3.16 CID 4031) names the anatomy, and
ImageOrientationPatient gives the slice plane exactly. Both are combined with the image
heads as evidence (Bayes with a likelihood ratio, like the modality header), never as a
blind override: BodyPartExamined is sometimes left at the protocol's default, and a
phantom scanned on a head protocol says "BRAIN".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.datasets import PLANES, REGIONS

# BodyPartExamined defined terms (and common vendor variants) -> the model's region labels
_BODY_PART_REGION = {
    "head": ("HEAD", "BRAIN", "SKULL", "ORBIT", "SINUS", "IAC", "TMJ", "FACE", "PITUITARY",
             "HEADNECK", "NECK", "CAROTID", "JAW", "MANDIBLE", "EAR", "NOSE"),
    "spine_muscles": ("SPINE", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "SACRUM", "COCCYX",
                      "WHOLESPINE", "SHOULDER", "ELBOW", "WRIST", "HAND", "HIP", "KNEE",
                      "ANKLE", "FOOT", "EXTREMITY", "ARM", "LEG", "FEMUR", "TIBIA", "HUMERUS",
                      "FOREARM", "THIGH", "FINGER", "TOE", "HEEL"),
    "thorax": ("CHEST", "THORAX", "LUNG", "HEART", "BREAST", "RIB", "STERNUM", "CLAVICLE",
               "MEDIASTINUM", "CORONARY", "AORTA", "TAORTA"),
    "abdomen": ("ABDOMEN", "LIVER", "PANCREAS", "SPLEEN", "STOMACH", "GALLBLADDER", "BOWEL",
                "COLON", "AAORTA"),
    "reproductive_urinary": ("PELVIS", "KIDNEY", "BLADDER", "PROSTATE", "UTERUS", "OVARY",
                             "TESTIS", "SCROTUM", "URETER", "RENAL"),
}
_TERM_REGION = {term: region for region, terms in _BODY_PART_REGION.items() for term in terms}
OBLIQUE_LIMIT = 0.8  # |cos| of the normal with its main axis: beyond ~37° the plane is unclear


@dataclass(frozen=True)
class SeriesHeader:
    body_part: str = ""  # as written, upper case
    region: str | None = None  # one of REGIONS, when BodyPartExamined maps to one
    description: str = ""


def series_header(series) -> SeriesHeader:
    """The header context of a series, from its first image instance."""
    ds = next((i.dataset for i in series.instances if i.dataset is not None), None)
    if ds is None:
        return SeriesHeader()
    try:
        body = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    except Exception:  # noqa: BLE001 - a malformed value says nothing
        body = ""
    key = body.replace(" ", "").replace("_", "").replace("-", "")
    return SeriesHeader(body_part=body, region=_TERM_REGION.get(key),
                        description=str(getattr(series, "description", "") or ""))


def plane_of(orientation: tuple[float, ...] | None) -> tuple[str | None, float]:
    """The anatomical plane ImageOrientationPatient describes and how clearly (|cos| 0-1).

    The slice normal's largest patient-axis component names it: x (left-right) sagittal,
    y (front-back) coronal, z (head-foot) axial.
    """
    if orientation is None or len(orientation) != 6:
        return None, 0.0
    iop = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    norm = float(np.linalg.norm(normal))
    if not np.isfinite(norm) or norm < 1e-6:
        return None, 0.0
    normal = np.abs(normal / norm)
    axis = int(np.argmax(normal))
    return ("sagittal", "coronal", "axial")[axis], float(normal[axis])


def with_prior(p_image: np.ndarray, labels: tuple[str, ...], expected: str | None,
               ratio: float) -> np.ndarray:
    """Bayes: the image probabilities times a likelihood ratio for the header's label."""
    if expected is None or expected not in labels:
        return p_image
    weights = np.ones(len(labels))
    weights[labels.index(expected)] = ratio
    post = p_image * weights
    return post / max(float(post.sum()), 1e-12)


__all__ = ["PLANES", "REGIONS", "SeriesHeader", "plane_of", "series_header", "with_prior"]
