"""Ranking against the shipped knowledge base: region, findings and context move it."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.ddx import rank as R
from imaging.ddx.knowledge_view import load_view, model_region
from imaging.types import ClinicalContext


@pytest.fixture(scope="module")
def view():
    v = load_view()
    if len(v.entries) < 50:
        pytest.skip("the shipped knowledge base is not there yet")
    return v


def top(view, region, modality, ctx, obs=None, k=5) -> list[str]:
    evidence = R.StudyEvidence(modality, {region: 0.9}, obs or {}, None)
    return [s.entry.id for s in R.rank(evidence, ctx, view)[:k]]


def test_model_region_codes_normalise():
    assert model_region("region:thorax") == "thorax"
    assert model_region("region:Spine and Muscles") == "spine_muscles"
    assert model_region("region:chest_radiograph") == "chest_radiograph"
    assert model_region("region:brain") == "head"
    assert model_region("region:unknown") is None


def test_classic_presentations_rank_their_diagnosis_high(view):
    pneumonia = top(view, "chest_radiograph", "XR",
                    ClinicalContext(age=45, history="fever, productive cough"),
                    {"finding:pneumonia": (0.8, "pneumonia")})
    assert any("pneumonia" in i for i in pneumonia[:3])
    stroke = top(view, "head", "MR", ClinicalContext(
        age=70, history="sudden onset left hemiparesis and aphasia"))
    assert any("stroke" in i or "infarct" in i for i in stroke[:3])
    appendix = top(view, "abdomen", "CT", ClinicalContext(
        age=19, history="right lower quadrant pain, fever, nausea"))
    assert "acute_appendicitis" in appendix


def test_history_and_age_change_the_order(view):
    plain = top(view, "chest_radiograph", "XR", ClinicalContext(), k=len(view.entries))
    fever = top(view, "chest_radiograph", "XR",
                ClinicalContext(history="fever and productive cough"), k=len(view.entries))
    pneumonias = [i for i in plain if "pneumonia" in i]
    assert min(fever.index(i) for i in pneumonias) < min(plain.index(i) for i in pneumonias)
    kids = [e.id for e in view.entries if e.age_range and e.age_range[1] <= 18
            and "neuro" in e.regions]
    if kids:
        young = top(view, "head", "MR", ClinicalContext(age=5), k=len(view.entries))
        old = top(view, "head", "MR", ClinicalContext(age=75), k=len(view.entries))
        assert np.mean([young.index(i) for i in kids]) < np.mean([old.index(i) for i in kids])


def test_sex_specific_entries_drop_for_the_other_sex(view):
    female_only = [e.id for e in view.entries if e.sex == "F" and "genitourinary" in e.regions]
    if not female_only:
        pytest.skip("no female-only genitourinary entry")
    male = top(view, "reproductive_urinary", "CT", ClinicalContext(sex="M"), k=len(view.entries))
    female = top(view, "reproductive_urinary", "CT", ClinicalContext(sex="F"),
                 k=len(view.entries))
    assert all(male.index(i) > female.index(i) for i in female_only)


def test_terms_are_returned_and_weights_apply(view):
    terms: dict = {}
    evidence = R.StudyEvidence("CT", {"abdomen": 1.0}, {}, None)
    ranked = R.rank(evidence, ClinicalContext(age=50, history="jaundice"), view,
                    terms_out=terms)
    assert set(terms) == {*R.TERMS, "population"}  # the life stage is not a tuned weight
    w = R.DEFAULT_WEIGHTS
    total = sum(getattr(w, name) * terms[name] for name in R.TERMS) + terms["population"]
    best = int(np.argmax(total))
    assert ranked[0].entry.id == view.entries[best].id


def test_history_abbreviations_are_expanded():
    from imaging.ddx.abbreviations import expand

    assert "right lower quadrant" in expand("18yo c/o RLQ pain")
    assert expand("PE: normal. MS: 5/5") == "PE: normal. MS: 5/5"  # ambiguous ones left alone
    assert expand("RLQ pain") == expand("RLQ pain")


def test_evidence_is_typed_and_carries_its_codes(view):
    from imaging.ddx.evidence import Evidence, EvidenceKind

    evidence = R.StudyEvidence("XR", {"chest_radiograph": 1.0},
                               {"finding:pneumonia": (0.9, "pneumonia")}, None)
    ranked = R.rank(evidence, ClinicalContext(age=70, sex="M", history="fever, cough"), view)
    items = [e for s in ranked[:10] for e in s.supporting + s.against]
    assert items and all(isinstance(e, Evidence) for e in items)
    kinds = {e.kind for e in items}
    assert {EvidenceKind.REGION, EvidenceKind.MODALITY} <= kinds
    for s in ranked[:10]:
        assert s.supporting_codes == tuple(dict.fromkeys(e.code for e in s.supporting if e.code))
    with pytest.raises(ValueError):
        Evidence("no_such_kind")
