"""The note: sections, bilingual text, context-sensitive ranking, determinism, OOD."""

from __future__ import annotations

import json
import shutil
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imaging.ddx.knowledge_view import load_view
from imaging.notes import Resources, band, compose, to_json, to_markdown
from imaging.notes.saliency import saliency_zone
from imaging.notes.strings import STRINGS
from imaging.types import ClinicalContext

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_notes import (  # noqa: E402
    chest_radiograph_analysis,
    mr_head_analysis,
    pelvis_ct_analysis,
    write_knowledge,
)

AI_EN = "AI draft — not reviewed by a physician"
AI_ZH = "AI 草稿——未经医师审核"


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory) -> Path:
    return write_knowledge(tmp_path_factory.mktemp("kb"))


@pytest.fixture(scope="module")
def res(kb_dir) -> Resources:
    return Resources(view=load_view(kb_dir))


def ids(note) -> list[str]:
    return [d.diagnosis_id for d in note.differential]


def test_bands_use_documented_cutoffs():
    assert band(0.70) == "likely" and band(0.6999) == "possible"
    assert band(0.30) == "possible" and band(0.2999) == "indeterminate"


def test_note_has_six_sections_in_both_languages(res):
    note = compose(chest_radiograph_analysis(), ClinicalContext(age=60, history="cough"),
                   resources=res)
    assert [s.key for s in note.sections] == [
        "context", "analysed", "observations", "differential", "follow_up", "limitations"]
    assert len(note.differential) >= 3
    md_en, md_zh = to_markdown(note, "en"), to_markdown(note, "zh")
    assert AI_EN in md_en and AI_ZH in md_zh and AI_EN not in md_zh
    assert "likely" in md_en and "可能性大" in md_zh
    for section in note.sections:
        for line in section.lines:
            assert line.en and line.zh
    top = note.differential[0]
    assert top.diagnosis_id == "pneumonia"
    assert "finding:pneumonia" in top.supporting_codes
    assert top.saliency is not None and top.saliency.zone.en == "upper left zone"
    assert top.knowledge_entry_id == "pneumonia"
    # no calibration in these resources: no number is passed off as a probability
    assert all(d.likelihood is None and d.band == "uncalibrated" for d in note.differential)
    assert "not calibrated" in md_en and "relative likelihood" not in md_en


def test_follow_up_cites_guideline_and_lists_rules_that_did_not_apply(res):
    older = compose(chest_radiograph_analysis(), ClinicalContext(age=70), resources=res)
    younger = compose(chest_radiograph_analysis(), ClinicalContext(age=30, history="non-smoker"),
                      resources=res)
    cited = [f for f in older.follow_up if f.rule_id == "pneumonia_followup_cxr"]
    assert cited, "the executable follow-up rule did not run"  # never a silent fallback
    assert cited[0].citation and cited[0].urgency in ("routine", "soon")
    assert not any(f.rule_id == "pneumonia_followup_cxr" for f in younger.follow_up)
    reasons = [c for c in younger.considered_rules if c.rule_id == "pneumonia_followup_cxr"]
    assert reasons and "not applicable" in reasons[0].reason.en
    assert "不适用" in to_markdown(younger, "zh")


def test_history_raises_pneumonia(res):
    weak = chest_radiograph_analysis(pneumonia=0.35)
    plain = compose(weak, ClinicalContext(history="orthopnea, known heart failure"), resources=res)
    fever = compose(weak, ClinicalContext(history="fever, productive cough"), resources=res)
    assert ids(fever)[0] == "pneumonia"
    assert ids(plain)[0] != "pneumonia"
    assert ids(plain).index("pneumonia") > 0


NEUTRAL = "referred for imaging"  # a clinical question that names no diagnosis


def test_cross_sectional_without_question_offers_no_differential(res):
    for analysis in (mr_head_analysis(), pelvis_ct_analysis()):
        note = compose(analysis, ClinicalContext(age=70, sex="M"), resources=res)
        assert note.differential == () and note.follow_up == ()
        ddx = next(s for s in note.sections if s.key == "differential")
        assert "detects no abnormalities on CT or MR" in ddx.lines[0].en
        assert "--history" in ddx.lines[1].en and "临床问题" in ddx.lines[1].zh
        asked = compose(analysis, ClinicalContext(age=70, sex="M", history=NEUTRAL),
                        resources=res)
        assert len(asked.differential) >= 3


