"""The follow-up section: each leading diagnosis's next imaging, through its guideline rule.

A knowledge entry's recommendation that names a rule is shown only when the rule runs and
applies; a rule that does not apply, needs a measurement the model does not give, is not
installed or fails is a visible "considered" line — never dropped, never silently replaced by
the knowledge base's own text. A rule whose population (`Rule.population`) excludes the
patient is checked first and says so with the patient's age or sex ("not applicable: patient
is 3 years old"); a recommendation with no rule, for a diagnosis whose typical patients are
all of another life stage (`ddx.population.excluded`: adult imaging for a child), is listed
as not applicable too. With RADASSIST_STRICT_RULES=1 (as the test suite runs) a rule that
raises is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..ddx.population import excluded
from ..ddx.rank import Scored
from ..types import ClinicalContext
from .note import ConsideredRule, FollowUpItem, Text
from .strings import t, tt

FOLLOW_UP_DIAGNOSES = 3  # the leading diagnoses whose follow-up is given


def _rules() -> dict:
    """The executable guideline rules. They ship with the package: an import failure is a
    bug to surface, never a reason for guidelines to vanish from every note."""
    from ..knowledge.guidelines import RULES

    return dict(RULES)


class RuleNotEvaluated(Exception):
    """A rule that should have run could not; the note says so instead of dropping it."""


def _evaluate_rule(rule, context: ClinicalContext, modality: str):
    """Run a rule whose finding needs no measurement; None when it needs one.

    Any other failure raises `RuleNotEvaluated` with the reason (shown in the note; with
    RADASSIST_STRICT_RULES=1, as the test suite runs, the error itself propagates).
    """
    from ..knowledge.guidelines.common import PatientContext

    try:
        finding = rule.finding_type()
    except TypeError:
        return None  # the finding needs measurements the model does not give
    try:
        patient = PatientContext.from_clinical(context, modality=modality or "CT")
        return rule.evaluate(finding, patient)
    except Exception as exc:
        if os.environ.get("RADASSIST_STRICT_RULES"):
            raise
        raise RuleNotEvaluated(f"{type(exc).__name__}: {exc}") from exc


_NEEDS_MEASUREMENT = Text(
    "needs a measured finding (size, attenuation) that the model does not provide",
    "需要模型无法提供的测量值（大小、密度）")


def _not_evaluated(reason: str) -> Text:
    return t("fu.not_evaluated", reason=reason[:200])


def population_reason(rule, context: ClinicalContext) -> Text | None:
    """Why the rule's population excludes the patient, in words; None when it does not."""
    population = getattr(rule, "population", None)
    if population is None:
        return None
    why = population.exclusion(context.age, context.sex)
    if why is None:
        return None
    if why.kind == "sex":
        return tt("fu.population.sex", sex=t(f"sex.{why.sex}"), bound=t(f"sex.{why.bound}"))
    return t(f"fu.population.{why.kind}", age=why.age, bound=why.bound)


def _follow_up(items: list[Scored], context: ClinicalContext, modality: str):
    rules = _rules()
    follow, considered = [], []
    for scored in items:
        entry = scored.entry
        for rec in entry.next_imaging:
            rule_id = rec.get("rule")
            protocol = Text.from_mapping(rec.get("protocol") or {"en": ""})
            timing = Text.from_mapping(rec.get("timing") or {"en": ""})
            urgency, citation = str(rec.get("urgency") or "routine"), str(rec.get("source") or "")
            if not rule_id and excluded(entry.age_range, context.age):
                lo, hi = entry.age_range
                considered.append(ConsideredRule("", entry.id, tt(
                    "fu.kb_not_applicable", protocol=protocol, diagnosis=entry_name(entry),
                    age=context.age, lo=int(lo), hi=int(hi)), protocol))
                continue
            if rule_id and rule_id not in rules:
                # a knowledge entry names a rule that does not exist: say so, cite nothing
                considered.append(ConsideredRule(rule_id, entry.id,
                                                 _not_evaluated("no such rule is installed")))
                continue
            if rule_id:
                outside = population_reason(rules[rule_id], context)
                if outside is not None:
                    considered.append(ConsideredRule(rule_id, entry.id, outside))
                    continue
                try:
                    result = _evaluate_rule(rules[rule_id], context, modality)
                except RuleNotEvaluated as exc:
                    considered.append(ConsideredRule(rule_id, entry.id, _not_evaluated(str(exc))))
                    continue
                if result is None:
                    considered.append(ConsideredRule(rule_id, entry.id, _NEEDS_MEASUREMENT))
                    continue
                if not result.applies:
                    reason = result.not_applicable_reason
                    considered.append(ConsideredRule(rule_id, entry.id, Text(reason.en, reason.zh)))
                    continue
                rec_text = result.recommendation
                protocol = Text(rec_text.en, rec_text.zh)
                urgency, citation = result.urgency, result.citation or citation
            follow.append(FollowUpItem(entry.id, str(rec.get("modality") or ""), protocol, timing,
                                       urgency, citation, rule_id))
    unique_considered: dict[tuple[str, Text], ConsideredRule] = {}
    for c in considered:  # one line per rule and reason, for the first diagnosis citing it
        unique_considered.setdefault((c.rule_id, c.reason), c)
    return tuple(dict.fromkeys(follow)), tuple(unique_considered.values())


def entry_name(entry) -> Text:
    return Text(entry.name_en, entry.name_zh or entry.name_en)


@dataclass(frozen=True)
class FollowUpSection:
    lines: tuple[Text, ...]
    items: tuple[FollowUpItem, ...]
    considered: tuple[ConsideredRule, ...]


def follow_up_section(ranked: list[Scored], names: dict[str, Text], context: ClinicalContext,
                      modality: str) -> FollowUpSection:
    """Follow-up for the leading diagnoses of `ranked` (none when nothing was ranked).

    `names` are the differential items' names by diagnosis id; `modality` is the study's.
    """
    lines: list[Text] = []
    follow_up: tuple[FollowUpItem, ...] = ()
    considered: tuple[ConsideredRule, ...] = ()
    if ranked:
        follow_up, considered = _follow_up(ranked[:FOLLOW_UP_DIAGNOSES], context, modality)
        for f in follow_up:
            lines.append(tt("fu.item", protocol=f.protocol, modality=f.modality,
                            timing=f.timing, urgency=t(f"urgency.{f.urgency}"),
                            citation=f.citation,
                            rule=t("fu.rule", rule=f.rule_id) if f.rule_id else t("fu.no_rule"),
                            diagnosis=names.get(f.diagnosis_id, Text(f.diagnosis_id,
                                                                    f.diagnosis_id))))
        for c in considered:
            lines.append(c.reason if not c.rule_id else
                         tt("fu.not_applicable", rule=c.rule_id, reason=c.reason))
    if not follow_up:
        lines.insert(0, t("fu.none"))
    return FollowUpSection(tuple(lines), follow_up, considered)
