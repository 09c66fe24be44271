"""The draft note: compose from an `Analysis`, render to Markdown or canonical JSON."""

from ..bands import band
from .compose import compose
from .note import (
    ConsideredRule,
    DifferentialItem,
    FollowUpItem,
    Note,
    NoteSection,
    ObservationItem,
    Text,
)
from .render import to_json, to_markdown
from .resources import Resources

__all__ = ["ConsideredRule", "DifferentialItem", "FollowUpItem", "Note", "NoteSection",
           "ObservationItem", "Resources", "Text", "band", "compose", "to_json", "to_markdown"]
