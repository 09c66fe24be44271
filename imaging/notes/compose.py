"""Compose the draft note from an `Analysis` and the clinical context.

Pure given its inputs (the analysis, the context, the knowledge files, the model's text
tower and the case library): no clock, no randomness, no dict-order dependence, so the same
input gives the same note byte for byte (tested across processes). Every sentence is built
from `strings.py` or knowledge-base text, in both languages.

`compose()` pools the study's evidence once and builds the six sections, one builder each:
the clinical context, every item with its source (`context.py`), what was analysed (here,
with each series' plane source and position from `context.py`) and the observations (here),
the differential (`differential.py`, which ranks and words each item's evidence through
`evidence_text.py`), the follow-up through the guideline rules (`follow_up.py`), and the
limitations (here; the paediatric caveat from `context.py`). Uncertainty bands: `bands.py`.
"""

from __future__ import annotations

from ..bands import band, rounded
from ..ddx.rank import study_evidence
from ..types import Analysis, ClinicalContext, SeriesAnalysis
from .context import (
    context_entries,
    context_lines,
    paediatric_limitations,
    series_geometry_lines,
)
from .differential import DifferentialSection, differential_section
from .follow_up import follow_up_section
from .note import Note, NoteSection, ObservationItem, Text
from .resources import Resources, default_resources
from .series_text import ROLE_KEYS, series_items, study_summary, warning_text
from .strings import STRINGS, observation_label, t, tt

# Quality is the share of validation images less typical than the series (analyze.py). Below
# the 1st percentile the series is out of distribution and not diagnosed; below the 10th it
# is still diagnosed, but the reader is told the model is on thin ground (e.g. pydicom's
# 128-pixel CT_small slice, quality 0.05, whose differential is a run of pneumonias).
ATYPICAL_QUALITY = 0.10
_SHOWN_KINDS = ("modality", "region", "plane")


def compose(
    analysis: Analysis, context: ClinicalContext | None = None, *,
    resources: Resources | None = None,
) -> Note:
    """The draft note for one analysed study (see the module docstring)."""
    context = context or ClinicalContext()
    res = resources or default_resources()
    knowledge_version = res.view.knowledge_hash
    summary = study_summary(analysis)
    usable = [s for s in analysis.series if not s.out_of_distribution]
    evidence = study_evidence(analysis)

    entries = context_entries(context)
    analysed = _analysed_lines(analysis, summary, knowledge_version)
    observations = _observations(usable)
    ddx = differential_section(analysis, usable, evidence, context, res)
    follow = follow_up_section(list(ddx.ranked), {d.diagnosis_id: d.names for d in ddx.items},
                               context, evidence.modality or "")
    sections = (
        NoteSection("context", t("sec.context"), context_lines(entries)),
        NoteSection("analysed", t("sec.analysed"), analysed),
        NoteSection("observations", t("sec.observations"), _observation_lines(observations)),
        NoteSection("differential", t("sec.differential"), ddx.lines, ddx.levels),
        NoteSection("follow_up", t("sec.follow_up"), follow.lines),
        NoteSection("limitations", t("sec.limitations"),
                    _limitations(usable, ddx, res, context, analysis.model_version)),
    )
    return Note(
        study_instance_uid=analysis.study_instance_uid, model_version=analysis.model_version,
        knowledge_version=knowledge_version, out_of_distribution=not usable, sections=sections,
        observations=observations, differential=ddx.items,
        follow_up=follow.items, considered_rules=follow.considered, disclaimer=t("disclaimer"),
        title=t("title"), series=series_items(analysis), summary=summary, context=entries)


def _analysed_lines(analysis: Analysis, summary: Text, knowledge_version: str
                    ) -> tuple[Text, ...]:
    """What was analysed: the study in one line, then series by series (with what decided
    the plane and the patient position)."""
    analysed: list[Text] = [summary, t("analysed.study", uid=analysis.study_instance_uid,
                                       model=analysis.model_version, knowledge=knowledge_version)]
    if not analysis.series:
        analysed.append(t("analysed.no_series"))
    for index, s in enumerate(analysis.series, start=1):
        modality = s.top("modality")
        region = s.top("region")
        analysed.append(tt(
            "analysed.series", index=index,
            modality=observation_label(modality.code, modality.label) if modality
            else Text(s.header_modality, s.header_modality),
            region=observation_label(region.code, region.label) if region else t("unknown"),
            n=s.n_images, key_image=s.key_slice + 1, quality=s.quality_score))
        analysed += series_geometry_lines(index, s)
        if s.out_of_distribution:
            analysed.append(t("analysed.ood", index=index, quality=s.quality_score))
        elif s.quality_score < ATYPICAL_QUALITY:
            analysed.append(t("analysed.atypical", index=index, quality=s.quality_score,
                              share=round(100 * (1 - s.quality_score))))
        if s.n_volumes > 1:
            analysed.append(t("analysed.four_d", index=index, n=s.n_volumes))
        for w in s.warnings:
            analysed.append(tt("analysed.warning", text=warning_text(w)))
    for index, listed in enumerate(analysis.listed, start=len(analysis.series) + 1):
        reason_key = f"reason.{listed.reason_code}"
        reason = t(reason_key) if reason_key in STRINGS else Text(listed.reason, listed.reason)
        analysed.append(tt("analysed.listed", index=index,
                           description=listed.description or listed.modality or "?",
                           role=t(ROLE_KEYS.get(listed.role, "role.unreadable")),
                           reason=reason))
    for w in analysis.warnings:
        analysed.append(tt("analysed.warning", text=warning_text(w)))
    return tuple(analysed)


def _observations(usable: list[SeriesAnalysis]) -> tuple[ObservationItem, ...]:
    """Per usable series: its top modality, region and plane, then its findings."""
    observations: list[ObservationItem] = []
    for s in usable:
        tops = (s.top(kind) for kind in _SHOWN_KINDS)
        findings = sorted((o for o in s.observations if o.kind == "finding"),
                          key=lambda o: (-o.probability, o.code))
        for o in [top for top in tops if top is not None] + findings:
            observations.append(ObservationItem(
                s.series_instance_uid, o.code, observation_label(o.code, o.label),
                rounded(o.probability), band(o.probability)))
    return tuple(observations)


def _observation_lines(observations: tuple[ObservationItem, ...]) -> tuple[Text, ...]:
    lines = [tt("obs.line", label=o.label, probability=o.probability, band=t(f"band.{o.band}"))
             for o in observations] or [t("obs.none")]
    return (*lines, t("obs.bands"))


def _limitations(usable: list[SeriesAnalysis], ddx: DifferentialSection, res: Resources,
                 context: ClinicalContext, model_version: str) -> tuple[Text, ...]:
    limits = [t("lim.draft"), t("lim.scope"), t("lim.knowledge", n=len(res.view.entries))]
    limits += paediatric_limitations(context, model_version, res.paediatric)
    if not usable:
        limits.append(t("lim.ood"))
    elif any(s.quality_score < ATYPICAL_QUALITY for s in usable):
        limits.append(t("lim.atypical"))
    if res.library is None or not len(res.library):
        limits.append(t("lim.no_library"))
    if res.model is None:
        limits.append(t("lim.no_text_model"))
    if any(d.saliency for d in ddx.items):
        limits.append(t("lim.saliency"))
    limits.append(t("disclaimer"))
    return tuple(limits)
