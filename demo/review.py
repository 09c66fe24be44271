"""The reading's products: analysis and the note, downloads, the review audit record, and
write-back to a PACS through the bridge's sender."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from common.catalog import languages
from demo.state import AI_DRAFT, Progress, ViewerState, _parts, _readable
from imaging.types import Analysis, ClinicalContext
from pacs_bridge.study import Study

# ------------------------------------------------------------------ analysis and note


def analyse(
    state: ViewerState,
    context: ClinicalContext,
    progress: Progress | None = None,
    index: int | None = None,
):
    """Run `imaging.analyze` and `imaging.notes.compose` on the study of the selected stack
    (the first study if none), with the header's clinical context under the form's (the
    same `header_context.merged` the CLI and the bridge use); failures land in `note_error`."""
    from imaging.header_context import merged

    view = state.view(index)
    state.active = view.study_index if view is not None else 0
    state.context = context
    state.analysis, state.note, state.note_error, state.exports = None, None, "", {}
    if state.study is None:
        state.note_error = "Upload a study first."
        return state
    context = state.context = merged(context, state.study)
    parts = _parts()
    if parts.analyze is None:
        state.note_error = "Analysis unavailable: " + parts.missing.get("analysis", "")
        return state
    if progress is not None:
        progress(0.3, desc="analysing images")
    try:
        state.analysis = parts.analyze(state.study, context)
    except Exception as exc:
        state.note_error = "Analysis failed: " + _readable(exc)
        return state
    if parts.compose is None:
        state.note_error = "Note composition unavailable: " + parts.missing.get("note", "")
        return state
    if progress is not None:
        progress(0.8, desc="writing the draft note")
    try:
        state.note = parts.compose(state.analysis, context)
    except Exception as exc:
        state.note_error = "Note composition failed: " + _readable(exc)
    return state


def _observations_markdown(analysis: Analysis) -> str:
    lines = []
    for sa in analysis.series:
        lines.append(f"**Series {sa.series_instance_uid[-12:]}** ({sa.header_modality}, "
                     f"{sa.n_images} image(s), quality {sa.quality_score:.2f})")
        for o in sorted(sa.observations, key=lambda o: (o.kind, -o.probability)):
            lines.append(f"- {o.kind}: {o.label} — p = {o.probability:.2f}")
        lines += [f"- ⚠ {w}" for w in sa.warnings]
    return "\n".join(lines)


def observations_rows(state: ViewerState) -> list[list[object]]:
    """(series, kind, observation, probability) rows for the observations table."""
    rows: list[list[object]] = []
    if state.analysis is None:
        return rows
    for sa in state.analysis.series:
        for o in sorted(sa.observations, key=lambda o: (o.kind, -o.probability)):
            rows.append([sa.header_modality, o.kind, o.label, round(float(o.probability), 3)])
    return rows


def note_markdown(state: ViewerState, lang: str = "en") -> str:
    """The draft note in one of its languages; without a note, what is available and why."""
    lang = lang if lang in languages() else "en"
    if state.note is not None:
        parts = _parts()
        if parts.to_markdown is not None:
            try:
                return parts.to_markdown(state.note, lang)
            except Exception as exc:
                return f"**{AI_DRAFT}**\n\nCannot render the note: {_readable(exc)}"
    if state.study is None:
        return ""
    text = f"**{AI_DRAFT}**\n\n"
    if state.note_error:
        text += f"{state.note_error}\n\n"
    if state.analysis is not None:
        text += _observations_markdown(state.analysis)
    return text


def _safe_uid(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


def export_files(state: ViewerState) -> list[str]:
    """Write the downloads (JSON, Markdown ×2, DICOM SR, secondary capture) once per note."""
    if state.note is None:
        return []
    if state.exports:
        return list(state.exports.values())
    if not state.workdir:  # created only when there is something to download
        state.workdir = tempfile.mkdtemp(prefix="radassist-view-")
    out = Path(state.workdir)
    stem = "radassist-" + _safe_uid(state.study.study_instance_uid if state.study else "none")
    parts = _parts()
    files: dict[str, str] = {}
    if parts.to_json is not None:
        path = out / f"{stem}.json"
        path.write_text(parts.to_json(state.note), encoding="utf-8")
        files["json"] = str(path)
    for lang in languages():
        path = out / f"{stem}.{lang}.md"
        path.write_text(note_markdown(state, lang), encoding="utf-8")
        files[f"md_{lang}"] = str(path)
    files.update(_dicom_exports(state, out, stem))
    state.exports = files
    return list(files.values())


def _dicom_exports(state: ViewerState, out: Path, stem: str) -> dict[str, str]:
    """DICOM SR (TID 1500) and secondary capture: the same objects the bridge sends back."""
    try:
        from imaging.pipeline import dicom_objects

        objects = dicom_objects(state.study, state.analysis, state.note)
    except Exception as exc:
        state.messages.append(f"Could not build the DICOM SR / SC: {_readable(exc)}")
        return {}
    files: dict[str, str] = {}
    for key, ds in zip(("sr", "sc"), objects, strict=False):
        path = out / f"{stem}.{key}.dcm"
        try:
            ds.save_as(path, enforce_file_format=True)
            files[key] = str(path)
        except Exception as exc:
            state.messages.append(f"Could not write the DICOM {key.upper()}: {_readable(exc)}")
    return files


# ------------------------------------------------------------------ review audit


def audit_path() -> Path:
    """`RADASSIST_AUDIT`, else ~/.radassist/audit.jsonl (outside the repository)."""
    env = os.environ.get("RADASSIST_AUDIT")
    return Path(env) if env else Path.home() / ".radassist" / "audit.jsonl"


def _study_uids(study: Study) -> list[str]:
    uids = {study.study_instance_uid}
    for series in study.series:
        uids.add(series.series_instance_uid)
        uids.update(i.sop_instance_uid for i in series.instances)
    return sorted((u for u in uids if u), key=len, reverse=True)  # longest first


# "age 95", "Age: 95" (English note) and "年龄 95", "年龄：95" (Chinese note): ages above 89
# identify a person
_AGE_OVER_89 = re.compile(r"((?:\bage|年龄)\s*[:：]?\s*)(9\d|1\d\d)(?!\d)", re.IGNORECASE)


def _scrub_strings(value: object) -> object:
    """Identifier-like patterns (names after titles, dates, record numbers, ages over 89)
    removed from every string of a JSON value; numbers and structure are kept."""
    from imaging.cases.deid import scrub

    if isinstance(value, str):
        return _AGE_OVER_89.sub(lambda m: m.group(1) + "90+", scrub(value))
    if isinstance(value, list):
        return [_scrub_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_strings(v) for k, v in value.items()}
    return value


def deidentified_note_json(state: ViewerState) -> object | None:
    """The note as JSON with every UID of the study replaced by a one-way pseudonym and the
    free text (history, typed context) scrubbed."""
    parts = _parts()
    if state.note is None or parts.to_json is None or state.study is None:
        return None
    text = parts.to_json(state.note)
    for uid in _study_uids(state.study):
        text = text.replace(uid, "uid:" + _safe_uid(uid))
    return _scrub_strings(json.loads(text))


def record_decision(
    state: ViewerState, decision: str, edited_text: str = "", path: Path | None = None
) -> str:
    """Append Accept / Edit / Reject to the audit file; returns a confirmation line.

    The record is de-identified: study, series and instance UIDs become one-way hashes, no
    patient attribute is written, and free text is scrubbed of identifier-like patterns;
    what remains is the note, the decision and a UTC timestamp.
    """
    decision = decision.lower()
    if decision not in {"accept", "edit", "reject"}:
        return f"Unknown decision {decision!r}."
    if state.study is None or (state.note is None and state.analysis is None):
        return "Nothing to record: analyse a study first."
    from imaging.cases.deid import scrub

    edited = edited_text if decision == "edit" else None
    if edited:
        for uid in _study_uids(state.study):
            edited = edited.replace(uid, "uid:" + _safe_uid(uid))
        edited = "\n".join(scrub(line) for line in edited.splitlines())
    record = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "decision": decision,
        "study": "uid:" + _safe_uid(state.study.study_instance_uid),
        "model_version": state.analysis.model_version if state.analysis else None,
        "label": AI_DRAFT,
        "note": deidentified_note_json(state),
        "edited_note": edited,
    }
    path = path or audit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    return f"Recorded '{decision}' at {record['timestamp']} in {path}."


# ------------------------------------------------------------------ write-back


def send_to_pacs(state: ViewerState, destination: str, timeout: float = 20.0) -> str:
    """Store the DICOM SR and secondary capture at `destination`, through the bridge's sender
    (the same transfer syntaxes and warning statuses as the bridge's own write-back).

    `destination` is `AET@host:port` (C-STORE) or an http(s) DICOMweb root (STOW-RS).
    Returns one readable status line.
    """
    if not destination:
        return "No PACS destination configured (set RADASSIST_PACS)."
    files = [state.exports[k] for k in ("sr", "sc") if k in state.exports]
    if not files:
        return "Nothing to send: analyse a study first (needs the DICOM SR / SC)."
    from pydicom import dcmread

    from pacs_bridge.service.config import DestinationConfig
    from pacs_bridge.service.sender import make_sender

    if destination.startswith(("http://", "https://")):
        cfg, how = DestinationConfig(kind="dicomweb", url=destination), "STOW-RS"
    else:
        try:
            aet, address = destination.split("@", 1)
            host, port = address.rsplit(":", 1)
            cfg = DestinationConfig(kind="dimse", ae_title=aet, host=host, port=int(port))
        except ValueError:
            return f"Bad destination {destination!r}: expected AET@host:port."
        how = "C-STORE"
    datasets = [dcmread(f) for f in files]
    sent: list[str] = []
    try:
        sender = make_sender(cfg)
        sender.timeout = timeout
        sender.send(datasets, sent.append)
    except Exception as exc:
        return f"Send to PACS failed: {_readable(exc)}"
    return f"Sent {len(sent)} object(s) to {destination} ({how})."
