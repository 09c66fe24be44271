"""What the viewer does, as plain functions of a per-session `ViewerState`.

The Gradio layer (`demo/app.py`) only wires widgets to these functions, so each behaviour a
radiologist relies on (ingest messages, windowing, overlay, note language, downloads, the
audit record) is unit-tested without a browser. Every dependency on the analysis stack is
looked up through `_parts()`, so a missing piece (no weights yet) shows one clear sentence
in the UI instead of breaking the page.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from demo import render
from demo.header_panel import header_rows
from imaging.types import Analysis, ClinicalContext, ImageStack, SeriesAnalysis, Window
from pacs_bridge.errors import RadAssistError
from pacs_bridge.study import IngestResult, Series, Study

AI_DRAFT = "AI draft — not reviewed by a physician"
Progress = Callable[..., object]


# ------------------------------------------------------------------ optional parts


@dataclass(frozen=True)
class Parts:
    """Callables of the analysis stack, or None with the reason they are unavailable."""

    ingest: Callable | None
    series_stacks: Callable | None
    analyze: Callable | None
    compose: Callable | None
    to_markdown: Callable | None
    to_json: Callable | None
    missing: dict[str, str] = field(default_factory=dict)


_PARTS: Parts | None = None
_PARTS_LOCK = threading.Lock()


def _try(missing: dict[str, str], label: str, module: str, attr: str):
    try:
        return getattr(importlib.import_module(module), attr)
    except Exception as exc:  # an absent or broken part must not take the viewer down
        missing[label] = f"{module}.{attr} unavailable ({type(exc).__name__}: {exc})"
        return None


def _parts() -> Parts:
    """Imported once per process (heavy modules stay out of the per-request path)."""
    global _PARTS
    with _PARTS_LOCK:
        if _PARTS is None:
            missing: dict[str, str] = {}
            _PARTS = Parts(
                ingest=_try(missing, "ingest", "pacs_bridge.ingest", "ingest"),
                series_stacks=_try(missing, "pixels", "imaging.pixels", "series_stacks"),
                analyze=_try(missing, "analysis", "imaging", "analyze"),
                compose=_try(missing, "note", "imaging.notes", "compose"),
                to_markdown=_try(missing, "markdown", "imaging.notes.render", "to_markdown"),
                to_json=_try(missing, "json", "imaging.notes.render", "to_json"),
                missing=missing,
            )
        return _PARTS


# ------------------------------------------------------------------ session state


@dataclass
class StackView:
    """One viewable stack (a series may split into several) or a non-image series."""

    label: str
    series: Series
    stack: ImageStack | None
    note: str = ""  # why there is no image, or the stack's warnings
    study_index: int = 0

    @property
    def n_slices(self) -> int:
        return 0 if self.stack is None else int(self.stack.array.shape[0])


@dataclass
class ViewerState:
    studies: list[Study] = field(default_factory=list)
    active: int = 0  # the study the analysis and note are about
    views: list[StackView] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    context: ClinicalContext = field(default_factory=ClinicalContext)
    analysis: Analysis | None = None
    note: object | None = None
    note_error: str = ""
    exports: dict[str, str] = field(default_factory=dict)
    workdir: str = ""
    upload_id: int = 0  # which upload this state belongs to (stale event chains check it)

    @property
    def study(self) -> Study | None:
        return self.studies[self.active] if self.studies else None

    def view(self, index: int | None) -> StackView | None:
        if index is None or not self.views:
            return None
        return self.views[int(np.clip(int(index), 0, len(self.views) - 1))]


def context_from_inputs(age: object, sex: str | None, history: str | None, lang: str = "en"):
    """ClinicalContext from the form: blank age / 'unknown' sex become None."""
    try:
        age_value = int(float(age)) if age not in (None, "") else None
    except (TypeError, ValueError):
        age_value = None
    if age_value is not None and not 0 <= age_value <= 130:
        age_value = None
    sex_value = {"female": "F", "f": "F", "male": "M", "m": "M"}.get(str(sex or "").lower())
    return ClinicalContext(age=age_value, sex=sex_value, history=(history or "").strip(),
                           lang="zh" if lang == "zh" else "en")


def _readable(exc: BaseException, source: str | None = None) -> str:
    if isinstance(exc, RadAssistError):
        return str(exc)
    where = f"{Path(source).name}: " if source else ""
    return f"{where}{type(exc).__name__}: {exc}"


def _display_name(path: str) -> str:
    return Path(str(path)).name


def load_files(paths: Sequence[str] | None, progress: Progress | None = None) -> ViewerState:
    """Ingest uploaded files (DICOM, zip, PNG/JPEG) into a fresh state with its stacks.

    Never raises: every problem becomes a readable line in `state.messages`.
    """
    state = ViewerState()
    paths = [str(p) for p in (paths or []) if p]
    if not paths:
        state.messages.append("No files uploaded.")
        return state
    parts = _parts()
    if parts.ingest is None:
        state.messages.append("Cannot read uploads: " + parts.missing.get("ingest", "no ingest"))
        return state
    if progress is not None:
        progress(0.1, desc=f"reading {len(paths)} file(s)")
    try:
        result: IngestResult = parts.ingest(paths)
    except Exception as exc:  # one readable line, never a traceback
        state.messages.append("Could not read the upload: " + _readable(exc))
        return state
    for rej in result.rejections:
        state.messages.append(f"Skipped {_display_name(rej.source)}: {rej.message} [{rej.reason}]")
    for warn in result.warnings:
        state.messages.append(f"Note: {warn.message}")
    if not result.studies:
        state.messages.insert(0, "No readable study in the upload.")
        return state
    state.studies = list(result.studies)
    for st_index, study in enumerate(state.studies):
        for w in study.warnings:
            state.messages.append(f"Note: {w.message}")
        prefix = f"Study {st_index + 1} · " if len(state.studies) > 1 else ""
        _add_views(state, study, st_index, prefix, parts, progress)
    if not any(v.stack is not None for v in state.views):
        state.messages.append("No displayable images in this upload.")
    return state


def _add_views(state, study: Study, st_index: int, prefix: str, parts: Parts, progress) -> None:
    for s_index, series in enumerate(study.series):
        if progress is not None:
            progress(0.2 + 0.6 * s_index / max(len(study.series), 1), desc="decoding images")
        number = series.series_number if series.series_number is not None else s_index + 1
        base = f"{prefix}S{number} {series.modality}"
        if series.description:
            base += f" · {series.description[:40]}"
        if not series.is_image:
            kinds = ", ".join(sorted({i.kind.value for i in series.instances}))
            text = "; ".join(i.description for i in series.instances if i.description)[:300]
            state.views.append(
                StackView(f"{base} ({kinds})", series, None, text or kinds, st_index)
            )
            continue
        if parts.series_stacks is None:
            state.views.append(
                StackView(base, series, None, parts.missing.get("pixels", ""), st_index)
            )
            continue
        try:
            stacks = parts.series_stacks(series)
        except Exception as exc:
            state.messages.append(f"Series {base}: cannot show images: {_readable(exc)}")
            state.views.append(StackView(base, series, None, _readable(exc), st_index))
            continue
        for k, stack in enumerate(stacks):
            label = base if len(stacks) == 1 else f"{base} [stack {k + 1}/{len(stacks)}]"
            n = int(stack.array.shape[0])
            label += f" ({n} image{'s' if n != 1 else ''})"
            state.views.append(
                StackView(label, series, stack, "; ".join(stack.warnings), st_index)
            )
            for w in stack.warnings:
                state.messages.append(f"Note ({base}): {w}")


def first_image_index(state: ViewerState) -> int | None:
    return next((i for i, v in enumerate(state.views) if v.stack is not None), None)


# ------------------------------------------------------------------ windows and rendering


def _full_range(array: np.ndarray) -> Window:
    lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
    return Window("full range", (lo + hi) / 2.0, max(hi - lo, 1.0))


RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "XR", "MG", "RF", "XA", "PX", "IO"})


def auto_window_name(modality: str) -> str:
    """The data-driven preset, named for what it is used as: MR and radiographs have no
    fixed physical scale, so their preset is the robust range of the image itself."""
    modality = (modality or "").upper()
    if modality == "MR":
        return "MR (auto)"
    if modality in RADIOGRAPH_MODALITIES:
        return "radiograph (auto)"
    return "auto"


def _auto(array: np.ndarray, name: str = "auto") -> Window:
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return Window(name, 0.5, 1.0)
    lo, hi = (float(v) for v in np.percentile(finite, (0.5, 99.5)))
    return Window(name, (lo + hi) / 2.0, max(hi - lo, 1.0))


def _middle_header_windows(view: StackView) -> tuple[Window, ...]:
    """Header windows of the middle slice: a stack's own windows come from its first slice,
    which at the edge of a volume is often nearly empty (an MPRAGE's first slice says
    W 22 / L 11). MONOCHROME1 is left to the stack (its windows need the inversion pivot)."""
    uids = view.stack.sop_instance_uids
    if not uids:
        return ()
    uid = uids[len(uids) // 2]
    ds = next((i.dataset for i in view.series.instances if i.sop_instance_uid == uid), None)
    if ds is None or ds.get("PhotometricInterpretation") != "MONOCHROME2":
        return ()
    try:
        from imaging.pixels import header_windows

        return header_windows(ds)
    except Exception:
        return ()


def window_options(view: StackView | None) -> list[Window]:
    """Presets for a stack: the header's windows and the modality presets the pixel module
    attached (CT lung / mediastinum / bone / brain), then 'auto' and 'full range'."""
    if view is None or view.stack is None:
        return []
    seen: dict[str, Window] = {}
    for w in _middle_header_windows(view):
        seen.setdefault(w.name, w)
    for w in view.stack.windows:
        seen.setdefault(w.name, w)
    middle = view.stack.array[view.n_slices // 2]
    auto = _auto(middle, auto_window_name(view.stack.modality))
    for w in (auto, _full_range(view.stack.array)):
        seen.setdefault(w.name, w)
    return [w for w in seen.values() if w.name != "auto" or auto.name == "auto"]


def default_window_for(view: StackView | None) -> Window | None:
    """What is shown first: the header's own window, else soft tissue for CT, else auto."""
    options = {w.name: w for w in window_options(view)}
    header = [w for name, w in options.items() if name.startswith("header")]
    if header:
        return header[0]
    for name in ("mediastinum", "MR (auto)", "radiograph (auto)", "auto"):
        if name in options:
            return options[name]
    return next(iter(options.values()), None)


