"""The note's clinical context (every item with its source, in both languages and in the
JSON), which evidence decided each plane, the patient position, the paediatric caveat, and
age and sex reaching the guideline rules and the ranking (issue 18)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from imaging.ddx.knowledge_view import load_view
from imaging.ddx.population import (
    LifeStageTable,
    entry_class,
    excluded,
    life_stage_weights,
    load_table,
)
from imaging.notes import Resources, compose, to_json, to_markdown
from imaging.notes.context import PaediatricMeasurement
from imaging.types import ClinicalContext, ContextItem, Observation

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_notes import (  # noqa: E402
    CHEST,
    GU,
    NEURO,
    _entry,
    chest_radiograph_analysis,
    mr_head_analysis,
)

AORTA = _entry(
    "aortic_dissection", "Aortic dissection", "主动脉夹层", ["chest"], ["CT"], age=(40, 90),
    sex="M", keywords=["tearing chest pain"], features=["Intimal flap in the aorta."],
    next_imaging=[{"modality": "CT", "protocol": {"en": "CT angiography of the aorta",
                                                  "zh": "主动脉 CT 血管成像"},
                   "timing": {"en": "immediately", "zh": "立即"}, "urgency": "emergent",
                   "source": "ESC 2014 aortic disease guideline"}])


@pytest.fixture(scope="module")
def res(tmp_path_factory) -> Resources:
    folder = tmp_path_factory.mktemp("kb")
    for name, entries in (("chest", [*CHEST, AORTA]), ("neuro", NEURO), ("genitourinary", GU)):
        (folder / f"{name}.json").write_text(json.dumps(entries, ensure_ascii=False))
    return Resources(view=load_view(folder))


def _section(note, key):
    return next(s for s in note.sections if s.key == key)


def test_context_section_lists_every_item_with_its_source(res):
    ctx = ClinicalContext(age=3, sex="M", items=(
        ContextItem("age", "3", "header"), ContextItem("sex", "M", "header"),
        ContextItem("history", "fever", "user"), ContextItem("body_part", "BRAIN", "header"),
        ContextItem("laterality", "L", "header")), history="fever")
    note = compose(mr_head_analysis(), ctx, resources=res)
    assert [s.key for s in note.sections] == [
        "context", "analysed", "observations", "differential", "follow_up", "limitations"]
    lines = [line.en for line in _section(note, "context").lines]
    assert lines[:5] == ["Age: 3 years (from the DICOM header)",
                         "Sex: male (from the DICOM header)",
                         "Clinical history: “fever” (entered by the user)",
                         "Body part examined: BRAIN (from the DICOM header)",
                         "Laterality: left (from the DICOM header)"]
    zh = [line.zh for line in _section(note, "context").lines]
    assert zh[0] == "年龄：3 岁（来自 DICOM 头文件）" and zh[2].endswith("（由用户输入）")
    data = json.loads(to_json(note))
    assert data["context"][0] == {"key": "age", "value": "3", "source": "header",
                                  "text": {"en": "Age: 3 years (from the DICOM header)",
                                           "zh": "年龄：3 岁（来自 DICOM 头文件）"}}
    assert [c["source"] for c in data["context"]] == ["header", "header", "user", "header",
                                                      "header"]
    empty = compose(mr_head_analysis(), ClinicalContext(), resources=res)
    assert [line.en for line in _section(empty, "context").lines] == [
        "No clinical context was given, and the DICOM header states none."]
    assert json.loads(to_json(empty))["context"] == []


def _with_geometry(analysis, plane, source, angle, position="", nearest=""):
    s = analysis.series[0]
    obs = tuple(o for o in s.observations if o.kind != "plane") + (
        Observation(f"plane:{plane}", "plane", plane, 1.0 if source == "geometry" else 0.8),)
    return dataclasses.replace(analysis, series=(dataclasses.replace(
        s, observations=obs, plane_source=source, plane_angle=angle,
        plane_nearest=nearest or plane, patient_position=position,
        header_regions=("head",), header_region_evidence="BodyPartExamined: BRAIN"),))


def test_the_note_says_which_source_decided_the_plane_and_the_position(res):
    note = compose(_with_geometry(mr_head_analysis(), "sagittal", "geometry", 3.3, "HFS"),
                   ClinicalContext(), resources=res)
    lines = [line.en for line in _section(note, "analysed").lines]
    assert ("Series 1: sagittal plane decided by the header geometry (ImageOrientationPatient,"
            " 3° from the true sagittal plane).") in lines
    assert "Series 1: patient position head first, supine (DICOM header, HFS)." in lines
    assert any(line.startswith("Series 1: the header names head (BodyPartExamined: BRAIN); "
                               "weighed with the image as a likelihood ratio of 22")
               for line in lines)
    oblique = compose(_with_geometry(mr_head_analysis(), "oblique", "geometry", 41.0, "FFP",
                                     nearest="coronal"), ClinicalContext(), resources=res)
    text = to_markdown(oblique, "en")
    assert ("oblique plane decided by the header geometry (ImageOrientationPatient): 41° from "
            "the nearest standard plane (coronal plane), beyond the 35°") in text
    assert "feet first, prone" in text and "斜位" in to_markdown(oblique, "zh")
    assert json.loads(to_json(oblique))["series"][0]["plane"] == "oblique"
    image = compose(_with_geometry(mr_head_analysis(), "axial", "image", None, "HFDL"),
                    ClinicalContext(), resources=res)
    text = to_markdown(image, "en")
    assert ("axial plane read from the image by the model (the header gives no "
            "ImageOrientationPatient)") in text
    assert "left lateral decubitus" in text and "less reliable" in text
    item = json.loads(to_json(image))["series"][0]
    assert (item["plane_source"], item["patient_position"]) == ("image", "HFDL")


MEASURED = {"model_version": "test-0.1", "adult_age": 18,
            "train": {"medpix": {"images": 1653, "with_age": 1653, "children": 338,
                                 "under_5": 120}},
            "metrics_children": {
                "medpix.modality_acc": {"value": 0.95, "ci95": [0.85, 1.0], "n": 20,
                                        "groups": 7},
                "medpix.region_acc": {"value": 0.7, "ci95": [0.5, 0.9], "n": 20},
                "medpix.plane_acc": {"value": 0.8, "ci95": [0.6, 0.95], "n": 18}},
            "metrics_adults": {
                "medpix.modality_acc": {"value": 0.97, "ci95": [0.94, 0.99], "n": 177},
                "medpix.region_acc": {"value": 0.8, "ci95": [0.74, 0.86], "n": 170},
                "medpix.plane_acc": {"value": 0.85, "ci95": [0.8, 0.9], "n": 160}}}


def test_a_child_is_flagged_with_the_measured_paediatric_accuracy(res):
    measured = dataclasses.replace(res, paediatric=PaediatricMeasurement("test-0.1", MEASURED))
    child = compose(mr_head_analysis(), ClinicalContext(age=3), resources=measured)
    limits = [line.en for line in _section(child, "limitations").lines]
    assert limits[3].startswith("Paediatric patient (age 3): outside the population")
    assert limits[4] == ("Children are 338 of the 1653 training images with a stated age "
                         "(120 under 5).")
    assert limits[5].startswith("Measured on 20 paediatric MedPix validation images of 7 cases "
                                "(95% CI): modality 95% (85%–100%), region 70% (50%–90%)")
    assert "儿科患者（3 岁）" in to_markdown(child, "zh")
    adult = compose(mr_head_analysis(), ClinicalContext(age=40), resources=measured)
    assert not any("Paediatric" in line.en for line in _section(adult, "limitations").lines)
    stale = dataclasses.replace(res, paediatric=PaediatricMeasurement("other", MEASURED))
    old = compose(mr_head_analysis(), ClinicalContext(age=3), resources=stale)
    assert ("No measurement on paediatric validation images is available for this model."
            in [line.en for line in _section(old, "limitations").lines])


def test_a_guideline_whose_population_excludes_the_patient_says_the_age(res):
    child = compose(chest_radiograph_analysis(), ClinicalContext(age=3, history="cough"),
                    resources=res)
    reasons = {c.rule_id: c.reason for c in child.considered_rules}
    assert reasons["pneumonia_followup_cxr"].en == (
        "not applicable: patient is 3 years old (the guideline covers ages 18 and over)")
    assert reasons["pneumonia_followup_cxr"].zh == "不适用：患者 3 岁（该指南适用于 18 岁及以上）"
    assert not any(f.rule_id == "pneumonia_followup_cxr" for f in child.follow_up)
    adult = compose(chest_radiograph_analysis(), ClinicalContext(age=70), resources=res)
    assert any(f.rule_id == "pneumonia_followup_cxr" for f in adult.follow_up)


def test_adult_imaging_advice_is_not_given_for_a_child(res):
    history = "tearing chest pain"
    adult = compose(chest_radiograph_analysis(pneumonia=0.35),
                    ClinicalContext(age=60, sex="M", history=history), resources=res)
    assert any(f.diagnosis_id == "aortic_dissection" for f in adult.follow_up)
    child = compose(chest_radiograph_analysis(pneumonia=0.35),
                    ClinicalContext(age=3, sex="M", history=history), resources=res)
    assert not any(f.diagnosis_id == "aortic_dissection" for f in child.follow_up)
    # named in the history, it is still listed for the child, lower, and its adult imaging
    # is a visible "not applicable" with the age instead of advice
    line = next(c for c in child.considered_rules if c.diagnosis_id == "aortic_dissection")
    assert line.rule_id == "" and line.reason.en == (
        "Considered, not applicable — CT angiography of the aorta for Aortic dissection: "
        "patient is 3 years old, and its typical patients are 40–90 years old.")
    assert line.reason.en in to_markdown(child, "en")
    assert "患者 3 岁" in to_markdown(child, "zh")

    def score(note):
        return next(d.score for d in note.differential if d.diagnosis_id == "aortic_dissection")

    assert score(child) < score(adult) - 1.0


def test_the_life_stage_weights_are_the_fitted_table():
    table = load_table()
    assert table is not None, "imaging/knowledge/population.json is missing"
    assert table.weight(3, "adult") < 0 < table.weight(3, "child")
    assert table.weight(40, "child") < 0
    entries = [type("E", (), {"age_range": r})() for r in ((40, 90), (0, 5), (0, 90))]
    w = life_stage_weights(entries, 3)
    assert w[0] < w[2] < w[1]
    assert life_stage_weights(entries, None).tolist() == [0.0, 0.0, 0.0]
    fake = LifeStageTable({"child": {"adult": -5.0}})
    assert life_stage_weights(entries, 10, fake).tolist() == [-5.0, 0.0, 0.0]
    assert (entry_class((18, 90)), entry_class((0, 17)), entry_class((10, 30))) == (
        "adult", "child", "any")
    assert excluded((40, 90), 3) and excluded((0, 5), 40) and not excluded((0, 90), 3)
    assert not excluded((40, 90), None)
