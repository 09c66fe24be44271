"""The diagnosis knowledge base: typed, immutable entries and the lookups the note needs.

Loaded once per process (`load_knowledge` is cached) from `diagnoses/*.json`, validated by
`schema.validate_directory` so a broken file fails loudly at load, not halfway into a note.
`find` is the one place where free-text diagnosis names (MedPix case titles, differential
lists, user input) are mapped to entries, so its normalisation is deliberately forgiving
about spelling (British/American, plurals, punctuation) but exact about words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from common.text import Text as Bilingual
from imaging.knowledge.schema import REGIONS, validate_directory

DIAGNOSES_DIR = Path(__file__).resolve().parent / "diagnoses"


@dataclass(frozen=True)
class Differential:
    id: str
    discriminator: Bilingual


@dataclass(frozen=True)
class NextImaging:
    modality: str
    protocol: Bilingual
    timing: Bilingual
    urgency: str
    source: str
    rule: str | None = None


@dataclass(frozen=True)
class Diagnosis:
    id: str
    names: Bilingual
    synonyms: tuple[str, ...]
    regions: tuple[str, ...]
    modalities: tuple[str, ...]
    category: str
    age_range: tuple[int, int]
    sex: str
    history_keywords: tuple[str, ...]
    features: tuple[Bilingual, ...]
    supported_by: tuple[str, ...]
    differentials: tuple[Differential, ...]
    next_imaging: tuple[NextImaging, ...]
    urgency: str
    file_region: str  # the region file the entry lives in

    @property
    def name(self) -> str:
        return self.names.en


def _bi(d: dict) -> Bilingual:
    return Bilingual(en=d["en"], zh=d["zh"])


def _diagnosis(entry: dict, file_region: str) -> Diagnosis:
    feats = entry["features"]
    return Diagnosis(
        id=entry["id"],
        names=_bi(entry["names"]),
        synonyms=tuple(entry["synonyms"]),
        regions=tuple(entry["regions"]),
        modalities=tuple(entry["modalities"]),
        category=entry["category"],
        age_range=(int(entry["age_range"][0]), int(entry["age_range"][1])),
        sex=entry["sex"],
        history_keywords=tuple(entry["history_keywords"]),
        features=tuple(Bilingual(e, z) for e, z in zip(feats["en"], feats["zh"], strict=True)),
        supported_by=tuple(entry["supported_by"]),
        differentials=tuple(
            Differential(d["id"], _bi(d["discriminator"])) for d in entry["differentials"]
        ),
        next_imaging=tuple(
            NextImaging(
                modality=n["modality"],
                protocol=_bi(n["protocol"]),
                timing=_bi(n["timing"]),
                urgency=n["urgency"],
                source=n["source"],
                rule=n.get("rule"),
            )
            for n in entry["next_imaging"]
        ),
        urgency=entry["urgency"],
        file_region=file_region,
    )


# --- name normalisation -------------------------------------------------------------------

# Irregular plurals and Latin forms that the simple rules below would get wrong.
_IRREGULAR = {
    "metastases": "metastasis",
    "stenoses": "stenosis",
    "diagnoses": "diagnosis",
    "anastomoses": "anastomosis",
    "emboli": "embolus",
    "calculi": "calculus",
    "bronchi": "bronchus",
    "diverticula": "diverticulum",
    "varices": "varix",
    "thrombi": "thrombus",
    "fungi": "fungus",
    "bacilli": "bacillus",
    "adenomata": "adenoma",
    "carcinomata": "carcinoma",
    "lymphomata": "lymphoma",
    "neoplasia": "neoplasm",
    "testes": "testis",
    "ovaries": "ovary",
    "arteries": "artery",
    "bodies": "body",
    "cavities": "cavity",
    "anomalies": "anomaly",
    "abnormalities": "abnormality",
    "biliary": "biliary",
}
_STOPWORDS = frozenset({"a", "an", "the", "of", "with", "and", "in", "on", "to", "for", "or"})
_KEEP_S = ("ss", "us", "is", "ys", "os")  # abscess, embolus, stenosis, ...


def _americanise(token: str) -> str:
    """British to American spelling, applied to both sides of every comparison.

    Over-normalising is harmless because the same function maps the index and the query.
    """
    if token in _IRREGULAR:
        return _IRREGULAR[token]
    if len(token) > 3 and "ae" in token[1:]:
        token = token[0] + token[1:].replace("ae", "e")  # haemorrhage, ischaemic, caecum
    if token.startswith("oe") and len(token) > 4:
        token = "e" + token[2:]  # oedema, oesophagus
    if len(token) > 4 and "oe" in token[1:]:
        token = token[0] + token[1:].replace("oe", "e")  # diarrhoea, coeliac, amoebic
    if token.endswith("our") and len(token) > 4:
        token = token[:-3] + "or"  # tumour, colour
    if token.endswith("tre") and len(token) > 4:
        token = token[:-3] + "ter"  # centre
    if token.endswith(("isation", "ised")):
        token = token.replace("isation", "ization").replace("ised", "ized")  # organised
    return token


def _singular(token: str) -> str:
    if token in _IRREGULAR:
        return _IRREGULAR[token]
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith(_KEEP_S):
        return token[:-1]
    return token


def normalize_tokens(text: str) -> list[str]:
    """Lower-case word tokens, American spelling, singular; punctuation and accents dropped.

    "Crohn's disease" -> ["crohn", "disease"]; "Ischaemic strokes" -> ["ischemic", "stroke"].
    """
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = text.lower().replace("'s ", " ").replace("'", "").replace("\u2019", "")
    tokens = re.findall(r"[a-z0-9]+", text)
    return [_americanise(_singular(t)) for t in tokens]


def normalize_name(text: str) -> str:
    """The key `find` compares: normalised tokens joined by single spaces."""
    return " ".join(normalize_tokens(text))


def _bag_key(text: str) -> str:
    """Order-free key without stop words: "adenocarcinoma of the lung" == "lung adenocarcinoma"."""
    return " ".join(sorted(t for t in normalize_tokens(text) if t not in _STOPWORDS))


class KnowledgeBase:
    """All diagnoses, by id, with region and name lookups. Immutable after construction."""

    def __init__(self, diagnoses: list[Diagnosis]) -> None:
        self._by_id: dict[str, Diagnosis] = {d.id: d for d in diagnoses}
        self._order: tuple[str, ...] = tuple(d.id for d in diagnoses)
        self._exact: dict[str, str] = {}
        self._bag: dict[str, str] = {}
        # names win over synonyms when two entries share a string; then file order
        for pass_names in (True, False):
            for d in diagnoses:
                texts = [d.names.en] if pass_names else list(d.synonyms)
                for text in texts:
                    key = normalize_name(text)
                    if key:
                        self._exact.setdefault(key, d.id)
                    bag = _bag_key(text)
                    if bag:
                        self._bag.setdefault(bag, d.id)
        for d in diagnoses:
            self._exact.setdefault(normalize_name(d.id.replace("_", " ")), d.id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Diagnosis]:
        return (self._by_id[i] for i in self._order)

    def __contains__(self, diagnosis_id: object) -> bool:
        return diagnosis_id in self._by_id

    def __getitem__(self, diagnosis_id: str) -> Diagnosis:
        try:
            return self._by_id[diagnosis_id]
        except KeyError:
            raise KeyError(f"no diagnosis with id {diagnosis_id!r} in the knowledge base") from None

    def get(self, diagnosis_id: str) -> Diagnosis | None:
        """The entry with this id, or None (like dict.get); `kb[id]` raises instead."""
        return self._by_id.get(diagnosis_id)

    def ids(self) -> tuple[str, ...]:
        return self._order

    def by_region(self, region: str) -> tuple[Diagnosis, ...]:
        """Entries whose `regions` include `region` (a SCHEMA.md region code)."""
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; expected one of {list(REGIONS)}")
        return tuple(d for d in self if region in d.regions)

    def find(self, name: str) -> Diagnosis | None:
        """The entry whose name or synonym matches `name` after normalisation, else None.

        Exact normalised match first, then the same words in any order without stop words.
        No substring guessing here: containment matching belongs to the evaluation matcher.
        """
        key = normalize_name(name)
        if not key:
            return None
        hit = self._exact.get(key) or self._bag.get(_bag_key(name))
        return self._by_id[hit] if hit else None

    def names_and_synonyms(self, diagnosis_id: str) -> tuple[str, ...]:
        """English name, Chinese name and every synonym of one entry, in that order."""
        d = self[diagnosis_id]
        return (d.names.en, d.names.zh, *d.synonyms)


def build_knowledge(directory: Path) -> KnowledgeBase:
    """Validate and load every region file in `directory` (no caching; used by tests)."""
    by_region = validate_directory(directory)
    diagnoses = [
        _diagnosis(entry, region)
        for region in REGIONS
        for entry in by_region.get(region, [])
    ]
    return KnowledgeBase(diagnoses)


@lru_cache(maxsize=4)
def load_knowledge(directory: str | Path | None = None) -> KnowledgeBase:
    """The knowledge base shipped with the package (or in `directory`), loaded once."""
    return build_knowledge(Path(directory) if directory is not None else DIAGNOSES_DIR)
