"""What a series' DICOM header already says about anatomy, plane and position.

The model reads region and plane from pixels; the header often states them outright.
- Region: BodyPartExamined (PS3.16 CID 4031 defined terms), the AnatomicRegionSequence,
  the protocol name and the series, requested-procedure and study descriptions. Their words
  go through one small mapping table (`knowledge/header_regions.csv`: English, DICOM defined
  terms, vendor abbreviations, German, Chinese) to the model's regions. The header's region
  is evidence combined with the image (`analyze.priors`, a likelihood ratio), never a blind
  override: BodyPartExamined is sometimes the protocol's default, and a phantom scanned on a
  head protocol says "BRAIN".
- Plane: ImageOrientationPatient gives the slice plane exactly. The dominant component of the
  slice normal names it (x sagittal, y coronal, z axial); beyond `OBLIQUE_DEGREES` from that
  axis the series is "oblique", with its angle. Where geometry exists it decides.
- Position: PatientPosition (HFS, FFP, HFDL, ...) or, for radiographs, ViewPosition.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from imaging.datasets import PLANES, REGIONS
from imaging.header_context import dicom_text

TERMS_FILE = Path(__file__).resolve().parent / "knowledge" / "header_regions.csv"
# Beyond this angle between the slice normal and its nearest patient axis a series is called
# oblique. 35° keeps the usual tilted acquisitions (a gantry tilt of 15-30°, an axial along
# the AC-PC line) under their plane's name and calls a double-oblique series what it is.
OBLIQUE_DEGREES = 35.0
# fields read for the region, most specific first: the first one whose words map decides
REGION_FIELDS = ("BodyPartExamined", "AnatomicRegionSequence", "ProtocolName",
                 "SeriesDescription", "RequestedProcedureDescription", "StudyDescription")
_CJK = re.compile(r"[\u3400-\u9fff]")


def agreement_ratio(right: int, of: int, k: int) -> float:
    """Likelihood ratio of a header label that is right `right` times in `of`, its errors
    spread over the `k - 1` other labels: a / ((1 - a) / (k - 1)), a = (right + 1) / (of + 2)
    (Laplace: never certainty from a finite count)."""
    a = (right + 1) / (of + 2)
    return a * (k - 1) / (1 - a)


# The header's region: how often is it right? Measured, not chosen:
# - Gueld et al., "Quality of DICOM header information for image categorization", Proc. SPIE
#   4685 (2002) 280-288: BodyPartExamined was wrong in 90 of 580 clinical CT/MR images
#   (15.5 %; 15.3 % of 562 a year later), mostly a protocol used outside its usual region;
# - the dev studies (`dicom/studies/labels.csv`, `tests/test_header_region.py` re-measures):
#   every labelled diagnostic series whose header names a region names the labelled one
#   (4 of 4; the other 3 name none).
# Pooled, 490 + 4 right of 580 + 4, over the 5 cross-sectional regions: a ratio of about 22.
HEADER_REGION_MEASURED = (490 + 4, 580 + 4)
HEADER_REGION_RATIO = agreement_ratio(*HEADER_REGION_MEASURED, k=5)


@dataclass(frozen=True)
class Term:
    term: str
    regions: tuple[str, ...]
    kind: str  # "anatomy" | "abbreviation" | "language" | "technique"


@lru_cache(maxsize=1)
def region_terms() -> dict[str, Term]:
    """The mapping table, read once: upper-case term -> `Term`."""
    out: dict[str, Term] = {}
    with TERMS_FILE.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            regions = tuple(row["regions"].split())
            unknown = [r for r in regions if r not in REGIONS]
            if unknown or not regions:
                raise ValueError(f"{TERMS_FILE}: {row['term']}: regions {unknown or regions} "
                                 f"are not the model's ({', '.join(REGIONS)})")
            out[row["term"].upper()] = Term(row["term"].upper(), regions, row["kind"])
    return out


def terms_in(text: str) -> tuple[Term, ...]:
    """The table's terms in a header text, longest phrase first, each word used once.

    Words are split at anything not a letter or digit; two adjacent words are also tried
    joined ("C SPINE" -> CSPINE, "HEAD NECK" -> HEADNECK), so a phrase wins over its words.
    Chinese terms are matched as substrings, the longest first.
    """
    table = region_terms()
    found: list[Term] = []
    upper = str(text or "").upper()
    if _CJK.search(upper):
        for term in sorted((t for t in table if _CJK.search(t)), key=lambda t: (-len(t), t)):
            if term in upper:
                found.append(table[term])
                upper = upper.replace(term, " ")
    words = [w for w in re.split(r"[^0-9A-ZÄÖÜ]+", upper) if w]
    used = [False] * len(words)
    for i in range(len(words) - 1):
        joined = words[i] + words[i + 1]
        if not used[i] and joined in table:
            found.append(table[joined])
            used[i] = used[i + 1] = True
    for i, word in enumerate(words):
        if not used[i] and word in table:
            found.append(table[word])
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class SeriesHeader:
    body_part: str = ""  # BodyPartExamined as written, upper case
    region: str | None = None  # the first region the header names (compatibility)
    description: str = ""
    regions: tuple[str, ...] = ()  # every region the deciding field names
    region_field: str = ""  # the DICOM field whose words decided (e.g. "BodyPartExamined")
    region_terms: tuple[str, ...] = ()  # the table's terms found in it
    position: str = ""  # PatientPosition, else ViewPosition, upper case


def _field_text(ds, keyword: str) -> str:
    """`dicom_text`, and the code meanings of AnatomicRegionSequence."""
    if keyword != "AnatomicRegionSequence":
        return dicom_text(ds, keyword)
    try:
        return " ".join(str(item.get("CodeMeaning", "") or "")
                        for item in (ds.get(keyword) or ()))
    except Exception:  # noqa: BLE001 - a malformed value says nothing
        return ""


def header_regions(ds) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """(regions, deciding field, terms) from a dataset's header; anatomy words in any field
    come before technique words (MPRAGE, DTI, fMRI) in any field."""
    for kinds in (("anatomy", "abbreviation", "language"), ("technique",)):
        for keyword in REGION_FIELDS:
            terms = [t for t in terms_in(_field_text(ds, keyword)) if t.kind in kinds]
            if terms:
                regions = tuple(dict.fromkeys(r for t in terms for r in t.regions))
                return regions, keyword, tuple(t.term for t in terms)
    return (), "", ()


def series_header(series) -> SeriesHeader:
    """The header context of a series, from its first image instance."""
    ds = next((i.dataset for i in series.instances if i.dataset is not None), None)
    if ds is None:
        return SeriesHeader(description=str(getattr(series, "description", "") or ""))
    body = " ".join(_field_text(ds, "BodyPartExamined").split()).upper()
    regions, field, terms = header_regions(ds)
    position = (_field_text(ds, "PatientPosition") or _field_text(ds, "ViewPosition")).strip()
    return SeriesHeader(body_part=body, region=regions[0] if regions else None,
                        description=str(getattr(series, "description", "") or ""),
                        regions=regions, region_field=field, region_terms=terms,
                        position=position.upper())


def plane_of(orientation: tuple[float, ...] | None) -> tuple[str | None, float]:
    """The anatomical plane ImageOrientationPatient describes and how clearly (|cos| 0-1).

    The slice normal's largest patient-axis component names it: x (left-right) sagittal,
    y (front-back) coronal, z (head-foot) axial.
    """
    if orientation is None or len(orientation) != 6:
        return None, 0.0
    try:
        iop = np.asarray(orientation, dtype=np.float64)
    except (TypeError, ValueError):
        return None, 0.0
    normal = np.cross(iop[:3], iop[3:])
    norm = float(np.linalg.norm(normal))
    if not np.isfinite(norm) or norm < 1e-6:
        return None, 0.0
    normal = np.abs(normal / norm)
    axis = int(np.argmax(normal))
    return ("sagittal", "coronal", "axial")[axis], float(normal[axis])


@dataclass(frozen=True)
class PlaneGeometry:
    """The plane ImageOrientationPatient states: `plane` is one of PLANES or "oblique"."""

    plane: str
    nearest: str  # the nearest of PLANES
    angle: float  # degrees between the slice normal and the nearest plane's axis


def plane_geometry(orientation: tuple[float, ...] | None) -> PlaneGeometry | None:
    """The plane decided by geometry, or None when the header gives no usable orientation."""
    nearest, clarity = plane_of(orientation)
    if nearest is None:
        return None
    angle = math.degrees(math.acos(min(1.0, max(0.0, clarity))))
    return PlaneGeometry("oblique" if angle > OBLIQUE_DEGREES else nearest, nearest,
                         round(angle, 1))


_FIRST = {"HF": "head_first", "FF": "feet_first", "LF": "left_first", "RF": "right_first",
          "AF": "anterior_first", "PF": "posterior_first"}
_LYING = {"S": "supine", "P": "prone", "DR": "decubitus_right", "DL": "decubitus_left"}
_VIEW = {"AP": ("ap",), "PA": ("pa",), "LL": ("left_lateral",), "RL": ("right_lateral",),
         "LLD": ("decubitus_left",), "RLD": ("decubitus_right",), "LLO": ("left_oblique",),
         "RLO": ("right_oblique",), "LAT": ("lateral",)}


def position_parts(code: str) -> tuple[str, ...]:
    """PatientPosition / ViewPosition as words' keys: "HFP" -> ("head_first", "prone");
    "LLD" -> ("decubitus_left",); () for a code it does not know."""
    code = (code or "").strip().upper()
    if code in _VIEW:
        return _VIEW[code]
    if len(code) >= 3 and code[:2] in _FIRST and code[2:] in _LYING:
        return _FIRST[code[:2]], _LYING[code[2:]]
    return ()


def with_prior(p_image: np.ndarray, labels: tuple[str, ...], expected, ratio: float
               ) -> np.ndarray:
    """Bayes: the image probabilities times a likelihood ratio for the header's label(s)."""
    if isinstance(expected, str):
        expected = (expected,)
    named = [labels.index(e) for e in (expected or ()) if e in labels]
    if not named:
        return p_image
    weights = np.ones(len(labels))
    weights[named] = ratio
    post = p_image * weights
    return post / max(float(post.sum()), 1e-12)


__all__ = ["HEADER_REGION_MEASURED", "HEADER_REGION_RATIO", "OBLIQUE_DEGREES", "PLANES",
           "REGIONS", "PlaneGeometry", "SeriesHeader", "agreement_ratio", "header_regions",
           "plane_geometry", "plane_of", "position_parts", "region_terms", "series_header",
           "terms_in", "with_prior"]
