"""What a series is for, read from its header before any model sees a pixel.

A real study carries more than diagnostic images: a scout or surview to plan the scan, an
exam-summary or dose screen, a screen capture with burned-in text, an SR. Only diagnostic
series may be diagnosed; the others are listed with the reason, so that a localizer is never
read as "spine and muscles" and a dose screen never gets a differential.

Every rule uses standard attributes (ImageType, SOP class, Photometric Interpretation,
Burned In Annotation, Conversion Type) or the words scanners of every vendor write into the
series description for a planning scan. Nothing here knows a vendor, a UID or a file name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from pacs_bridge.study import InstanceKind, Series

_LOCALIZER_TYPES = {"LOCALIZER", "SCOUT", "SURVIEW", "TOPOGRAM", "SCANOGRAM"}
_LOCALIZER_WORDS = re.compile(
    r"\b(localizer|localiser|locator|scout|surview|survey|topogram|scanogram|tri-?pilot|"
    r"3[- ]?pl(ane)?\s*loc\w*|aahead_scout|pilot)\b", re.IGNORECASE)
# ImageType values of screens and reports: exam summaries, dose pages, screen saves
_DERIVED_TYPES = {"SCREEN SAVE", "SCREENSHOT", "DOSE_INFO", "DOSE INFO", "DOSE_REPORT",
                  "PATIENT_INFO", "EXAM_SUMMARY", "REPORT", "CAPTURE"}
_DERIVED_WORDS = re.compile(
    r"\b(dose\s*(report|info|summary)|exam\s*summary|patient\s*protocol|screen\s*(save|shot|"
    r"capture)|report)\b", re.IGNORECASE)
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"  # SC and its multi-frame variants
_ACQUIRED_GREY = {"CT", "MR", "PT", "NM", "CR", "DX", "MG", "RF", "XA"}


class Role(StrEnum):
    DIAGNOSTIC = "diagnostic"
    LOCALIZER = "localizer"
    DERIVED = "derived"
    NON_IMAGE = "non_image"


@dataclass(frozen=True)
class SeriesRole:
    role: Role
    reason: str  # English, for logs and the JSON; the note words it from `code`
    code: str  # stable, e.g. "image_type_localizer", "rgb_screen"


def _image_type(ds) -> list[str]:
    try:
        return [str(v).strip().upper() for v in (ds.get("ImageType") or ())]
    except TypeError:
        return []


def _text(ds, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "")
    except Exception:  # noqa: BLE001 - a malformed value is just absent here
        return ""


def series_role(series: Series) -> SeriesRole:
    """The role of a series, from its first image instance's header (see module docstring)."""
    images = [i for i in series.instances if i.kind is InstanceKind.IMAGE]
    if not images:
        kinds = sorted({i.kind.value for i in series.instances})
        return SeriesRole(Role.NON_IMAGE, f"no image objects ({', '.join(kinds)})", "non_image")
    ds = images[0].dataset
    image_type = _image_type(ds)
    description = " ".join(_text(ds, k) for k in ("SeriesDescription", "ProtocolName"))
    if _LOCALIZER_TYPES & set(image_type):
        found = sorted(_LOCALIZER_TYPES & set(image_type))[0]
        return SeriesRole(Role.LOCALIZER, f"ImageType says {found}", "image_type_localizer")
    if _LOCALIZER_WORDS.search(_text(ds, "SeriesDescription")):
        return SeriesRole(Role.LOCALIZER, "the series description names a planning scan",
                          "description_localizer")
    secondary = "SECONDARY" in image_type[:2]
    modality = (series.modality or _text(ds, "Modality")).upper()
    photometric = _text(ds, "PhotometricInterpretation").upper()
    capture = str(images[0].sop_class_uid).startswith(_SECONDARY_CAPTURE_PREFIX)
    burned_in = _text(ds, "BurnedInAnnotation").upper() == "YES"
    if _DERIVED_TYPES & set(image_type):
        found = sorted(_DERIVED_TYPES & set(image_type))[0]
        return SeriesRole(Role.DERIVED, f"ImageType says {found}", "image_type_screen")
    if secondary and modality in _ACQUIRED_GREY and photometric in ("RGB", "YBR_FULL",
                                                                   "YBR_FULL_422", "PALETTE COLOR"):
        return SeriesRole(Role.DERIVED, f"a colour secondary image in a {modality} study "
                          "(a screen capture, not an acquisition)", "rgb_screen")
    # a PNG/JPEG teaching image wrapped on upload is a Secondary Capture with burned-in text
    # set to YES (unknown), but no SECONDARY ImageType: it stays diagnostic
    if (secondary and burned_in) or ((secondary or capture) and _DERIVED_WORDS.search(
            description)):
        why = "burned-in text" if burned_in else "its description names a report or screen"
        return SeriesRole(Role.DERIVED, f"a secondary capture with {why}", "secondary_capture")
    return SeriesRole(Role.DIAGNOSTIC, "acquired images", "diagnostic")
