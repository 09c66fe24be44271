"""Follow-up rules the teaching data calls for, beyond the two nodule guidelines.

Each rule encodes the decision points of a published guideline or white paper (cited by
name and reference; ACR Appropriateness Criteria are named by topic only, never quoted) and
says why it does not apply when the patient or examination is outside its scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.text import Text as Bilingual
from imaging.knowledge.guidelines.common import (
    ADULTS,
    PatientContext,
    Population,
    Rule,
    RuleResult,
    not_applicable,
    round_mm,
)

B = Bilingual


def _ok(rule_id: str, citation: str, rec: Bilingual, urgency: str,
        category: str | None = None, note: Bilingual | None = None) -> RuleResult:
    return RuleResult(rule_id, True, rec, None, urgency, citation, category=category, note=note)


# --- follow-up chest radiograph after community-acquired pneumonia ------------------------

PNEUMONIA_ID = "pneumonia_followup_cxr"
PNEUMONIA_CITATION = (
    "BTS guidelines for the management of community acquired pneumonia in adults "
    "(Lim et al., Thorax 2009;64 Suppl 3:iii1-iii55); ACR Appropriateness Criteria topic "
    "\"Acute Respiratory Illness in Immunocompetent Patients\""
)


@dataclass(frozen=True)
class PneumoniaFinding:
    """Radiographic pneumonia in an adult; `persisting_symptoms` if signs or symptoms persist."""

    persisting_symptoms: bool = False


def pneumonia_followup(finding: PneumoniaFinding, patient: PatientContext) -> RuleResult:
    """Repeat radiograph ~6 weeks after treatment for adults at higher risk of malignancy."""
    if patient.age is not None and patient.age < 18:
        return not_applicable(PNEUMONIA_ID, PNEUMONIA_CITATION,
                              "not applicable: child (the adult pneumonia guideline does not "
                              "apply).",
                              "不适用：儿童（成人肺炎指南不适用）。")
    at_risk = (patient.age is not None and patient.age >= 50) or patient.smoker is True
    if at_risk or finding.persisting_symptoms:
        why_en = "age 50 or over" if patient.age is not None and patient.age >= 50 else (
            "smoker" if patient.smoker else "persisting symptoms or signs")
        why_zh = {"age 50 or over": "年龄 ≥50 岁", "smoker": "吸烟者"}.get(
            why_en, "症状或体征持续存在")
        return _ok(PNEUMONIA_ID, PNEUMONIA_CITATION, B(
            f"Follow-up chest radiograph about 6-8 weeks after completing treatment to confirm "
            f"resolution and exclude an underlying lesion ({why_en}).",
            f"治疗结束后约 6-8 周复查胸片，以确认病变吸收并排除潜在病变（{why_zh}）。"),
            "routine")
    if patient.age is None and patient.smoker is None:
        return not_applicable(PNEUMONIA_ID, PNEUMONIA_CITATION,
                              "not applicable as stated: age and smoking status not given "
                              "(follow-up radiograph advised if age 50 or over or a smoker).",
                              "按现有信息不适用：未提供年龄和吸烟史（如年龄 ≥50 岁或吸烟，"
                              "建议复查胸片）。")
    return not_applicable(PNEUMONIA_ID, PNEUMONIA_CITATION,
                          "not applicable: age under 50, non-smoker, no persisting symptoms "
                          "(routine follow-up radiograph not needed after clinical recovery).",
                          "不适用：年龄 <50 岁、不吸烟且无持续症状（临床痊愈后无需常规复查胸片）。")


# --- vascular imaging after ischaemic stroke or TIA ----------------------------------------

STROKE_ID = "stroke_vascular_imaging"
STROKE_CITATION = (
    "AHA/ASA 2019 guidelines for the early management of acute ischemic stroke "
    "(Powers et al., Stroke 2019;50:e344-e418)"
)
STROKE_KINDS = ("ischemic", "tia", "hemorrhagic")


@dataclass(frozen=True)
class StrokeFinding:
    kind: str = "ischemic"
    hours_since_onset: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in STROKE_KINDS:
            raise ValueError(f"stroke kind must be one of {STROKE_KINDS}, got {self.kind!r}")


def stroke_vascular_imaging(finding: StrokeFinding, patient: PatientContext) -> RuleResult:
    """CTA/MRA of head and neck: emergently within the thrombectomy window, else soon."""
    if finding.kind == "hemorrhagic":
        return not_applicable(STROKE_ID, STROKE_CITATION,
                              "not applicable: haemorrhagic stroke (this rule covers ischaemic "
                              "stroke and TIA; consider CTA for an underlying vascular lesion).",
                              "不适用：出血性卒中（本规则适用于缺血性卒中及 TIA；"
                              "可考虑 CTA 寻找潜在血管病变）。")
    hours = finding.hours_since_onset
    if finding.kind == "ischemic" and (hours is None or hours <= 24):
        note = None if hours is not None else B(
            "Onset time not stated: treated as within the 24-hour thrombectomy window.",
            "未提供发病时间：按 24 小时取栓时间窗内处理。")
        return _ok(STROKE_ID, STROKE_CITATION, B(
            "Non-invasive vascular imaging of the intracranial and extracranial arteries (CT "
            "angiography, or MR angiography) without delay, to find a large-vessel occlusion "
            "for thrombectomy.",
            "立即行颅内及颅外动脉无创血管成像（CT 血管成像或 MR 血管成像），以明确是否存在"
            "可行取栓的大血管闭塞。"), "emergent", category="acute", note=note)
    return _ok(STROKE_ID, STROKE_CITATION, B(
        "Imaging of the cervical carotid and vertebral arteries (CT angiography, MR angiography "
        "or carotid duplex ultrasound) during the admission, to guide secondary prevention.",
        "住院期间行颈动脉及椎动脉成像（CT 血管成像、MR 血管成像或颈动脉双功超声），"
        "以指导二级预防。"), "urgent", category="secondary_prevention")


# --- incidental adrenal nodule ------------------------------------------------------------

ADRENAL_ID = "adrenal_incidentaloma_acr2017"
ADRENAL_CITATION = (
    "ACR Incidental Findings Committee white paper on adrenal incidentalomas "
    "(Mayo-Smith et al., J Am Coll Radiol 2017;14:1038-1044)"
)


@dataclass(frozen=True)
class AdrenalFinding:
    """An incidental adrenal mass on CT or MR.

    `unenhanced_hu`: attenuation without contrast; washouts in percent from an adrenal
    protocol CT; `stable_1yr`: unchanged for at least one year on prior imaging.
    """

    size_mm: float | None = None  # None: not measured
    unenhanced_hu: float | None = None
    absolute_washout: float | None = None
    relative_washout: float | None = None
    macroscopic_fat: bool = False
    stable_1yr: bool = False
    signal_drop_chemical_shift: bool = False
    enlarging: bool = False  # grown since prior imaging


def adrenal_incidentaloma(finding: AdrenalFinding, patient: PatientContext) -> RuleResult:
    rid, cit = ADRENAL_ID, ADRENAL_CITATION
    if patient.age is not None and patient.age < 18:
        return not_applicable(rid, cit, "not applicable: age under 18 (adult white paper).",
                              "不适用：年龄小于 18 岁（该白皮书针对成人）。")
    if patient.modality not in ("CT", "MR", "PET"):
        return not_applicable(rid, cit, f"not applicable: {patient.modality} cannot characterise "
                              "an adrenal mass; use CT or MR.",
                              f"不适用：{patient.modality} 无法定性肾上腺肿块，请行 CT 或 MR。")
    if finding.size_mm is None:
        return not_applicable(rid, cit, "not applicable yet: measure the adrenal mass (size and "
                              "unenhanced attenuation).",
                              "暂不适用：请测量肾上腺肿块（大小及平扫 CT 值）。")
    size = round_mm(finding.size_mm)
    if finding.macroscopic_fat:
        return _ok(rid, cit, B("Macroscopic fat: myelolipoma, no further imaging.",
                               "含宏观脂肪：髓样脂肪瘤，无需进一步影像检查。"), "none", "benign")
    if size < 10:
        return _ok(rid, cit, B("Smaller than 1 cm: no further imaging.",
                               "小于 1 cm：无需进一步影像检查。"), "none", "small")
    if finding.unenhanced_hu is not None and finding.unenhanced_hu <= 10:
        return _ok(rid, cit, B("10 HU or less on unenhanced CT: lipid-rich adenoma, no further "
                               "imaging.", "平扫 CT ≤10 HU：富脂质腺瘤，无需进一步影像检查。"),
                   "none", "adenoma")
    if finding.signal_drop_chemical_shift:
        return _ok(rid, cit, B("Signal loss on opposed-phase chemical-shift MR: adenoma, no "
                               "further imaging.",
                               "化学位移 MR 反相位信号减低：腺瘤，无需进一步影像检查。"),
                   "none", "adenoma")
    if finding.enlarging:
        return _ok(rid, cit, B("Enlarging indeterminate adrenal mass: consider biopsy or "
                               "resection (with biochemical evaluation).",
                               "增大的不确定性肾上腺肿块：考虑活检或手术切除（并行生化评估）。"),
                   "soon", "enlarging")
    if finding.stable_1yr:
        return _ok(rid, cit, B("Stable for 1 year or more: benign, no further imaging.",
                               "稳定 ≥1 年：良性，无需进一步影像检查。"), "none", "stable")
    if (finding.absolute_washout is not None and finding.absolute_washout >= 60) or (
        finding.relative_washout is not None and finding.relative_washout >= 40
    ):
        return _ok(rid, cit, B("Washout meets adenoma criteria (absolute 60% or more, or relative "
                               "40% or more): adenoma, no further imaging.",
                               "廓清率符合腺瘤标准（绝对廓清率 ≥60% 或相对廓清率 ≥40%）：腺瘤，"
                               "无需进一步影像检查。"), "none", "adenoma")
    if patient.known_cancer:
        return _ok(rid, cit, B("Indeterminate adrenal mass in a patient with cancer: PET/CT or "
                               "biopsy if it would change management, or follow-up to show "
                               "stability.",
                               "肿瘤患者的不确定性肾上腺肿块：如影响治疗，行 PET/CT 或"
                               "活检；否则随访观察其稳定性。"), "soon", "indeterminate_cancer")
    if size >= 40:
        return _ok(rid, cit, B("4 cm or larger and indeterminate: consider resection (with "
                               "biochemical evaluation).", "≥4 cm 且性质不确定：考虑手术切除"
                               "（并行生化评估）。"), "soon", "large")
    return _ok(rid, cit, B("1-4 cm and indeterminate: adrenal protocol CT (unenhanced, portal "
                           "venous and 15-minute delayed) or chemical-shift MR; biochemical "
                           "evaluation for hormone excess.",
                           "1-4 cm 且性质不确定：行肾上腺方案 CT（平扫、门静脉期及 15 分钟延迟期）"
                           "或化学位移 MR；并行激素分泌功能的生化评估。"),
               "routine", "indeterminate")


# --- cystic renal mass: Bosniak 2019 ------------------------------------------------------

BOSNIAK_ID = "bosniak_2019"
BOSNIAK_CITATION = (
    "Bosniak classification of cystic renal masses, version 2019 "
    "(Silverman et al., Radiology 2019;292:475-488)"
)
BOSNIAK_CLASSES = ("I", "II", "IIF", "III", "IV")


@dataclass(frozen=True)
class RenalCystFinding:
    bosniak: str | None = None  # "I" | "II" | "IIF" | "III" | "IV" | None (not classified)


BOSNIAK_MANAGEMENT: dict[str, tuple[Bilingual, str]] = {
    "I": (B("Bosniak I (simple cyst): benign, no follow-up.",
            "Bosniak I 类（单纯囊肿）：良性，无需随访。"), "none"),
    "II": (B("Bosniak II: benign, no follow-up.", "Bosniak II 类：良性，无需随访。"), "none"),
    "IIF": (B("Bosniak IIF: follow-up CT or MR at 6 months and 12 months, then annually for "
              "5 years.",
              "Bosniak IIF 类：6 个月和 12 个月时复查 CT 或 MR，之后每年复查，共 5 年。"),
            "routine"),
    "III": (B("Bosniak III (intermediate, about half malignant): urological referral for "
              "surgery or active surveillance.",
              "Bosniak III 类（中间型，约半数为恶性）：泌尿外科会诊，手术或主动监测。"), "soon"),
    "IV": (B("Bosniak IV (likely malignant): urological referral for treatment.",
             "Bosniak IV 类（很可能为恶性）：泌尿外科会诊治疗。"), "urgent"),
}


def bosniak(finding: RenalCystFinding, patient: PatientContext) -> RuleResult:
    rid, cit = BOSNIAK_ID, BOSNIAK_CITATION
    if patient.age is not None and patient.age < 18:
        return not_applicable(rid, cit, "not applicable: child (Bosniak is validated in adults).",
                              "不适用：儿童（Bosniak 分类在成人中验证）。")
    if patient.modality == "US" or finding.bosniak is None:
        return not_applicable(rid, cit,
                              "not applicable yet: classify with renal-mass protocol CT or MR "
                              "(Bosniak 2019 is defined on CT and MR).",
                              "暂不适用：请行肾脏肿块方案 CT 或 MR 分类"
                              "（Bosniak 2019 基于 CT 与 MR）。")
    if finding.bosniak not in BOSNIAK_CLASSES:
        raise ValueError(f"Bosniak class must be one of {BOSNIAK_CLASSES}")
    rec, urgency = BOSNIAK_MANAGEMENT[finding.bosniak]
    return _ok(rid, cit, rec, urgency, finding.bosniak)


# --- incidental thyroid nodule on CT, MR or PET -------------------------------------------

THYROID_ID = "thyroid_incidental_acr2015"
THYROID_CITATION = (
    "ACR white paper on incidental thyroid nodules detected on CT, MRI and PET "
    "(Hoang et al., J Am Coll Radiol 2015;12:143-150)"
)


@dataclass(frozen=True)
class ThyroidFinding:
    size_mm: float | None = None  # None: not measured
    suspicious_features: bool = False  # invasion of local tissues or abnormal lymph nodes
    fdg_avid: bool = False
    limited_life_expectancy: bool = False


def thyroid_incidental(finding: ThyroidFinding, patient: PatientContext) -> RuleResult:
    rid, cit = THYROID_ID, THYROID_CITATION
    if patient.modality == "US":
        return not_applicable(rid, cit, "not applicable: nodule seen on ultrasound (use ACR "
                              "TI-RADS).", "不适用：超声发现的结节（请使用 ACR TI-RADS）。")
    if patient.age is not None and patient.age < 18:
        return not_applicable(rid, cit, "not applicable: age under 18.", "不适用：年龄小于 18 岁。")
    us = B("Thyroid ultrasound.", "甲状腺超声检查。")
    if finding.fdg_avid:
        return _ok(rid, cit, B("FDG-avid thyroid nodule: thyroid ultrasound.",
                               "FDG 高摄取甲状腺结节：行甲状腺超声检查。"), "soon", "pet_avid")
    if finding.suspicious_features:
        return _ok(rid, cit, B("Suspicious features (local invasion or abnormal lymph nodes): "
                               "thyroid ultrasound.", "可疑征象（局部侵犯或异常淋巴结）："
                               "行甲状腺超声检查。"), "soon", "suspicious")
    if finding.limited_life_expectancy:
        return _ok(rid, cit, B("Limited life expectancy or serious comorbidity: no further "
                               "evaluation.", "预期寿命有限或合并严重疾病：无需进一步评估。"),
                   "none", "limited_life")
    size = finding.size_mm
    if size is None:
        return not_applicable(rid, cit, "not applicable yet: measure the thyroid nodule.",
                              "暂不适用：请测量甲状腺结节大小。")
    if patient.age is None:
        threshold, note = 10, B("Age not stated: the 1 cm threshold (under 35) is used, which "
                                "is the more sensitive one.", "未提供年龄：采用 1 cm 阈值"
                                "（<35 岁标准），敏感性更高。")
    else:
        threshold, note = (10 if patient.age < 35 else 15), None
    if size >= threshold:
        return _ok(rid, cit, us, "routine", f"ge{threshold}mm", note)
    cut = "1 cm" if threshold == 10 else "1.5 cm"
    return _ok(rid, cit, B(f"Smaller than {cut} without suspicious features: no further "
                           "evaluation.", f"小于 {cut} 且无可疑征象：无需进一步评估。"),
               "none", f"lt{threshold}mm", note)


# --- simple adnexal cyst on ultrasound ----------------------------------------------------

ADNEXAL_ID = "adnexal_simple_cyst_orads"
ADNEXAL_CITATION = (
    "O-RADS US risk stratification and management system (Andreotti et al., Radiology "
    "2020;294:168-185); SRU consensus update on simple adnexal cysts (Levine et al., "
    "Radiology 2019;293:359-371)"
)


@dataclass(frozen=True)
class AdnexalCystFinding:
    size_mm: float | None = None  # maximum diameter of a simple cyst; None: not measured


def adnexal_simple_cyst(finding: AdnexalCystFinding, patient: PatientContext) -> RuleResult:
    rid, cit = ADNEXAL_ID, ADNEXAL_CITATION
    if patient.sex == "M":
        return not_applicable(rid, cit, "not applicable: male patient.", "不适用：男性患者。")
    if patient.modality != "US":
        return not_applicable(rid, cit, "not applicable: O-RADS US applies to ultrasound; "
                              "characterise the adnexal cyst with pelvic ultrasound.",
                              "不适用：O-RADS US 适用于超声；请行盆腔超声明确附件囊肿性质。")
    if finding.size_mm is None:
        return not_applicable(rid, cit, "not applicable yet: measure the cyst on ultrasound.",
                              "暂不适用：请在超声上测量囊肿大小。")
    post = patient.postmenopausal
    note = None
    if post is None:
        if patient.age is None:
            return not_applicable(rid, cit, "not applicable as stated: menopausal status and age "
                                  "not given.", "按现有信息不适用：未提供绝经状态及年龄。")
        post = patient.age >= 52
        note = B("Menopausal status not stated: inferred from age (52 or over taken as "
                 "postmenopausal).", "未提供绝经状态：根据年龄推断（≥52 岁视为绝经后）。")
    cm = finding.size_mm / 10.0
    if cm >= 10:
        return _ok(rid, cit, B("Simple cyst 10 cm or larger (O-RADS 3): management by a "
                               "gynaecologist.", "单纯囊肿 ≥10 cm（O-RADS 3）：由妇科医师处理。"),
                   "soon", "O-RADS 3", note)
    if not post:
        if cm <= 3:
            return _ok(rid, cit, B("Simple cyst 3 cm or smaller in a premenopausal patient: "
                                   "physiological follicle (O-RADS 1), no follow-up.",
                                   "绝经前单纯囊肿 ≤3 cm：生理性卵泡（O-RADS 1），无需随访。"),
                       "none", "O-RADS 1", note)
        if cm <= 5:
            return _ok(rid, cit, B("Simple cyst over 3 cm and up to 5 cm, premenopausal (O-RADS "
                                   "2): no follow-up.",
                                   "绝经前单纯囊肿 >3 cm 且 ≤5 cm（O-RADS 2）："
                                   "无需随访。"), "none", "O-RADS 2", note)
        return _ok(rid, cit, B("Simple cyst over 5 cm and under 10 cm, premenopausal (O-RADS 2): "
                               "follow-up ultrasound in 8-12 weeks.",
                               "绝经前单纯囊肿 >5 cm 且 <10 cm（O-RADS 2）：8-12 周后复查超声。"),
                   "routine", "O-RADS 2", note)
    if cm <= 3:
        return _ok(rid, cit, B("Simple cyst 3 cm or smaller, postmenopausal (O-RADS 2): no "
                               "follow-up.", "绝经后单纯囊肿 ≤3 cm（O-RADS 2）：无需随访。"),
                   "none", "O-RADS 2", note)
    return _ok(rid, cit, B("Simple cyst over 3 cm and under 10 cm, postmenopausal (O-RADS 2): "
                           "follow-up ultrasound in 1 year.",
                           "绝经后单纯囊肿 >3 cm 且 <10 cm（O-RADS 2）：1 年后复查超声。"),
               "routine", "O-RADS 2", note)


RULES_HERE = (
    Rule(PNEUMONIA_ID, B("Follow-up chest radiograph after pneumonia", "肺炎后复查胸片"),
         PNEUMONIA_CITATION, PneumoniaFinding, pneumonia_followup, ADULTS),
    Rule(STROKE_ID, B("Vascular imaging after ischaemic stroke or TIA",
                      "缺血性卒中或 TIA 后的血管成像"),
         STROKE_CITATION, StrokeFinding, stroke_vascular_imaging, ADULTS),
    Rule(ADRENAL_ID, B("Incidental adrenal mass", "偶发肾上腺肿块"),
         ADRENAL_CITATION, AdrenalFinding, adrenal_incidentaloma, ADULTS),
    Rule(BOSNIAK_ID, B("Cystic renal mass (Bosniak 2019)", "肾脏囊性肿块（Bosniak 2019）"),
         BOSNIAK_CITATION, RenalCystFinding, bosniak, ADULTS),
    Rule(THYROID_ID, B("Incidental thyroid nodule on CT, MR or PET",
                       "CT、MR 或 PET 偶发甲状腺结节"),
         THYROID_CITATION, ThyroidFinding, thyroid_incidental, ADULTS),
    Rule(ADNEXAL_ID, B("Simple adnexal cyst on ultrasound", "超声所见单纯附件囊肿"),
         ADNEXAL_CITATION, AdnexalCystFinding, adnexal_simple_cyst, Population(sexes=("F",))),
)
