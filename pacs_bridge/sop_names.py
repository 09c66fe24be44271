"""SOP class names: pydicom's registry (the standard's own), plus classes newer than it.

Its own module because both the classifier (`sop_classes`) and the SR renderer (`sr_text`)
need names, and the classifier renders SRs: with the names in either, the two import each
other.
"""

from __future__ import annotations

from pydicom.uid import UID

# Classes newer than the installed pydicom's registry (seen in real corpora).
_EXTRA_NAMES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.8": "Height Map Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.88.36": "Extensible SR Storage",
}


def sop_class_name(uid: str) -> str:
    """The registry name of a SOP class, or the UID itself (marked private/unknown)."""
    uid = str(uid or "").strip()
    if not uid:
        return "unknown SOP class"
    name = UID(uid).name  # pydicom's registry; an unknown UID names itself
    if name != uid:
        return name
    if uid in _EXTRA_NAMES:
        return _EXTRA_NAMES[uid]
    if uid.startswith("1.2.840.10008."):
        return f"unknown standard SOP class {uid}"
    return f"private SOP class {uid}"
