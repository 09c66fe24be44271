"""The shipped knowledge base obeys SCHEMA.md, and the loader's lookups behave as documented.

Broken copies of the data (in tmp_path) check that every error names file, entry and field.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from imaging.knowledge import KnowledgeSchemaError, build_knowledge, load_knowledge
from imaging.knowledge.base import DIAGNOSES_DIR, normalize_name
from imaging.knowledge.guidelines import RULES
from imaging.knowledge.schema import REGIONS, has_cjk, validate_directory

MY_REGIONS = ("chest", "cardiovascular", "abdomen", "genitourinary")


@pytest.fixture(scope="module")
def kb():
    return build_knowledge(DIAGNOSES_DIR)


def test_shipped_files_validate_together():
    by_region = validate_directory(DIAGNOSES_DIR)
    assert set(by_region) == set(REGIONS), "every region has its file"


def test_size_targets(kb):
    assert len(kb) >= 300
    mine = {d.id for d in kb if d.file_region in MY_REGIONS}
    assert len(mine) >= 150


def test_every_bilingual_string_has_english_and_chinese(kb):
    count = 0
    for d in kb:
        texts = [d.names, *d.features]
        texts += [x.discriminator for x in d.differentials]
        texts += [t for n in d.next_imaging for t in (n.protocol, n.timing)]
        for text in texts:
            assert text.en.strip() and text.zh.strip(), (d.id, text)
            assert has_cjk(text.zh), (d.id, text.zh)
            count += 1
    assert count > 3000


def test_cross_references_resolve(kb):
    for d in kb:
        for diff in d.differentials:
            assert diff.id in kb and diff.id != d.id
        for n in d.next_imaging:
            assert n.rule is None or n.rule in RULES


def test_my_regions_have_differentials_and_sources(kb):
    for d in kb:
        if d.file_region not in MY_REGIONS:
            continue
        assert len(d.differentials) >= 2, d.id
        assert 2 <= len(d.features) <= 4, d.id
        assert all(n.source for n in d.next_imaging), d.id
        assert d.history_keywords and d.supported_by, d.id


def test_guideline_rules_are_linked_from_entries(kb):
    linked = {n.rule for d in kb for n in d.next_imaging if n.rule}
    for rule_id in ("fleischner_2017", "lung_rads_2022", "pneumonia_followup_cxr",
                    "bosniak_2019", "adrenal_incidentaloma_acr2017", "adnexal_simple_cyst_orads"):
        assert rule_id in linked, rule_id


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Crohn's disease", "crohn_disease"),
        ("Crohns Disease", "crohn_disease"),
        ("Ischaemic colitis", "ischemic_colitis"),
        ("ischemic colitis", "ischemic_colitis"),
        ("Pulmonary oedema", "pulmonary_edema"),
        ("Haemorrhagic ovarian cyst", "haemorrhagic_ovarian_cyst"),
        ("hemorrhagic ovarian cyst", "haemorrhagic_ovarian_cyst"),
        ("Wilms' Tumour", "wilms_tumor"),
        ("kidney stones", "ureterolithiasis"),
        ("Adenocarcinoma of the Lung", "lung_adenocarcinoma"),
        ("lung adenocarcinoma", "lung_adenocarcinoma"),
        ("Renal Cell Carcinoma.", "renal_cell_carcinoma"),
        ("PCP", "pneumocystis_pneumonia"),
        ("Takayasu's arteritis", "takayasu_arteritis"),
        ("oesophageal carcinoma", "esophageal_carcinoma"),
        ("Pulmonary metastases", "pulmonary_metastases"),
        ("COVID-19", "covid19_pneumonia"),
    ],
)
def test_find_normalises_spelling_case_punctuation_and_plurals(kb, query, expected):
    found = kb.find(query)
    assert found is not None and found.id == expected


def test_find_does_not_guess(kb):
    assert kb.find("") is None
    assert kb.find("completely unrelated words") is None
    assert kb.find("tumour") is None  # a bare word is not a diagnosis


def test_normalize_name():
    assert normalize_name("Ischaemic Strokes") == "ischemic stroke"
    assert normalize_name("Oedema, tumours & haemorrhage") == "edema tumor hemorrhage"
    assert normalize_name("Metastases") == "metastasis"
    assert normalize_name("abscess") == "abscess"


def test_lookups(kb):
    pe = kb.get("pulmonary_embolism")
    assert pe is not None and pe.names.zh == "肺栓塞"
    assert kb.get("no_such_id") is None
    with pytest.raises(KeyError):
        kb["no_such_id"]
    names = kb.names_and_synonyms("pulmonary_embolism")
    assert names[0] == "Pulmonary embolism" and names[1] == "肺栓塞" and "PE" in names
    chest = kb.by_region("chest")
    assert any(d.id == "pulmonary_embolism" for d in chest)  # cardiovascular entry, chest too
    assert all("chest" in d.regions for d in chest)
    with pytest.raises(ValueError):
        kb.by_region("thorax")


def test_load_knowledge_is_cached():
    assert load_knowledge() is load_knowledge()


# --- errors name the file, the entry and the field ----------------------------------------

def _copy_dir(tmp_path: Path) -> Path:
    out = tmp_path / "diagnoses"
    out.mkdir()
    for path in DIAGNOSES_DIR.glob("*.json"):
        (out / path.name).write_bytes(path.read_bytes())
    return out


def _edit(directory: Path, region: str, index: int, change) -> str:
    path = directory / f"{region}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    entry = copy.deepcopy(data[index])
    change(entry)
    data[index] = entry
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return entry["id"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda e: e.pop("features"), "features", "missing"),
        (lambda e: e["names"].update(zh="Pneumonia"), "names.zh", "no Chinese characters"),
        (lambda e: e["names"].update(en=""), "names.en", "missing or empty"),
        (lambda e: e.update(regions=["thorax"]), "regions[0]", "is not one of"),
        (lambda e: e.update(modalities=["CR"]), "modalities[0]", "is not one of"),
        (lambda e: e.update(urgency="asap"), "urgency", "is not one of"),
        (lambda e: e.update(age_range=[50, 20]), "age_range", "expected [low, high]"),
        (lambda e: e["differentials"][0].update(id="not_an_entry"), "differentials[0].id",
         "is not an entry id"),
        (lambda e: e["next_imaging"][0].update(rule="no_rule"), "next_imaging[0].rule",
         "is not a registered rule"),
        (lambda e: e["features"]["zh"].pop(), "features", "Chinese sentences"),
        (lambda e: e.update(supported_by=["pneumonia"]), "supported_by[0]",
         "is not an observation code"),
        (lambda e: e.update(colour="red"), "colour", "unknown field"),
    ],
)
def test_errors_name_file_entry_and_field(tmp_path, change, field, message):
    directory = _copy_dir(tmp_path)
    eid = _edit(directory, "chest", 0, change)
    with pytest.raises(KnowledgeSchemaError) as info:
        validate_directory(directory)
    problems = info.value.problems
    assert any(p.startswith(f"chest.json [{eid}] {field}") and message in p for p in problems), \
        problems


def test_duplicate_id_across_files_is_reported(tmp_path):
    directory = _copy_dir(tmp_path)
    first_chest = json.loads((directory / "chest.json").read_text(encoding="utf-8"))[0]["id"]
    _edit(directory, "abdomen", 0, lambda e: e.update(id=first_chest))
    with pytest.raises(KnowledgeSchemaError) as info:
        validate_directory(directory)
    assert any("duplicate (also in" in p for p in info.value.problems)


def test_invalid_json_names_line_and_column(tmp_path):
    directory = _copy_dir(tmp_path)
    (directory / "genitourinary.json").write_text('[{"id": "x",]', encoding="utf-8")
    with pytest.raises(KnowledgeSchemaError) as info:
        validate_directory(directory)
    assert any("genitourinary.json: invalid JSON at line 1" in p for p in info.value.problems)


def test_unknown_region_file_is_reported(tmp_path):
    directory = _copy_dir(tmp_path)
    (directory / "thorax.json").write_text("[]", encoding="utf-8")
    with pytest.raises(KnowledgeSchemaError) as info:
        validate_directory(directory)
    assert any(p.startswith("thorax.json: file name must be a region code")
               for p in info.value.problems)


# --- the knowledge covers what the data covers ----------------------------------------------

MODEL_FINDINGS = ("pneumonia", "covid19", "infiltration", "atelectasis", "edema", "effusion")
NIH_LABELS = ("consolidation", "pneumothorax", "cardiomegaly", "emphysema", "fibrosis", "mass",
              "nodule", "pleural_thickening", "hernia")


@pytest.mark.parametrize("finding", MODEL_FINDINGS + NIH_LABELS)
def test_every_chest_radiograph_label_supports_some_entry(kb, finding):
    supported = [d.id for d in kb if f"finding:{finding}" in d.supported_by]
    assert len(supported) >= 2, finding


@pytest.mark.parametrize("value", ["COVID-19", "SARS", "Streptococcus", "Pneumocystis",
                                   "Klebsiella", "Legionella", "Lipoid", "Varicella", "ARDS",
                                   "Mycoplasma", "Tuberculosis", "Chlamydophila", "MERS"])
def test_covid_cxr_findings_have_entries(kb, value):
    wanted = normalize_name(value)
    assert any(wanted in normalize_name(s) for d in kb for s in (d.names.en, *d.synonyms)), value


def test_medpix_train_diagnoses_of_my_regions_are_covered(kb, data_dir):
    """Entries were chosen from the train split; at least 85% of its Thorax, Abdomen and
    Reproductive/Urinary case diagnoses contain all words of some entry name or synonym."""
    import csv
    from collections import Counter, defaultdict

    from imaging.knowledge.base import _STOPWORDS, normalize_tokens

    medpix = data_dir / "medpix"
    split = {r["U_id"]: r["split"] for r in csv.DictReader(open(medpix / "images.csv"))}
    location: dict[str, Counter] = defaultdict(Counter)
    for image in json.loads((medpix / "descriptions.json").read_text()):
        location[image["U_id"]][image["Location Category"]] += 1
    regions = {"Thorax": {"chest", "cardiovascular"}, "Abdomen": {"abdomen"},
               "Reproductive and Urinary System": {"genitourinary"}}
    keys = [(set(d.regions), frozenset(normalize_tokens(s)) - _STOPWORDS)
            for d in kb for s in (d.names.en, *d.synonyms)]
    total = covered = 0
    for case in json.loads((medpix / "cases.json").read_text()):
        uid = case["U_id"]
        if split.get(uid) != "train" or not location[uid]:
            continue
        category = location[uid].most_common(1)[0][0]
        if category not in regions:
            continue
        words = set(normalize_tokens(case["Case"].get("Case Diagnosis") or ""))
        total += 1
        covered += any(r & regions[category] and k and k <= words for r, k in keys)
    assert total > 200
    assert covered / total >= 0.85, (covered, total)
