"""Fleischner Society 2017: incidental pulmonary nodules on CT in adults.

Encodes both tables of MacMahon et al. (Radiology 2017;284:228-243): solid nodules (single
or multiple; <6, 6-8, >8 mm; low or high clinical risk) and subsolid nodules (single
ground-glass, single part-solid, multiple subsolid; <6 or >=6 mm), with the exclusions the
paper states: patients younger than 35, known primary cancer, immunosuppression, and lung
cancer screening (Lung-RADS applies there). A nodule seen only on a radiograph is not in
scope: it is characterised on CT first.

Size is the average of long and short axes, rounded to the nearest millimetre (half up).

Unknown risk: we show the high-risk (more conservative) recommendation and say so, naming
the low-risk alternative when it differs, because under-surveillance of a cancer costs more
than one extra CT and the reader can downgrade with the stated alternative.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.text import Text as Bilingual
from imaging.knowledge.guidelines.common import (
    PatientContext,
    Population,
    Rule,
    RuleResult,
    not_applicable,
    round_mm,
)

RULE_ID = "fleischner_2017"
CITATION = "Fleischner Society 2017 (MacMahon et al., Radiology 2017;284:228-243)"
NODULE_TYPES = ("solid", "ground_glass", "part_solid")


@dataclass(frozen=True)
class NoduleFinding:
    """One pulmonary nodule (the dominant one when `multiple`).

    `size_mm`: mean of long and short axis; `solid_component_mm` only for part-solid.
    `benign_calcification`: diffuse, central, laminated or popcorn calcification, or fat.
    `perifissural`: typical perifissural/juxtapleural lymph node morphology.
    """

    size_mm: float | None = None  # None: not measured (the rule then says why it cannot apply)
    type: str = "solid"
    solid_component_mm: float | None = None
    multiple: bool = False
    benign_calcification: bool = False
    perifissural: bool = False

    def __post_init__(self) -> None:
        if self.type not in NODULE_TYPES:
            raise ValueError(f"nodule type must be one of {NODULE_TYPES}, got {self.type!r}")
        if self.size_mm is not None and self.size_mm <= 0:
            raise ValueError(f"nodule size must be positive, got {self.size_mm}")


B = Bilingual

# (multiple, size band, risk) -> (recommendation, urgency); bands: "lt6", "6to8", "gt8"
SOLID_TABLE: dict[tuple[bool, str, str], tuple[Bilingual, str]] = {
    (False, "lt6", "low"): (
        B("No routine follow-up.", "无需常规随访。"), "none"),
    (False, "lt6", "high"): (
        B("Optional CT at 12 months.", "可选择 12 个月时复查 CT。"), "routine"),
    (False, "6to8", "low"): (
        B("CT at 6-12 months, then consider CT at 18-24 months.",
          "6-12 个月复查 CT，之后可考虑 18-24 个月再次复查 CT。"), "routine"),
    (False, "6to8", "high"): (
        B("CT at 6-12 months, then CT at 18-24 months.",
          "6-12 个月复查 CT，之后 18-24 个月再次复查 CT。"), "routine"),
    (False, "gt8", "low"): (
        B("Consider CT at 3 months, PET/CT, or tissue sampling.",
          "考虑 3 个月复查 CT、PET/CT 或组织取样。"), "soon"),
    (False, "gt8", "high"): (
        B("Consider CT at 3 months, PET/CT, or tissue sampling.",
          "考虑 3 个月复查 CT、PET/CT 或组织取样。"), "soon"),
    (True, "lt6", "low"): (
        B("No routine follow-up.", "无需常规随访。"), "none"),
    (True, "lt6", "high"): (
        B("Optional CT at 12 months.", "可选择 12 个月时复查 CT。"), "routine"),
    (True, "6to8", "low"): (
        B("CT at 3-6 months, then consider CT at 18-24 months.",
          "3-6 个月复查 CT，之后可考虑 18-24 个月再次复查 CT。"), "routine"),
    (True, "6to8", "high"): (
        B("CT at 3-6 months, then CT at 18-24 months.",
          "3-6 个月复查 CT，之后 18-24 个月再次复查 CT。"), "routine"),
    (True, "gt8", "low"): (
        B("CT at 3-6 months, then consider CT at 18-24 months.",
          "3-6 个月复查 CT，之后可考虑 18-24 个月再次复查 CT。"), "soon"),
    (True, "gt8", "high"): (
        B("CT at 3-6 months, then consider CT at 18-24 months.",
          "3-6 个月复查 CT，之后可考虑 18-24 个月再次复查 CT。"), "soon"),
}

# (kind, size band) -> (recommendation, urgency); kinds: ground_glass, part_solid, multiple
SUBSOLID_TABLE: dict[tuple[str, str], tuple[Bilingual, str]] = {
    ("ground_glass", "lt6"): (B("No routine follow-up.", "无需常规随访。"), "none"),
    ("ground_glass", "ge6"): (
        B("CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years.",
          "6-12 个月复查 CT 以确认病灶持续存在，之后每 2 年复查 CT 直至满 5 年。"), "routine"),
    ("part_solid", "lt6"): (B("No routine follow-up.", "无需常规随访。"), "none"),
    ("part_solid", "ge6"): (
        B("CT at 3-6 months to confirm persistence. If unchanged and the solid component "
          "remains <6 mm, annual CT for 5 years.",
          "3-6 个月复查 CT 以确认病灶持续存在。如无变化且实性成分仍 <6 mm，"
          "每年复查 CT，共 5 年。"), "routine"),
    ("multiple", "lt6"): (
        B("CT at 3-6 months. If stable, consider CT at 2 and 4 years.",
          "3-6 个月复查 CT。如稳定，可考虑第 2 年和第 4 年复查 CT。"), "routine"),
    ("multiple", "ge6"): (
        B("CT at 3-6 months. Subsequent management based on the most suspicious nodule(s).",
          "3-6 个月复查 CT。后续处理依据最可疑的结节决定。"), "routine"),
}

SOLID_COMPONENT_SUSPICIOUS = B(
    "A persistent part-solid nodule with a solid component of 6 mm or more is highly "
    "suspicious: consider PET/CT, biopsy or resection.",
    "持续存在且实性成分 ≥6 mm 的部分实性结节高度可疑：考虑 PET/CT、活检或手术切除。",
)


def solid_band(size: int) -> str:
    if size < 6:
        return "lt6"
    if size <= 8:
        return "6to8"
    return "gt8"


def evaluate(finding: NoduleFinding, patient: PatientContext) -> RuleResult:
    """Fleischner 2017 recommendation for one incidental nodule, or why it does not apply."""

    def na(en: str, zh: str) -> RuleResult:
        return not_applicable(RULE_ID, CITATION, en, zh)

    if patient.modality == "XR":
        return na("radiograph: characterise on CT first (Fleischner applies to CT-detected "
                  "nodules).", "X 线片：请先行 CT 明确结节性质"
                  "（Fleischner 指南仅适用于 CT 发现的结节）。")
    if patient.modality not in ("CT", "PET"):
        return na(f"not applicable: nodule seen on {patient.modality}, Fleischner applies to CT.",
                  f"不适用：结节见于 {patient.modality}，Fleischner 指南仅适用于 CT。")
    if patient.screening:
        return na("not applicable: lung cancer screening examination (use Lung-RADS).",
                  "不适用：肺癌筛查检查（请使用 Lung-RADS）。")
    if patient.age is not None and patient.age < 35:
        return na("not applicable: age under 35.", "不适用：年龄小于 35 岁。")
    if patient.known_cancer:
        return na("not applicable: known primary cancer (nodules may be metastases; follow "
                  "the oncological imaging plan).",
                  "不适用：已知原发恶性肿瘤（结节可能为转移，应按肿瘤影像随访方案处理）。")
    if patient.immunocompromised:
        return na("not applicable: immunocompromised patient (infection must be considered).",
                  "不适用：免疫功能低下患者（须考虑感染）。")
    if finding.size_mm is None:
        return na("not applicable: nodule size not measured (measure the mean of long and "
                  "short axes on CT).", "不适用：未测量结节大小（请在 CT 上测量长短径平均值）。")
    if finding.benign_calcification:
        return RuleResult(RULE_ID, True, B(
            "Benign pattern of calcification or fat: no follow-up.",
            "良性钙化或含脂肪：无需随访。"), None, "none", CITATION, category="benign")
    size = round_mm(finding.size_mm)
    if finding.type == "solid" and finding.perifissural and size < 10:
        return RuleResult(RULE_ID, True, B(
            "Typical perifissural nodule (intrapulmonary lymph node) smaller than 10 mm: "
            "no follow-up.", "典型叶间裂旁结节（肺内淋巴结）且 <10 mm：无需随访。"),
            None, "none", CITATION, category="perifissural")

    age_note = None
    if patient.age is None:
        age_note = B("Age not stated: Fleischner applies from age 35.",
                     "未提供年龄：Fleischner 指南适用于 35 岁及以上患者。")

    if finding.type == "solid":
        band = solid_band(size)
        risk = patient.risk or "high"
        rec, urgency = SOLID_TABLE[(finding.multiple, band, risk)]
        note = age_note
        if patient.risk is None:
            low, _ = SOLID_TABLE[(finding.multiple, band, "low")]
            if low == rec:
                note = _join(note, B("Risk not stated; the recommendation is the same for low "
                                     "and high risk.", "未提供风险分层；低危与高危的建议相同。"))
            else:
                note = _join(note, B(
                    f"Risk not stated: high-risk management shown (conservative). If low risk: "
                    f"{low.en}", f"未提供风险分层：显示高危处理建议（保守）。如为低危：{low.zh}"))
        label = f"solid {'multiple' if finding.multiple else 'single'} {band} {risk}"
        return RuleResult(RULE_ID, True, rec, None, urgency, CITATION, category=label, note=note)

    band = "lt6" if size < 6 else "ge6"
    kind = "multiple" if finding.multiple else finding.type
    rec, urgency = SUBSOLID_TABLE[(kind, band)]
    note = age_note
    if (
        finding.type == "part_solid"
        and not finding.multiple
        and band == "ge6"
        and finding.solid_component_mm is not None
        and round_mm(finding.solid_component_mm) >= 6
    ):
        note = _join(note, SOLID_COMPONENT_SUSPICIOUS)
        urgency = "soon"
    return RuleResult(RULE_ID, True, rec, None, urgency, CITATION,
                      category=f"subsolid {kind} {band}", note=note)


def _join(a: Bilingual | None, b: Bilingual) -> Bilingual:
    if a is None:
        return b
    return B(f"{a.en} {b.en}", f"{a.zh}{b.zh}")


RULE = Rule(
    id=RULE_ID,
    name=B("Fleischner Society 2017 incidental pulmonary nodules",
           "Fleischner 学会 2017 偶发肺结节指南"),
    citation=CITATION,
    finding_type=NoduleFinding,
    evaluate=evaluate,
    population=Population(min_age=35),  # "not applicable: age under 35" (the guideline's own)
)
