"""LI-RADS v2018 CT/MRI diagnostic categories and management for liver observations.

Applies only to patients at high risk of hepatocellular carcinoma (cirrhosis, chronic
hepatitis B, or current or prior HCC), aged 18 or over, on multiphase CT or MR; cirrhosis
from congenital hepatic fibrosis or a vascular disorder (e.g. Budd-Chiari syndrome,
hereditary haemorrhagic telangiectasia) is excluded, as the algorithm states.

Encodes the v2018 diagnostic table: arterial phase hyperenhancement (non-rim APHE or not),
observation size (<10, 10-19, >=20 mm) and the number of additional major features
(non-peripheral washout, enhancing capsule, threshold growth), plus LR-1, LR-2, LR-M and
LR-TIV, which the reader assigns before the table applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.text import Text as Bilingual
from imaging.knowledge.guidelines.common import (
    ADULTS,
    PatientContext,
    Rule,
    RuleResult,
    not_applicable,
)

RULE_ID = "li_rads_2018"
CITATION = "ACR LI-RADS v2018 CT/MRI (American College of Radiology, 2018)"
B = Bilingual


@dataclass(frozen=True)
class LiverObservation:
    """One liver observation on multiphase CT or MR in a patient at risk of HCC.

    `aphe`: non-rim arterial phase hyperenhancement. `washout`: non-peripheral washout.
    `capsule`: enhancing capsule. `threshold_growth`: size increase of 50% or more in 6
    months or less. `definitely_benign` / `probably_benign` / `targetoid` (LR-M features) /
    `tumor_in_vein` are the reader's assignments that take precedence over the table.
    """

    size_mm: float | None = None  # None: not measured or characterised
    aphe: bool = False
    washout: bool = False
    capsule: bool = False
    threshold_growth: bool = False
    definitely_benign: bool = False
    probably_benign: bool = False
    targetoid: bool = False
    tumor_in_vein: bool = False
    cirrhosis_cause_excluded: bool = False  # congenital hepatic fibrosis or vascular cause
    high_risk: bool | None = None  # cirrhosis, chronic hepatitis B or HCC; None = not stated


MANAGEMENT: dict[str, tuple[Bilingual, str]] = {
    "LR-1": (B("Definitely benign: return to surveillance in 6 months.",
               "肯定良性：6 个月后回归常规监测。"), "routine"),
    "LR-2": (B("Probably benign: return to surveillance in 6 months; consider repeat diagnostic "
               "imaging in 6 months or less.",
               "可能良性：6 个月后回归常规监测；可考虑 6 个月内复查诊断性影像。"), "routine"),
    "LR-3": (B("Intermediate probability of malignancy: repeat or alternative diagnostic CT or "
               "MR in 3-6 months.", "中等恶性概率：3-6 个月内复查或改用其他诊断性 CT 或 MR。"),
             "routine"),
    "LR-4": (B("Probably HCC: multidisciplinary discussion; biopsy, or repeat or alternative "
               "diagnostic imaging in 3 months or less.",
               "可能为肝细胞癌：多学科讨论；活检，或 3 个月内复查或改用其他诊断性影像。"), "soon"),
    "LR-5": (B("Definitely HCC: multidisciplinary discussion for consensus management; biopsy "
               "is not required for diagnosis.",
               "肯定为肝细胞癌：多学科讨论制定治疗方案；诊断无需活检。"), "urgent"),
    "LR-M": (B("Probably or definitely malignant, not HCC-specific: multidisciplinary "
               "discussion; biopsy is often needed.",
               "可能或肯定为恶性但非肝细胞癌特异：多学科讨论；常需活检。"), "urgent"),
    "LR-TIV": (B("Tumour in vein: multidisciplinary discussion; biopsy may be considered.",
                 "静脉内癌栓：多学科讨论；可考虑活检。"), "urgent"),
}


def _table(obs: LiverObservation) -> str:
    if obs.size_mm is None:
        raise ValueError("observation size not given")
    size = obs.size_mm
    extra = sum((obs.washout, obs.capsule, obs.threshold_growth))
    if not obs.aphe:
        if extra == 0:
            return "LR-3"
        if extra == 1:
            return "LR-3" if size < 20 else "LR-4"
        return "LR-4"
    if size < 10:
        return "LR-3" if extra == 0 else "LR-4"
    if size < 20:
        if extra == 0:
            return "LR-3"
        if extra == 1:
            return "LR-4" if obs.capsule else "LR-5"  # capsule alone -> LR-4
        return "LR-5"
    return "LR-4" if extra == 0 else "LR-5"


def categorize(obs: LiverObservation) -> str:
    if obs.tumor_in_vein:
        return "LR-TIV"
    if obs.definitely_benign:
        return "LR-1"
    if obs.probably_benign:
        return "LR-2"
    if obs.targetoid:
        return "LR-M"
    return _table(obs)


def evaluate(obs: LiverObservation, patient: PatientContext) -> RuleResult:
    if patient.age is not None and patient.age < 18:
        return not_applicable(RULE_ID, CITATION, "not applicable: age under 18.",
                              "不适用：年龄小于 18 岁。")
    if obs.high_risk is False:
        return not_applicable(RULE_ID, CITATION,
                              "not applicable: patient not at high risk of HCC (no cirrhosis, "
                              "chronic hepatitis B or HCC); use the usual liver lesion work-up.",
                              "不适用：患者非肝细胞癌高危人群（无肝硬化、慢性乙型肝炎或肝细胞癌）；"
                              "按常规肝脏病灶流程处理。")
    if obs.cirrhosis_cause_excluded:
        return not_applicable(RULE_ID, CITATION,
                              "not applicable: cirrhosis from congenital hepatic fibrosis or a "
                              "vascular disorder.",
                              "不适用：先天性肝纤维化或血管性疾病所致肝硬化。")
    if patient.modality not in ("CT", "MR"):
        return not_applicable(RULE_ID, CITATION,
                              "not applicable: LI-RADS CT/MRI needs multiphase CT or MR; "
                              "characterise the observation with contrast-enhanced CT or MR.",
                              "不适用：LI-RADS CT/MRI 需多期 CT 或 MR；"
                              "请行增强 CT 或 MR 明确病灶性质。")
    if obs.size_mm is None and not (obs.tumor_in_vein or obs.definitely_benign
                                    or obs.probably_benign or obs.targetoid):
        return not_applicable(RULE_ID, CITATION,
                              "not applicable yet: measure and characterise the observation on "
                              "multiphase CT or MR.",
                              "暂不适用：请在多期 CT 或 MR 上测量并描述观察灶特征。")
    category = categorize(obs)
    rec, urgency = MANAGEMENT[category]
    note = None if obs.high_risk else B(
        "Risk not stated: applies only to patients at high risk of HCC (cirrhosis, chronic "
        "hepatitis B, or current or prior HCC).",
        "未提供风险信息：仅适用于肝细胞癌高危患者（肝硬化、慢性乙型肝炎或现患/既往肝细胞癌）。")
    return RuleResult(RULE_ID, True, rec, None, urgency, CITATION, category=category, note=note)


RULE = Rule(
    id=RULE_ID,
    name=B("LI-RADS v2018 liver observations (CT/MRI)", "LI-RADS v2018 肝脏观察灶分类（CT/MRI）"),
    citation=CITATION,
    finding_type=LiverObservation,
    evaluate=evaluate,
    population=ADULTS,
)