def test_radiograph_below_every_threshold_says_so_with_probabilities(res):
    note = compose(chest_radiograph_analysis(pneumonia=0.35), ClinicalContext(), resources=res)
    assert note.differential == ()
    line = next(s for s in note.sections if s.key == "differential").lines[0].en
    assert "no finding among those the model detects" in line and "0.35" in line
    assert compose(chest_radiograph_analysis(pneumonia=0.8), ClinicalContext(),
                   resources=res).differential


def test_age_outside_range_lowers(res):
    analysis = mr_head_analysis()  # a question is needed for any list on MR (see below)
    old = compose(analysis, ClinicalContext(age=70, history=NEUTRAL), resources=res)
    child = compose(analysis, ClinicalContext(age=8, history=NEUTRAL), resources=res)
    assert ids(child).index("glioblastoma") > ids(old).index("glioblastoma")
    stroke_child = next(d for d in child.differential if d.diagnosis_id == "acute_ischemic_stroke")
    assert any("outside typical range" in a.en for a in stroke_child.against)


def test_sex_excludes_sex_specific_diagnoses(res):
    analysis = pelvis_ct_analysis()
    male = compose(analysis, ClinicalContext(sex="M", history=NEUTRAL), resources=res)
    female = compose(analysis, ClinicalContext(sex="F", history=NEUTRAL), resources=res)
    assert set(ids(male)[:2]) == {"bph", "bladder_diverticulum"}
    assert set(ids(female)[:2]) == {"ovarian_cyst", "bladder_diverticulum"}
    cyst = next(d for d in male.differential if d.diagnosis_id == "ovarian_cyst")
    assert any("female patients only" in a.en for a in cyst.against)


def test_out_of_distribution_gives_no_differential(res):
    note = compose(chest_radiograph_analysis(ood=True), ClinicalContext(history="fever"),
                   resources=res)
    assert note.out_of_distribution and note.differential == () and note.follow_up == ()
    md = to_markdown(note, "en")
    assert "No differential is offered" in md and AI_EN in md
    assert "不提供鉴别诊断" in to_markdown(note, "zh")


def test_same_input_same_bytes_twice_and_across_processes(res, kb_dir):
    ctx = ClinicalContext(age=64, sex="F", history="fever and cough for 3 days")
    first = compose(chest_radiograph_analysis(), ctx, resources=res)
    second = compose(chest_radiograph_analysis(), ctx, resources=res)
    assert to_json(first) == to_json(second)
    assert to_markdown(first, "zh") == to_markdown(second, "zh")
    json.loads(to_json(first))  # valid JSON
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from fixtures_notes import chest_radiograph_analysis;"
        "from imaging.ddx.knowledge_view import load_view;"
        "from imaging.notes import Resources, compose, to_json, to_markdown;"
        "from imaging.types import ClinicalContext;"
        f"r = Resources(view=load_view({str(kb_dir)!r}));"
        f"n = compose(chest_radiograph_analysis(), ClinicalContext(age=64, sex='F', "
        f"history={ctx.history!r}), resources=r);"
        "sys.stdout.buffer.write((to_json(n) + to_markdown(n, 'en')).encode())"
    )
    repo = Path(__file__).resolve().parent.parent
    other = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                           check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert other == (to_json(first) + to_markdown(first, "en")).encode()


def test_every_catalogue_translates_every_string_with_the_same_fields():
    """Each language's catalogue holds every key, for the current English, same fields."""
    from common.catalog import catalogs

    formatter = string.Formatter()
    assert "zh" in catalogs()
    for lang, table in catalogs().items():
        for key, en in STRINGS.items():
            assert (key, en) in table, f"{lang}: {key} missing or for an older English text"
            translated = table[(key, en)]
            assert translated.strip() or not en.strip(), (lang, key)
            en_fields = sorted(f for _, f, _, _ in formatter.parse(en) if f)
            other = sorted(f for _, f, _, _ in formatter.parse(translated) if f)
            assert en_fields == other, (lang, key)