def preset_window(state: ViewerState, index: int | None, name: str) -> tuple[float, float] | None:
    """(center, width) of a named preset of the selected stack."""
    for w in window_options(state.view(index)):
        if w.name == name:
            return round(w.center, 2), round(w.width, 2)
    return None


def window_range(view: StackView | None) -> tuple[float, float, float]:
    """Slider limits (min, max, max width) in the stack's physical units."""
    if view is None or view.stack is None:
        return 0.0, 255.0, 512.0
    lo, hi = float(np.nanmin(view.stack.array)), float(np.nanmax(view.stack.array))
    span = max(hi - lo, 1.0)
    lo, hi, max_width = lo - 0.25 * span, hi + 0.25 * span, 2.0 * span
    for w in window_options(view):  # every preset must fit on the sliders
        lo, hi, max_width = min(lo, w.center), max(hi, w.center), max(max_width, w.width)
    return float(np.floor(lo)), float(np.ceil(hi)), float(np.ceil(max_width))


def series_analysis_for(state: ViewerState, view: StackView | None) -> SeriesAnalysis | None:
    if state.analysis is None or view is None:
        return None
    uid = view.series.series_instance_uid
    return next((s for s in state.analysis.series if s.series_instance_uid == uid), None)


def finding_choices(state: ViewerState, index: int | None) -> list[str]:
    """Findings of the selected stack that have a saliency map (overlay choices)."""
    sa = series_analysis_for(state, state.view(index))
    if sa is None:
        return []
    return list(dict.fromkeys(s.finding_code for s in sa.saliency))


