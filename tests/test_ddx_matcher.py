"""The documented diagnosis matcher used by the ddx evaluation."""

from __future__ import annotations

import pytest

from imaging.ddx.matcher import matches, normalise, overlap, split_parts


@pytest.mark.parametrize(("case", "names"), [
    ("Posterior Cerebral Artery Infarction", ["Cerebral infarction"]),  # containment
    ("Pulmonary Embolus", ["Pulmonary embolism"]),  # stems
    ("Liver metastases, from bronchogenic carcinoma", ["liver metastasis"]),  # parts + plural
    ("Granuloma", ["Pulmonary granuloma"]),  # part inside name
    ("Bronchial carcinoid", ["carcinoid tumor"]),  # generic word ignored
    ("acute ischemic stroke", ["Acute ischaemic stroke"]),  # British spelling
    ("Angiomyolipoma (sporadic), Cholelithiasis", ["Gallstones", "cholelithiasis"]),  # synonym
    ("Glioblastoma multiforme", ["Hepatoma", "GBM", "glioblastoma"]),
    ("GBM", ["GBM"]),  # abbreviation, exactly
    ("1. Metastatic breast cancer to lungs\n2. Right vocal cord paralysis",
     ["vocal cord paralysis"]),
])
def test_matches(case, names):
    assert matches(case, names)


@pytest.mark.parametrize(("case", "names"), [
    ("acute infarct", ["acute pancreatitis"]),  # shared generic word only
    ("Mass", ["Pulmonary mass"]),  # generic only
    ("Pneumonia", ["pneumothorax"]),
    ("Pneumatosis intestinalis", ["GBM"]),  # abbreviation never matches inside words
    ("Meningioma", ["Medulloblastoma"]),
    ("Liver metastases", ["Lung cancer"]),
    ("Fibrous dysplasia", ["Cystic fibrosis"]),  # a shared stem is not containment
    ("Celiac Artery Aneurysm", ["Celiac disease"]),
    ("Angiomyolipomas in tuberous sclerosis", ["Multiple sclerosis"]),
    ("Breast implant, rupture, extracapsular silicone", ["ACL rupture"]),
    ("Non-small cell lung cancer (large-cell variant)", ["Diffuse large B-cell lymphoma"]),
])
def test_does_not_match(case, names):
    assert not matches(case, names)


def test_normalise_and_parts():
    assert normalise("Hæmorrhage, oesophageal TUMOUR!") == "hemorrhage esophageal tumor"
    assert split_parts("• Ischemia\n• Hyperemia with Migraine\n• Encephalitis (HSV or other)") == (
        "Ischemia", "Hyperemia with Migraine", "Encephalitis", "HSV or other")


def test_overlap_counts_human_items_we_also_list():
    human = "• Ischemia\n• Encephalitis\n• Meningitis\n• Hypertensive encephalopathy"
    ours = [["Cerebral ischemia"], ["Meningitis", "leptomeningitis"], ["Glioma"]]
    assert overlap(human, ours) == (2, 4)


def test_name_index_agrees_with_matches():
    from imaging.ddx.matcher import NameIndex

    items = [["Cerebral infarction", "stroke"], ["Pulmonary embolism", "PE"],
             ["liver metastasis", "hepatic metastases"], ["Pulmonary mass"], ["Meningioma"]]
    index = NameIndex(items)
    texts = ["Posterior Cerebral Artery Infarction", "PE", "Liver metastases, from lung cancer",
             "Mass", "Atypical meningiomas", "Pneumatosis intestinalis"]
    for text in texts:
        assert index.matching(text) == {i for i, names in enumerate(items)
                                        if matches(text, names)}, text
