"""What the viewer does, as plain functions of a per-session `ViewerState`.

The Gradio layer (`demo/app.py`) only wires widgets to these functions, so each behaviour a
radiologist relies on (ingest messages, windowing, overlay, note language, downloads, the
audit record) is unit-tested without a browser. The functions live in three modules by
job — `state` (uploads, views, optional parts), `view` (windows and pictures), `review`
(analysis, note, exports, audit, write-back) — and are gathered here for the widgets.
"""

from __future__ import annotations

from demo.review import (
    analyse,
    audit_path,
    deidentified_note_json,
    export_files,
    note_markdown,
    observations_rows,
    record_decision,
    send_to_pacs,
)
from demo.state import (
    AI_DRAFT,
    Parts,
    Progress,
    StackView,
    ViewerState,
    _parts,
    context_from_inputs,
    first_image_index,
    load_files,
)
from demo.view import (
    auto_window_name,
    default_window_for,
    finding_choices,
    header_table,
    messages_markdown,
    preset_window,
    render_view,
    series_analysis_for,
    thumbnails,
    view_choices,
    window_options,
    window_range,
)

__all__ = [
    "AI_DRAFT", "Parts", "Progress", "StackView", "ViewerState", "_parts", "analyse",
    "audit_path", "auto_window_name", "context_from_inputs", "default_window_for",
    "deidentified_note_json", "export_files", "finding_choices", "first_image_index",
    "header_table", "load_files", "messages_markdown", "note_markdown", "observations_rows",
    "preset_window", "record_decision", "render_view", "send_to_pacs", "series_analysis_for",
    "thumbnails", "view_choices", "window_options", "window_range",
]