def test_a_third_language_is_a_catalogue(res, tmp_path, monkeypatch):
    """A new catalogue (here a made-up French one for three strings) is enough for notes
    in that language: no code names it; what it does not translate stays English."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    import common.catalog as catalog

    cat = Catalog(locale="fr", domain=catalog.DOMAIN)
    cat.add(STRINGS["title"], "Note d'imagerie (brouillon)", context="title")
    cat.add(STRINGS["sec.differential"], "Diagnostic différentiel", context="sec.differential")
    cat.add(STRINGS["disclaimer"], "Brouillon IA — non relu par un médecin",
            context="disclaimer")
    folder = tmp_path / "fr" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    shutil.copytree(catalog.LOCALE_DIR / "zh", tmp_path / "zh")
    with open(folder / f"{catalog.DOMAIN}.po", "wb") as fh:
        write_po(fh, cat)
    monkeypatch.setattr(catalog, "LOCALE_DIR", tmp_path)
    catalog.catalogs.cache_clear()
    try:
        assert catalog.languages() == ("en", "fr", "zh")
        note = compose(chest_radiograph_analysis(), ClinicalContext(history="fever"),
                       resources=res)
        md = to_markdown(note, "fr")
        assert md.startswith("# Note d'imagerie (brouillon)")
        assert "Brouillon IA — non relu par un médecin" in md and "Diagnostic différentiel" in md
        assert "## 3. Observations" in md  # untranslated: English
        assert to_markdown(note, "zh") == to_markdown(note, "zh")  # zh unchanged beside it
    finally:
        catalog.catalogs.cache_clear()


def test_saliency_zone_names_the_patient_side():
    a = np.zeros((90, 90), np.float32)
    a[60:85, 5:25] = 1.0  # lower part of the viewer's left = patient's right
    zone, (row, col) = saliency_zone(a)
    assert zone.en == "lower right zone" and row > 0.66 and col < 0.33
    assert saliency_zone(np.zeros((8, 8)))[0].en == "middle central zone"


def test_empty_knowledge_base_says_so(tmp_path):
    note = compose(chest_radiograph_analysis(), resources=Resources(view=load_view(tmp_path)))
    assert note.differential == ()
    assert "knowledge base is empty" in to_markdown(note, "en")


def test_atypical_image_is_diagnosed_with_a_caution_in_both_languages(res):
    from dataclasses import replace

    typical = compose(chest_radiograph_analysis(), ClinicalContext(history="fever"),
                      resources=res)
    analysis = chest_radiograph_analysis()
    atypical_series = replace(analysis.series[0], quality_score=0.05)
    atypical = compose(replace(analysis, series=(atypical_series,)),
                       ClinicalContext(history="fever"), resources=res)
    assert not atypical.out_of_distribution and atypical.differential
    md_en, md_zh = to_markdown(atypical, "en"), to_markdown(atypical, "zh")
    assert "less typical of the training images than 95% of validation images" in md_en
    assert "atypical of the training data" in md_en
    assert "95% 的验证图像" in md_zh and "差异较大" in md_zh
    typical_md = to_markdown(typical, "en")
    assert "less typical" not in typical_md and "atypical" not in typical_md


def _calibration():
    from imaging.ddx.calibration import Calibration, IsotonicMap, Rate

    return Calibration(
        maps={"history": IsotonicMap((-8.0, -2.0, 0.0), (0.01, 0.2, 0.8)),
              "no_history": IsotonicMap((-8.0, 0.0), (0.0, 0.25))},
        hit_at_5={"XR|history": Rate(0.61, 0.52, 0.7, 80),
                  "all|no_history": Rate(0.2, 0.1, 0.3, 67)},
        image_similarity_threshold=0.4)


def test_calibrated_items_carry_probabilities_and_the_measured_hit_rate(res):
    from dataclasses import replace

    from imaging.ddx.calibration import calibration_feature
    from imaging.ddx.rank import study_evidence
    from imaging.notes.differential import rank_for

    calibrated = replace(res, calibration=_calibration())
    ctx = ClinicalContext(age=60, history="fever, cough")
    note = compose(chest_radiograph_analysis(), ctx, resources=calibrated)
    p = [d.likelihood for d in note.differential]
    assert all(0.0 <= x <= 1.0 for x in p) and p == sorted(p, reverse=True)
    assert [d.band for d in note.differential] == [band(x) for x in p]
    # the number is the map applied to the item's log-softmax over every entry
    ranked = rank_for(study_evidence(chest_radiograph_analysis()), ctx, calibrated)
    expected = _calibration().probabilities(
        calibration_feature(np.array([s.score for s in ranked]))[:1], True)[0]
    assert p[0] == round(float(expected), 4)
    md = to_markdown(note, "en")
    assert "probability" in md and "among the top 5 in 61% of cases" in md
    assert "rests on the image findings" in md and "pneumonia pattern 0.80)" in md
    assert "前 5 项的比例为 61%" in to_markdown(note, "zh")


def test_calibration_file_round_trips_and_is_optional(tmp_path):
    from imaging.ddx.calibration import CALIBRATION_FILE, Calibration, load_calibration

    cal = _calibration()
    assert Calibration.from_json(json.loads(json.dumps(cal.to_json()))) == cal
    assert load_calibration(tmp_path) is None
    (tmp_path / CALIBRATION_FILE).parent.mkdir(parents=True)
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(cal.to_json()))
    assert load_calibration(tmp_path).hit_rate("MR", False).value == 0.2  # falls back to all
    with pytest.raises(ValueError):
        Calibration.from_json({"maps": {"history": {"x": [0], "y": [0]}}})


def _with_finding(analysis, probability: float, threshold: float = 0.6):
    from dataclasses import replace

    from imaging.types import Observation

    s = analysis.series[0]
    finding = Observation("finding:mass", "finding", "Mass", probability, (3, 4), threshold)
    return replace(analysis, series=(replace(s, observations=s.observations + (finding,)),))


def test_ct_mr_finding_heads_gate_the_differential_at_their_own_threshold(res):
    below = compose(_with_finding(mr_head_analysis(), 0.45), ClinicalContext(age=70),
                    resources=res)
    assert below.differential == ()
    line = next(s for s in below.sections if s.key == "differential").lines[0].en
    assert "detects only the findings listed" in line and "0.45 of 0.60" in line
    above = compose(_with_finding(mr_head_analysis(), 0.65), ClinicalContext(age=70),
                    resources=replace_calibration(res))
    assert above.differential  # image evidence at its validated threshold: a list
    assert all(d.band == "indeterminate" for d in above.differential)  # no history: <= 0.25
    assert "rests on the image findings at their thresholds (mass 0.65)" in to_markdown(
        above, "en")


def replace_calibration(res):
    from dataclasses import replace

    return replace(res, calibration=_calibration())


def test_a_rule_that_cannot_run_is_said_not_dropped(res, monkeypatch):
    from imaging.notes import follow_up as C
    monkeypatch.setattr(C, "_rules", lambda: {})  # e.g. a registry that lost a rule
    note = compose(chest_radiograph_analysis(), ClinicalContext(age=70), resources=res)
    assert not any(f.rule_id == "pneumonia_followup_cxr" for f in note.follow_up)
    lines = [c.reason.en for c in note.considered_rules if c.rule_id == "pneumonia_followup_cxr"]
    assert lines == ["could not be evaluated: no such rule is installed"]

    class Broken:
        def finding_type(self):
            return object()

        def evaluate(self, finding, patient):
            raise ValueError("table missing")

    monkeypatch.setattr(C, "_rules", lambda: {"pneumonia_followup_cxr": Broken()})
    monkeypatch.delenv("RADASSIST_STRICT_RULES", raising=False)
    note = compose(chest_radiograph_analysis(), ClinicalContext(age=70), resources=res)
    (line,) = [c.reason.en for c in note.considered_rules
               if c.rule_id == "pneumonia_followup_cxr"]
    assert "could not be evaluated: ValueError: table missing" in line
    monkeypatch.setenv("RADASSIST_STRICT_RULES", "1")
    with pytest.raises(ValueError, match="table missing"):
        compose(chest_radiograph_analysis(), ClinicalContext(age=70), resources=res)


def test_evidence_is_worded_only_by_the_notes():
    from imaging.ddx.evidence import Evidence, EvidenceKind
    from imaging.notes.evidence_text import evidence_text

    sex = evidence_text(Evidence.of(EvidenceKind.SEX_NO, sex="F"))
    assert (sex.en, sex.zh) == ("typically affects female patients only", "通常仅见于女性患者")
    words = evidence_text(Evidence.of(EvidenceKind.HISTORY, words=("a", "b", "c", "d", "e")))
    assert words.en == "history mentions a, b, c, d"
    finding = evidence_text(Evidence.of(EvidenceKind.FINDING_LOW, "finding:x", label="x",
                                        probability=0.1))
    assert finding.en == "x only 0.10"
    # every kind has its sentence in both languages
    for kind in EvidenceKind:
        assert f"ev.{kind.value}" in STRINGS


def test_instances_the_bridge_set_aside_are_named_in_both_languages(res):
    """A study-level warning (the bridge set aside a file that killed the decoder) reaches the
    'What was analysed' section: the reader knows the note does not cover every image."""
    import dataclasses

    analysis = dataclasses.replace(chest_radiograph_analysis(), warnings=(
        "instances_set_aside: 1 instance(s) set aside: decoding them killed the analysis "
        "process; not analysed",))
    note = compose(analysis, ClinicalContext(), resources=res)
    analysed = next(s for s in note.sections if s.key == "analysed")
    assert any("1 instance(s) set aside" in line.en for line in analysed.lines)
    assert any("搁置" in line.zh and "1" in line.zh for line in analysed.lines)