def render_view(
    state: ViewerState,
    index: int | None,
    slice_index: int | None = None,
    center: float | None = None,
    width: float | None = None,
    invert: bool = False,
    zoom: float = 1.0,
    overlay: bool = False,
    finding: str | None = None,
    opacity: float = 0.45,
) -> tuple[np.ndarray | None, str]:
    """The image to show (RGB uint8) and a one-line caption.

    The saliency map belongs to the key slice it was computed on; on other slices the
    caption says so rather than showing a map in the wrong place.
    """
    view = state.view(index)
    if view is None:
        return None, "No study loaded."
    if view.stack is None:
        return None, f"{view.label}: no image to show. {view.note}".strip()
    n = view.n_slices
    k = n // 2 if slice_index is None else int(np.clip(int(slice_index), 0, n - 1))
    if center is None or width is None:
        w = default_window_for(view)
        center, width = (w.center, w.width) if w else (None, None)
    img = render.window_image(view.stack.array[k], center, width, invert)
    caption = f"{view.label} · slice {k + 1}/{n}"
    if center is not None and width is not None:
        caption += f" · W {width:g} / L {center:g}"
    bar = False
    if overlay:
        sa = series_analysis_for(state, view)
        maps = [s for s in (sa.saliency if sa else ()) if finding in (None, "", s.finding_code)]
        if not maps:
            caption += " · no saliency map for this series"
        elif maps[0].slice_index != k and n > 1:
            caption += f" · saliency is on slice {maps[0].slice_index + 1}"
        else:
            img = render.blend_saliency(img, maps[0].array, opacity)
            caption += f" · saliency: {maps[0].finding_code} ({maps[0].method})"
            if not np.nanmax(maps[0].array) > 0:
                caption += " — the map is empty (no attention above zero)"
            bar = True
    img = render.zoom_crop(render.to_rgb(img), zoom)
    img = render.upscale_for_display(img)
    if bar:
        img = render.with_colour_bar(img)
    if invert:
        caption += " · inverted"
    if zoom and zoom > 1:
        caption += f" · zoom {zoom:g}×"
    return img, caption


