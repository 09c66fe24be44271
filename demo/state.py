"""The viewer's per-session state: the uploaded study, its stacks as views, the optional parts.

Every dependency on the analysis stack is looked up through `_parts()`, so a missing piece
(no weights yet) shows one clear sentence in the UI instead of breaking the page.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.catalog import languages
from common.errors import RadAssistError
from imaging.notes.strings import STRINGS
from imaging.types import Analysis, ClinicalContext, ImageStack
from pacs_bridge.study import IngestResult, Series, Study

AI_DRAFT = STRINGS["disclaimer"]  # the note's own label: one wording
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
                           lang=lang if lang in languages() else "en")


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
