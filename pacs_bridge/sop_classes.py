"""What a DICOM object is, from its SOP Class UID, so non-image objects are listed, not decoded.

The names come from pydicom's UID dictionary (the standard's own registry), with a few
classes newer than pydicom 3.0 added below. Classification is by the registry name because
the standard names its families consistently ("... SR Storage", "... Waveform Storage",
"... Presentation State Storage", "RT ...").
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from pacs_bridge.sop_names import sop_class_name
from pacs_bridge.study import InstanceKind
from pacs_bridge.transfer_syntaxes import has_pixel_data

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

SR_SUMMARY_LINES = 60  # of a report's text kept in an Instance description; render_sr has all

# Names that contain "Image" or carry pixels but are not meant to be viewed as images.
_NON_IMAGE_PIXEL_CLASSES = {"RT Dose Storage"}


def classify(sop_class_uid: str, ds: Dataset | None = None) -> InstanceKind:
    """Map a SOP class to an `InstanceKind`; unknown classes count as images if they have pixels."""
    name = sop_class_name(sop_class_uid)
    if "Presentation State" in name:
        return InstanceKind.PRESENTATION_STATE
    if "Key Object Selection" in name:
        return InstanceKind.KOS
    if " SR Storage" in name or name.startswith(("Procedure Log", "Macular Grid")):
        return InstanceKind.SR
    if "Segmentation Storage" in name:
        return InstanceKind.SEG
    if name in _NON_IMAGE_PIXEL_CLASSES:
        return InstanceKind.RT
    words = name.replace("-", " ").split()
    if ("RT" in words or "Radiation" in words) and "Image" not in words:
        return InstanceKind.RT
    if "Waveform" in words:
        return InstanceKind.WAVEFORM
    if name.startswith("Encapsulated "):
        return InstanceKind.ENCAPSULATED
    if name.startswith("Raw Data"):
        return InstanceKind.RAW
    if "Image" in words or name.startswith("Parametric Map"):
        return InstanceKind.IMAGE
    if ds is not None and has_pixel_data(ds):
        return InstanceKind.IMAGE
    return InstanceKind.OTHER


def _count(ds: Dataset, keyword: str) -> int:
    try:
        return len(ds.get(keyword) or ())
    except TypeError:
        return 0


def _labels(ds: Dataset, seq_keyword: str, label_keyword: str, limit: int = 6) -> str:
    names = []
    for item in (ds.get(seq_keyword) or ())[:limit]:
        value = str(item.get(label_keyword, "") or "").strip()
        if value:
            names.append(value)
    more = _count(ds, seq_keyword) - len(names)
    text = ", ".join(names)
    if more > 0 and names:
        text += f", +{more} more"
    return text


def _describe_details(ds: Dataset, kind: InstanceKind, name: str) -> str:
    if kind is InstanceKind.SR:
        from pacs_bridge.sr_text import render_sr

        return render_sr(ds, max_lines=SR_SUMMARY_LINES)
    if kind is InstanceKind.KOS:
        from pacs_bridge.sr_text import render_sr, sr_title

        refs = sum(
            _count(s, "ReferencedSOPSequence")
            for study in (ds.get("CurrentRequestedProcedureEvidenceSequence") or ())
            for s in (study.get("ReferencedSeriesSequence") or ())
        )
        text = render_sr(ds, max_lines=SR_SUMMARY_LINES)
        return f"{sr_title(ds) or 'key objects'}: {refs} referenced instance(s)\n{text}"
    if kind is InstanceKind.SEG:
        n = _count(ds, "SegmentSequence")
        labels = _labels(ds, "SegmentSequence", "SegmentLabel")
        return f"{n} segment(s)" + (f": {labels}" if labels else "")
    if kind is InstanceKind.RT:
        if "StructureSetROISequence" in ds:
            labels = _labels(ds, "StructureSetROISequence", "ROIName")
            return f"{_count(ds, 'StructureSetROISequence')} ROI(s)" + (
                f": {labels}" if labels else ""
            )
        if "BeamSequence" in ds or "IonBeamSequence" in ds:
            beams = _count(ds, "BeamSequence") + _count(ds, "IonBeamSequence")
            label = str(ds.get("RTPlanLabel", "") or "").strip()
            return f"plan {label!r}, {beams} beam(s)" if label else f"{beams} beam(s)"
        if "DoseUnits" in ds or "DoseGridScaling" in ds:
            frames = ds.get("NumberOfFrames", 1)
            return (
                f"dose grid {ds.get('Columns', '?')}x{ds.get('Rows', '?')}x{frames}, "
                f"{ds.get('DoseUnits', '?')}, {ds.get('DoseSummationType', '?')}"
            )
        return ""
    if kind is InstanceKind.WAVEFORM:
        parts = []
        for group in ds.get("WaveformSequence") or ():
            parts.append(
                f"{group.get('NumberOfWaveformChannels', '?')} channel(s) x "
                f"{group.get('NumberOfWaveformSamples', '?')} samples at "
                f"{group.get('SamplingFrequency', '?')} Hz"
            )
        return "; ".join(parts)
    if kind is InstanceKind.PRESENTATION_STATE:
        refs = sum(
            _count(s, "ReferencedImageSequence") for s in (ds.get("ReferencedSeriesSequence") or ())
        )
        label = str(ds.get("ContentLabel", "") or "").strip()
        return f"{label or 'presentation state'} for {refs} image(s)"
    if kind is InstanceKind.ENCAPSULATED:
        title = str(ds.get("DocumentTitle", "") or "").strip()
        mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "").strip()
        size = len(ds.get("EncapsulatedDocument") or b"")
        return ", ".join(p for p in (title, mime, f"{size:,} bytes") if p)
    return ""


def describe(ds: Dataset, kind: InstanceKind, sop_class_uid: str) -> str:
    """One line saying what a non-image object is, then details (SR: the report as text).

    Never raises: a malformed object is still listed, with "(details unreadable)".
    """
    name = sop_class_name(sop_class_uid)
    try:
        details = _describe_details(ds, kind, name)
    except Exception as exc:
        details = f"(details unreadable: {type(exc).__name__})"
    if not details:
        return name
    first, _, rest = details.partition("\n")
    return f"{name}: {first}" + (f"\n{rest}" if rest else "")
