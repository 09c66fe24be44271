"""ACR Lung-RADS v2022: categories and management for lung cancer screening CT.

Applies only to a low-dose CT performed for lung cancer screening; anything else is "not
applicable: not a screening examination" (Fleischner covers incidental nodules). Screening
eligibility (USPSTF 2021: age 50-80 with a 20 pack-year history) is context, not a gate: an
age outside it is reported as a caveat.

Encoded from the Lung-RADS v2022 summary table (American College of Radiology, released
November 2022): categories 0, 1, 2, 3, 4A, 4B, 4X and the S modifier, including the v2022
additions (juxtapleural nodules, airway nodules, atypical pulmonary cysts, inflammatory or
infectious findings as category 0 with 1-3 month LDCT, growth defined as a >1.5 mm increase
in mean diameter within 12 months, slow growth of solid or part-solid nodules over several
screens as 4B, and stepped management: 4A stable at 3 months -> 3, 3 stable at 6 months -> 2).
A nodule unchanged at follow-up without a stated prior category is scored 2 (benign
behaviour); pass `prior_category` for stepped management. Sizes are mean diameters
rounded to one decimal place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.text import Text as Bilingual
from imaging.knowledge.guidelines.common import (
    ADULTS,
    PatientContext,
    Rule,
    RuleResult,
    not_applicable,
)

RULE_ID = "lung_rads_2022"
CITATION = "ACR Lung-RADS v2022 (American College of Radiology, 2022)"
KINDS = (
    "none", "benign", "solid", "part_solid", "ground_glass", "juxtapleural", "airway", "cyst",
    "inflammatory", "incomplete", "prior_pending",
)
STATUSES = ("baseline", "new", "growing", "slow_growing", "stable")
GROWTH_MM = 1.5  # increase in mean diameter within 12 months that counts as growth
B = Bilingual

ORDER = ("1", "2", "3", "4A", "4B", "4X")  # severity order for "most suspicious finding"


@dataclass(frozen=True)
class ScreeningFinding:
    """One finding on a screening LDCT.

    kind: "none" (no nodules), "benign" (benign calcification or fat), "solid",
    "part_solid", "ground_glass", "juxtapleural" (solid, smooth, oval/lentiform/triangular),
    "airway", "cyst" (atypical pulmonary cyst), "inflammatory" (findings suggesting infection
    or inflammation), "incomplete" (part of the lungs cannot be evaluated),
    "prior_pending" (prior CT being located for comparison).
    status: "baseline" | "new" | "growing" (>1.5 mm in 12 months) | "slow_growing" (growth
    over several screens, never >1.5 mm in 12 months) | "stable" (stable or decreased).
    prior_category: the category at the previous screen, for stepped management.
    airway_level: "segmental" (segmental or more proximal) | "subsegmental".
    cyst_wall: "thin" | "thick" | "multilocular"; cyst_change: None | "growing_cyst"
    (cystic component grows) | "becomes_multilocular" | "growing_wall" (wall thickness or
    nodularity grows) | "growing_multilocular" | "increased_loculation" (or new/increased
    opacity).
    suspicious_features: additional features that raise suspicion (spiculation, lymph
    nodes, ...) -> 4X when the category is 3 or 4.
    """

    kind: str | None = None  # None: not characterised yet (the rule then says so)
    size_mm: float | None = None
    solid_component_mm: float | None = None
    status: str = "baseline"
    prior_category: str | None = None
    airway_level: str | None = None
    cyst_wall: str | None = None
    cyst_change: str | None = None
    suspicious_features: bool = False

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")


MANAGEMENT: dict[str, tuple[Bilingual, str]] = {
    "0": (B("Comparison with prior chest CT, or additional lung cancer screening CT needed.",
            "需与既往胸部 CT 对比，或需补充肺癌筛查 CT。"), "soon"),
    "0_inflammatory": (B("Low-dose CT in 1-3 months (findings suggest an inflammatory or "
                         "infectious process).",
                         "1-3 个月后复查低剂量 CT（表现提示炎症或感染性病变）。"), "soon"),
    "1": (B("Continue annual screening with low-dose CT in 12 months.",
            "继续年度筛查：12 个月后复查低剂量 CT。"), "routine"),
    "2": (B("Continue annual screening with low-dose CT in 12 months.",
            "继续年度筛查：12 个月后复查低剂量 CT。"), "routine"),
    "3": (B("Low-dose CT in 6 months.", "6 个月后复查低剂量 CT。"), "routine"),
    "4A": (B("Low-dose CT in 3 months; PET/CT may be considered if there is a solid nodule "
             "or solid component of 8 mm or more.",
             "3 个月后复查低剂量 CT；如存在 ≥8 mm 的实性结节或实性成分，可考虑 PET/CT。"),
           "soon"),
    "4B": (B("Diagnostic chest CT with or without contrast; PET/CT may be considered if there "
             "is a solid nodule or solid component of 8 mm or more; tissue sampling and/or "
             "referral for further clinical evaluation.",
             "行诊断性胸部 CT（增强或平扫）；如存在 ≥8 mm 的实性结节或实性成分，可考虑 PET/CT；"
             "组织取样和/或转诊作进一步临床评估。"), "urgent"),
    "4X": (B("As for category 4B: diagnostic chest CT, PET/CT if appropriate, tissue sampling "
             "and/or referral for further clinical evaluation.",
             "同 4B 类：诊断性胸部 CT，必要时 PET/CT，组织取样和/或转诊作进一步临床评估。"),
           "urgent"),
}


def categorize(f: ScreeningFinding) -> str:
    """The Lung-RADS category of one finding ("0", "1", "2", "3", "4A", "4B", "4X")."""
    cat = _base_category(f)
    if f.suspicious_features and cat in ("3", "4A", "4B"):
        return "4X"
    return cat


def _stepped(f: ScreeningFinding) -> str | None:
    """Stepped management for a stable (or decreased) nodule on follow-up."""
    if f.status != "stable":
        return None
    if f.prior_category == "4A" and f.kind != "airway":
        return "3"
    if f.prior_category in ("3", "2", "1"):
        return "2"
    if f.prior_category is None:
        return "2"  # unchanged at follow-up without a stated prior category: benign behaviour
    return None  # 4B/4X stable: keep working up by the size rules below


def _base_category(f: ScreeningFinding) -> str:
    if f.kind is None:
        raise ValueError("finding kind not given")
    if f.kind in ("incomplete", "prior_pending", "inflammatory"):
        return "0"
    if f.kind in ("none", "benign"):
        return "1"
    stepped = _stepped(f)
    if f.kind == "airway":
        if f.airway_level == "subsegmental":
            return "2"
        if f.airway_level != "segmental":
            raise ValueError("airway nodule needs airway_level 'segmental' or 'subsegmental'")
        if f.status == "stable" and f.prior_category in ("4A", "4B"):
            return "4B"  # segmental or proximal airway nodule persisting at 3-month follow-up
        return "4A"
    if f.kind == "cyst":
        return _cyst_category(f)
    if f.size_mm is None:
        raise ValueError(f"{f.kind} nodule needs size_mm")
    size = round(f.size_mm, 1)
    if f.kind == "juxtapleural":
        if size < 10 and f.status in ("baseline", "new"):
            return "2"
        f = ScreeningFinding("solid", f.size_mm, None, f.status, f.prior_category,
                             suspicious_features=f.suspicious_features)
    if stepped is not None and f.kind != "ground_glass":
        return stepped
    if f.status == "slow_growing" and f.kind in ("solid", "part_solid"):
        return "4B"  # solid or part-solid nodule growing slowly over multiple screens
    if f.kind == "solid":
        return _solid_category(size, f.status)
    if f.kind == "part_solid":
        return _part_solid_category(size, f.solid_component_mm, f.status)
    if f.kind == "ground_glass":
        if size < 30:
            return "2"
        return "3" if f.status in ("baseline", "new") else "2"  # >=30 stable or slow growing
    raise ValueError(f"unhandled kind {f.kind!r}")


def _solid_category(size: float, status: str) -> str:
    if status == "baseline":
        if size < 6:
            return "2"
        if size < 8:
            return "3"
        if size < 15:
            return "4A"
        return "4B"
    if status == "new":
        if size < 4:
            return "2"
        if size < 6:
            return "3"
        if size < 8:
            return "4A"
        return "4B"
    if status == "growing":
        return "4A" if size < 8 else "4B"
    raise ValueError(f"unhandled status {status!r}")


def _part_solid_category(size: float, solid: float | None, status: str) -> str:
    if solid is None:
        raise ValueError("part-solid nodule needs solid_component_mm")
    solid = round(solid, 1)
    if status == "baseline":
        if size < 6:
            return "2"
        if solid < 6:
            return "3"
        if solid < 8:
            return "4A"
        return "4B"
    if status in ("new", "growing"):
        if solid >= 4:
            return "4B"  # new or growing solid component >= 4 mm
        if status == "new" and size < 6:
            return "3"
        if solid > 0:
            return "4A"  # new or growing solid component < 4 mm
        return "3"
    raise ValueError(f"unhandled status {status!r}")


def _cyst_category(f: ScreeningFinding) -> str:
    change = f.cyst_change
    if f.cyst_wall not in ("thin", "thick", "multilocular"):
        raise ValueError("cyst needs cyst_wall 'thin', 'thick' or 'multilocular'")
    if change in ("growing_wall", "growing_multilocular", "increased_loculation"):
        return "4B"
    if change == "becomes_multilocular" or f.cyst_wall in ("thick", "multilocular"):
        return "4A"
    if change == "growing_cyst":
        return "3"
    return "2"  # thin-walled cyst without change: not an atypical cyst


def evaluate(finding: ScreeningFinding | Sequence[ScreeningFinding],
             patient: PatientContext) -> RuleResult:
    """Lung-RADS category and management; for several findings, the most suspicious wins."""
    if not patient.screening:
        return not_applicable(RULE_ID, CITATION,
                              "not applicable: not a screening examination.",
                              "不适用：非肺癌筛查检查。")
    if patient.modality != "CT":
        return not_applicable(RULE_ID, CITATION,
                              "not applicable: Lung-RADS applies to screening low-dose CT only.",
                              "不适用：Lung-RADS 仅适用于筛查低剂量 CT。")
    findings = [finding] if isinstance(finding, ScreeningFinding) else list(finding)
    if any(f.kind is None for f in findings):
        return not_applicable(RULE_ID, CITATION,
                              "not applicable yet: characterise each finding (type and mean "
                              "diameter) on the screening CT.",
                              "暂不适用：请在筛查 CT 上明确每个病灶的类型及平均直径。")
    if not findings:
        findings = [ScreeningFinding("none")]
    cats = [(categorize(f), f) for f in findings]
    zero = [f for c, f in cats if c == "0"]
    if zero:
        category = "0"
        key = "0_inflammatory" if any(f.kind == "inflammatory" for f in zero) else "0"
    else:
        category = max((c for c, _ in cats), key=ORDER.index)
        key = category
    rec, urgency = MANAGEMENT[key]
    note = None
    if patient.age is not None and not 50 <= patient.age <= 80:
        note = B(f"Age {patient.age} is outside USPSTF 2021 screening eligibility (50-80 years); "
                 "confirm that screening is indicated.",
                 f"年龄 {patient.age} 岁，不在 USPSTF 2021 筛查适用年龄（50-80 岁）范围内；"
                 "请确认筛查指征。")
    return RuleResult(RULE_ID, True, rec, None, urgency, CITATION, category=category, note=note)


def with_s_modifier(result: RuleResult, significant_other_finding: bool) -> RuleResult:
    """Append the S modifier (clinically significant non-lung-cancer finding) to a result."""
    if not significant_other_finding or not result.applies or result.category is None:
        return result
    extra = B("S: a clinically significant finding other than lung cancer needs its own "
              "management.", "S：存在肺癌以外的具有临床意义的发现，需另行处理。")
    note = extra if result.note is None else B(f"{result.note.en} {extra.en}",
                                                result.note.zh + extra.zh)
    return RuleResult(result.rule_id, True, result.recommendation, None, result.urgency,
                      result.citation, category=result.category + "S", note=note)


RULE = Rule(
    id=RULE_ID,
    name=B("Lung-RADS v2022 lung cancer screening", "Lung-RADS v2022 肺癌筛查分类"),
    citation=CITATION,
    finding_type=ScreeningFinding,
    evaluate=evaluate,
    population=ADULTS,
)
