"""Structured Report content as readable, indented text ("concept: value").

An SR's meaning lives in its ContentSequence tree; a reader wants the tree as an outline,
not as DICOM tags. Every value type of PS3.3 C.17.3 is rendered to one line; anything odd
(missing code sequences, unknown value types) becomes "?" rather than an exception, so a
malformed report never stops a study from loading.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from pacs_bridge.sop_names import sop_class_name

_INDENT = "  "
MAX_DEPTH = 50  # reports nest a few levels; a deeper tree is malformed (or hostile)


def _meaning(seq_item_parent: Dataset, keyword: str) -> str:
    seq = seq_item_parent.get(keyword)
    if not seq:
        return ""
    item = seq[0]
    return str(item.get("CodeMeaning", "") or item.get("CodeValue", "") or "")


def _num(item: Dataset) -> str:
    seq = item.get("MeasuredValueSequence")
    if not seq:
        return "(no value)"
    mv = seq[0]
    value = mv.get("NumericValue", "")
    units = ""
    units_seq = mv.get("MeasurementUnitsCodeSequence")
    if units_seq:
        code = units_seq[0]
        units = str(code.get("CodeValue", "") or code.get("CodeMeaning", ""))
        if units in ("1", "{ratio}"):
            units = ""
    return f"{value} {units}".strip()


def _refs(item: Dataset) -> str:
    seq = item.get("ReferencedSOPSequence")
    if not seq:
        return "(no reference)"
    ref = seq[0]
    sop_class = sop_class_name(ref.get("ReferencedSOPClassUID", ""))
    text = f"{sop_class} {ref.get('ReferencedSOPInstanceUID', '')}"
    frames = ref.get("ReferencedFrameNumber")
    if frames is not None:
        text += f" frame {frames}"
    segments = ref.get("ReferencedSegmentNumber")
    if segments is not None:
        text += f" segment {segments}"
    return text


def _value(item: Dataset) -> str:
    vt = str(item.get("ValueType", "") or "")
    if vt == "TEXT":
        return str(item.get("TextValue", ""))
    if vt == "CODE":
        return _meaning(item, "ConceptCodeSequence")
    if vt == "NUM":
        return _num(item)
    if vt == "DATE":
        return str(item.get("Date", ""))
    if vt == "TIME":
        return str(item.get("Time", ""))
    if vt == "DATETIME":
        return str(item.get("DateTime", ""))
    if vt == "PNAME":
        return str(item.get("PersonName", ""))
    if vt == "UIDREF":
        return str(item.get("UID", ""))
    if vt in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        return _refs(item)
    if vt in ("SCOORD", "SCOORD3D"):
        data = item.get("GraphicData") or []
        dims = 3 if vt == "SCOORD3D" else 2
        return f"{item.get('GraphicType', '?')} with {len(data) // dims} point(s)"
    if vt == "TCOORD":
        return f"{item.get('TemporalRangeType', '?')}"
    if vt == "CONTAINER":
        return ""
    return "?"


class _Enough(Exception):
    """Raised to stop walking once the requested number of lines is reached."""


def _walk(items, depth: int, lines: list[str], limit: int | None = None) -> None:
    if limit is not None and len(lines) >= limit:
        raise _Enough
    if depth > MAX_DEPTH:
        lines.append(_INDENT * depth + "… (nesting too deep, not shown)")
        return
    for item in items or ():
        if len(item) == 0:  # e.g. content replaced by de-identification
            continue
        try:
            concept = _meaning(item, "ConceptNameCodeSequence")
            value = _value(item)
        except Exception as exc:  # one malformed item must not hide the rest of the report
            lines.append(_INDENT * depth + f"? (unreadable content item: {type(exc).__name__})")
            continue
        if str(item.get("ValueType", "")) == "CONTAINER":
            line = f"{concept or 'Container'}:" if item.get("ContentSequence") else concept
        elif concept:
            line = f"{concept}: {value}"
        else:
            line = value
        pad = _INDENT * depth
        lines.append(pad + line.rstrip().replace("\n", "\n" + pad + _INDENT))
        if limit is not None and len(lines) >= limit:
            raise _Enough
        children = item.get("ContentSequence")
        if children:
            _walk(children, depth + 1, lines, limit)


def sr_title(ds: Dataset) -> str:
    """The document title (the root ConceptNameCodeSequence meaning)."""
    try:
        return _meaning(ds, "ConceptNameCodeSequence")
    except Exception:
        return ""


def render_sr(ds: Dataset, max_lines: int | None = None) -> str:
    """The report as an indented outline, title first; all of it unless `max_lines`."""
    lines: list[str] = []
    title = sr_title(ds)
    if title:
        lines.append(title)
    flags = []
    if ds.get("CompletionFlag"):
        flags.append(str(ds.CompletionFlag).lower())
    if ds.get("VerificationFlag"):
        flags.append(str(ds.VerificationFlag).lower())
    if flags:
        lines.append(f"({', '.join(flags)})")
    try:
        _walk(ds.get("ContentSequence"), 1 if title else 0, lines, max_lines)
    except _Enough:
        lines = lines[:max_lines]
        lines.append("… (more content; see the full report)")
    except Exception as exc:
        lines.append(f"? (content unreadable: {type(exc).__name__})")
    return "\n".join(lines)