def thumbnails(state: ViewerState, size: int = 128) -> list[tuple[np.ndarray, str]]:
    """Middle slice of every stack, with its default window, for the series browser."""
    out = []
    for view in state.views:
        if view.stack is None:
            continue
        w = default_window_for(view)
        img = render.window_image(
            view.stack.array[view.n_slices // 2], w.center if w else None, w.width if w else None
        )
        out.append((render.thumbnail(img, size), view.label))
    return out


def view_choices(state: ViewerState) -> list[tuple[str, int]]:
    return [(v.label, i) for i, v in enumerate(state.views)]


def header_table(
    state: ViewerState,
    index: int | None,
    slice_index: int | None,
    show_phi: bool = False,
    query: str = "",
) -> list[list[str]]:
    """Header of the instance behind the shown slice; PHI masked unless asked."""
    view = state.view(index)
    if view is None:
        return []
    ds = None
    if view.stack is not None and view.stack.sop_instance_uids:
        k = int(np.clip(int(slice_index or 0), 0, len(view.stack.sop_instance_uids) - 1))
        uid = view.stack.sop_instance_uids[k]
        ds = next((i.dataset for i in view.series.instances if i.sop_instance_uid == uid), None)
    if ds is None and view.series.instances:
        ds = view.series.instances[0].dataset
    return header_rows(ds, show_phi=show_phi, query=query)


def messages_markdown(state: ViewerState) -> str:
    if not state.studies and not state.messages:
        return ""
    lines = []
    if state.studies:
        n_img = sum(v.n_slices for v in state.views)
        n_series = sum(len(s.series) for s in state.studies)
        what = f"{len(state.studies)} studies, " if len(state.studies) > 1 else ""
        lines.append(f"**Loaded:** {what}{n_series} series, {n_img} image(s)")
    lines += [f"- {m}" for m in state.messages]
    return "\n".join(lines)


# ------------------------------------------------------------------ analysis and note


def analyse(
    state: ViewerState,
    context: ClinicalContext,
    progress: Progress | None = None,
    index: int | None = None,
):
    """Run `imaging.analyze` and `imaging.notes.compose` on the study of the selected stack
    (the first study if none); failures land in `note_error`."""
    view = state.view(index)
    state.active = view.study_index if view is not None else 0
    state.context = context
    state.analysis, state.note, state.note_error, state.exports = None, None, "", {}
    if state.study is None:
        state.note_error = "Upload a study first."
        return state
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
    """The draft note in English or Chinese; without a note, what is available and why."""
    lang = "zh" if lang == "zh" else "en"
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
    for lang in ("en", "zh"):
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


# "age 95" (English note) and "年龄 95" (Chinese note): ages above 89 identify a person
_AGE_OVER_89 = re.compile(r"((?:\bage|年龄)\s*)(9\d|1\d\d)(?!\d)", re.IGNORECASE)


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
