"""The sentence for each piece of differential evidence (`imaging.ddx.evidence.Evidence`).

The ranking says what supports or argues against an item; this is the one place that words
it, in both languages, from the `ev.<kind>` strings of the catalogue.
"""

from __future__ import annotations

from ..ddx.evidence import Evidence, EvidenceKind
from .note import Text
from .strings import observation_label, region_label, t, tt

HISTORY_WORDS_SHOWN = 4  # keywords named in "history mentions ..."


def evidence_text(item: Evidence) -> Text:
    """One evidence item as a sentence in both languages."""
    key = f"ev.{item.kind.value}"
    values = dict(item.values)
    kind = item.kind
    if kind in (EvidenceKind.REGION, EvidenceKind.REGION_NO):
        return tt(key, region=region_label(values["region"]))
    if kind in (EvidenceKind.FINDING, EvidenceKind.FINDING_LOW):
        return tt(key, label=observation_label(item.code, values["label"]),
                  probability=values["probability"])
    if kind is EvidenceKind.HISTORY:
        return t(key, words=", ".join(values["words"][:HISTORY_WORDS_SHOWN]))
    if kind is EvidenceKind.SEX_NO:
        return tt(key, sex=t(f"sex.{values['sex']}"))
    return t(key, **values)


def evidence_texts(items: tuple[Evidence, ...]) -> tuple[Text, ...]:
    """The sentences of `items`, in order, each once."""
    return tuple(dict.fromkeys(evidence_text(i) for i in items))
