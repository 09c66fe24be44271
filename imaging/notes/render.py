"""Render a note: Markdown in one language, or canonical JSON with both.

Canonical JSON: sorted keys, floats rounded to 4 decimals (their shortest repr), no
whitespace variation, UTF-8 — the same note always gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json

from common.text import Text

from .note import Note


def _plain(value):
    if isinstance(value, Text):
        return value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4) + 0.0  # -0.0 -> 0.0
    return value


def to_json(note: Note) -> str:
    return json.dumps(_plain(note), sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False) + "\n"


def to_markdown(note: Note, lang: str = "en") -> str:
    lines = [f"# {note.title.get(lang)}", "", f"**{note.disclaimer.get(lang)}**", ""]
    for number, section in enumerate(note.sections, start=1):
        lines.append(f"## {number}. {section.title.get(lang)}")
        lines.append("")
        levels = section.levels or (0,) * len(section.lines)
        for text, level in zip(section.lines, levels, strict=True):
            lines.append("  " * level + "- " + text.get(lang))
        lines.append("")
    return "\n".join(lines)
