"""Series-level wording: warnings in the note's language and the one-line study summary.

Warnings are produced deep in pixels and analysis as "code: English detail". The English
note keeps the detail; other languages say what the code means (their catalogue's
"warning.<code>"), with the numbers of the detail kept in brackets, so a Chinese reader is
never handed English.
"""

from __future__ import annotations

import re
from collections import Counter

from common.catalog import languages, template

from ..types import Analysis, SeriesAnalysis
from .note import SeriesItem, Text
from .strings import STRINGS, joined, observation_label, t, tt

_NUMBERS = re.compile(r"-?\d+(?:\.\d+)?(?:\s?(?:mm|°|%|s/mm²))?")


def warning_text(warning: str) -> Text:
    """A "code: detail" warning in every language: English keeps the detail; the others say
    what the code means (catalogue key "warning.<code>") with the detail's numbers."""
    code, _, detail = warning.partition(":")
    code = code.strip()
    key = "warning.phantom" if code == "out_of_distribution" and "phantom" in detail else (
        f"warning.{code}")
    if key not in STRINGS:
        return Text.per_language(
            lambda lang: warning if lang == "en" else template(
                lang, "warning.untranslated", STRINGS["warning.untranslated"]).format(
                    text=warning), languages())
    numbers = list(dict.fromkeys(_NUMBERS.findall(detail)))
    gloss = t(key)
    if numbers:
        gloss = tt("warning.with_numbers", text=gloss, numbers=joined(
            [Text(n) for n in numbers], "list.comma"))
    return Text.per_language(lambda lang: warning if lang == "en" else gloss.get(lang),
                             languages())


ROLE_KEYS = {"localizer": "role.localizer", "derived": "role.derived",
             "non_image": "role.non_image", "unreadable": "role.unreadable"}


def _top_code(s: SeriesAnalysis, kind: str) -> str | None:
    top = s.top(kind)
    return top.code.split(":", 1)[1] if top is not None else None


def series_items(analysis: Analysis) -> tuple[SeriesItem, ...]:
    """The machine-readable per-series list (`series` in the JSON), analysed ones first."""
    items = []
    for s in analysis.series:
        ood = s.out_of_distribution
        items.append(SeriesItem(
            series_instance_uid=s.series_instance_uid, role="diagnostic",
            modality=_top_code(s, "modality") or s.header_modality,
            region=None if ood else _top_code(s, "region"),
            plane=None if ood else _top_code(s, "plane"),
            out_of_distribution=ood, description=s.description, n_images=s.n_images,
            n_volumes=s.n_volumes, reason="", warnings=s.warnings,
            plane_source="" if ood else s.plane_source,
            plane_angle=None if ood else s.plane_angle, patient_position=s.patient_position))
    for listed in analysis.listed:
        items.append(SeriesItem(
            series_instance_uid=listed.series_instance_uid, role=listed.role,
            modality=listed.modality, region=None, plane=None, out_of_distribution=False,
            description=listed.description, n_images=listed.n_objects, n_volumes=1,
            reason=listed.reason, warnings=()))
    return tuple(items)


def study_summary(analysis: Analysis) -> Text:
    """One line first: "MR head, 3 series: 2 diagnostic axial, 1 localizer"."""
    usable = [s for s in analysis.series if not s.out_of_distribution]
    modalities = Counter(_top_code(s, "modality") or s.header_modality for s in analysis.series)
    modalities.update(item.modality for item in analysis.listed if item.modality)
    modality = modalities.most_common(1)[0][0] if modalities else ""
    regions = Counter(_top_code(s, "region") for s in usable)
    region = regions.most_common(1)[0][0] if regions else None
    head = Text(modality, modality)
    if modality:
        head = observation_label(f"modality:{modality}", modality)
    if region:
        label = observation_label(f"region:{region}", region)
        head = tt("summary.head", modality=head, region=label)
    parts: list[Text] = []
    planes = Counter(_top_code(s, "plane") for s in usable)
    for plane, n in sorted(planes.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        if plane:
            parts.append(tt("summary.diagnostic_plane", n=n,
                            plane=observation_label(f"plane:{plane}", plane)))
        else:
            parts.append(t("summary.diagnostic", n=n))
    n_ood = len(analysis.series) - len(usable)
    if n_ood:
        parts.append(t("summary.ood", n=n_ood))
    for role, n in sorted(Counter(item.role for item in analysis.listed).items()):
        parts.append(t(f"summary.{role}", n=n))
    n_series = len({s.series_instance_uid for s in analysis.series}) + len(analysis.listed)
    return tt("summary.line", head=head, n=n_series,
              parts=joined(parts, "list.separator"))
