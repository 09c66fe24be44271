"""A small knowledge base and hand-built analyses for the note, ddx and DICOM-out tests.

The entries follow `imaging/knowledge/SCHEMA.md`; they are written to a temporary folder so
these tests do not depend on the size or wording of the shipped knowledge base.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from imaging.types import Analysis, Observation, Saliency, SeriesAnalysis


def _bi(en: str, zh: str) -> dict:
    return {"en": en, "zh": zh}


def _entry(id_, en, zh, regions, modalities, *, synonyms=(), age=(0, 100), sex="any",
           keywords=(), features=("Typical finding.",), supported_by=(), differentials=(),
           next_imaging=(), urgency="routine", category="other"):
    return {
        "id": id_, "names": _bi(en, zh), "synonyms": list(synonyms), "regions": list(regions),
        "modalities": list(modalities), "category": category, "age_range": list(age),
        "sex": sex, "history_keywords": list(keywords),
        "features": {"en": list(features), "zh": ["典型表现。"] * len(features)},
        "supported_by": list(supported_by),
        "differentials": [{"id": d, "discriminator": _bi(f"Differs from {d}.", f"与{d}不同。")}
                          for d in differentials],
        "next_imaging": list(next_imaging), "urgency": urgency,
    }


CHEST = [
    _entry("pneumonia", "Pneumonia", "肺炎", ["chest"], ["XR", "CT"],
           synonyms=["lobar pneumonia", "community acquired pneumonia"], age=(0, 100),
           keywords=["fever", "cough", "sputum"],
           features=["Lobar consolidation with air bronchograms."],
           supported_by=["finding:pneumonia", "finding:infiltration"],
           differentials=["pulmonary_edema", "lung_cancer"],
           next_imaging=[{"modality": "XR", "protocol": _bi("Chest radiograph", "胸部 X 线片"),
                          "timing": _bi("6-8 weeks after treatment", "治疗后 6-8 周"),
                          "urgency": "routine", "source": "BTS CAP guideline 2009",
                          "rule": "pneumonia_followup_cxr"}]),
    _entry("pulmonary_edema", "Pulmonary oedema", "肺水肿", ["chest"], ["XR", "CT"],
           synonyms=["pulmonary edema", "cardiogenic edema"], age=(40, 100),
           keywords=["orthopnea", "heart failure"], supported_by=["finding:edema"],
           features=["Bilateral perihilar airspace opacities with Kerley B lines."]),
    _entry("lung_cancer", "Lung cancer", "肺癌", ["chest"], ["XR", "CT"],
           synonyms=["bronchogenic carcinoma", "non-small cell lung cancer"], age=(45, 100),
           keywords=["smoker", "hemoptysis", "weight loss"],
           features=["Spiculated lung mass."], category="neoplastic_malignant"),
    _entry("pleural_effusion", "Pleural effusion", "胸腔积液", ["chest"], ["XR", "CT", "US"],
           keywords=["dyspnea"], supported_by=["finding:effusion"],
           features=["Blunting of the costophrenic angle with a meniscus."]),
    _entry("tuberculosis", "Pulmonary tuberculosis", "肺结核", ["chest"], ["XR", "CT"],
           synonyms=["TB"], age=(15, 100), keywords=["night sweats", "fever", "weight loss"],
           features=["Upper lobe cavitation."]),
]
NEURO = [
    _entry("acute_ischemic_stroke", "Acute ischaemic stroke", "急性缺血性脑卒中", ["neuro"],
           ["CT", "MR"], synonyms=["cerebral infarction", "infarct", "stroke"], age=(40, 100),
           keywords=["hemiparesis", "aphasia", "facial droop"],
           features=["Restricted diffusion in a vascular territory."], urgency="emergent",
           next_imaging=[{"modality": "CT", "protocol": _bi("CT angiography", "CT 血管成像"),
                          "timing": _bi("immediately", "立即"), "urgency": "emergent",
                          "source": "AHA/ASA 2019", "rule": "stroke_vascular_imaging"}]),
    _entry("glioblastoma", "Glioblastoma", "胶质母细胞瘤", ["neuro"], ["MR", "CT"],
           synonyms=["GBM"], age=(40, 90), keywords=["seizure", "headache"],
           features=["Ring-enhancing mass with necrosis."]),
    _entry("meningioma", "Meningioma", "脑膜瘤", ["neuro"], ["MR", "CT"], age=(30, 90),
           sex="any", keywords=["headache"], features=["Dural-based enhancing mass."]),
]
GU = [
    _entry("ovarian_cyst", "Ovarian cyst", "卵巢囊肿", ["genitourinary"], ["US", "CT", "MR"],
           sex="F", age=(12, 60), keywords=["pelvic pain"], features=["Simple adnexal cyst."]),
    _entry("bph", "Benign prostatic hyperplasia", "良性前列腺增生", ["genitourinary"],
           ["CT", "MR", "US"], sex="M", age=(50, 100), keywords=["urinary retention"],
           features=["Enlarged prostate."]),
    _entry("bladder_diverticulum", "Bladder diverticulum", "膀胱憩室", ["genitourinary"],
           ["CT", "MR", "US"], age=(40, 100), keywords=["hematuria", "urinary tract infection"],
           features=["Outpouching of the bladder wall."]),
]


def write_knowledge(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, entries in (("chest", CHEST), ("neuro", NEURO), ("genitourinary", GU)):
        (directory / f"{name}.json").write_text(json.dumps(entries, ensure_ascii=False))
    return directory


def _obs(code, kind, p):
    return Observation(code=code, kind=kind, label=code.split(":")[1], probability=p)


def chest_radiograph_analysis(pneumonia=0.8, ood=False, uid="1.2.3.4") -> Analysis:
    sal = np.zeros((64, 64), np.float32)
    sal[5:20, 45:60] = 1.0  # image top right = the patient's upper left
    key = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
    emb = np.ones(8, np.float32) / np.sqrt(8)
    series = SeriesAnalysis(
        series_instance_uid=uid + ".1", header_modality="DX", n_images=1, key_slice=0,
        observations=(
            _obs("modality:XR", "modality", 0.99), _obs("modality:CT", "modality", 0.01),
            _obs("region:chest_radiograph", "region", 0.97), _obs("region:head", "region", 0.03),
            _obs("finding:pneumonia", "finding", pneumonia),
            _obs("finding:effusion", "finding", 0.12),
        ),
        quality_score=0.1 if ood else 0.93, out_of_distribution=ood,
        saliency=(Saliency("finding:pneumonia", 0, "gradcam", sal),),
        source_sop_instance_uids=(uid + ".1.1",), embedding=emb, key_image=key,
    )
    return Analysis(study_instance_uid=uid, series=(series,), model_version="test-0.1")


def mr_head_analysis(uid="1.2.3.9") -> Analysis:
    series = SeriesAnalysis(
        series_instance_uid=uid + ".1", header_modality="MR", n_images=20, key_slice=9,
        observations=(_obs("modality:MR", "modality", 0.98), _obs("region:head", "region", 0.9),
                      _obs("region:abdomen", "region", 0.1), _obs("plane:axial", "plane", 0.8)),
        quality_score=0.9, out_of_distribution=False,
        source_sop_instance_uids=tuple(f"{uid}.1.{i}" for i in range(1, 21)),
        embedding=None, key_image=np.zeros((32, 32), np.uint8),
    )
    return Analysis(study_instance_uid=uid, series=(series,), model_version="test-0.1")


def pelvis_ct_analysis(uid="1.2.3.7") -> Analysis:
    series = SeriesAnalysis(
        series_instance_uid=uid + ".1", header_modality="CT", n_images=3, key_slice=1,
        observations=(_obs("modality:CT", "modality", 0.99),
                      _obs("region:reproductive_urinary", "region", 0.95)),
        quality_score=0.9, out_of_distribution=False,
        key_image=np.zeros((32, 32), np.uint8),
    )
    return Analysis(study_instance_uid=uid, series=(series,), model_version="test-0.1")
