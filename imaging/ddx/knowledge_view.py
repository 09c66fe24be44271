"""The knowledge base as the differential ranker sees it.

Reads the data files described in `imaging/knowledge/SCHEMA.md` directly (the schema is the
contract; the knowledge package validates it), so ranking depends only on the files and
not on the loader's Python API. `knowledge_hash` changes whenever any entry changes, which
keys the cached text embeddings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "diagnoses"

# Model region codes (MedPix location categories + chest radiograph) -> knowledge regions.
REGIONS_OF_MODEL_REGION = {
    "head": ("neuro", "head_neck"),
    "spine_muscles": ("spine", "musculoskeletal"),
    "thorax": ("chest", "cardiovascular"),
    "abdomen": ("abdomen",),
    "reproductive_urinary": ("genitourinary",),
    "chest_radiograph": ("chest", "cardiovascular"),
}
# MedPix `Location Category` -> model region code (same mapping as the training data).
MODEL_REGION_OF_CATEGORY = {
    "Head": "head",
    "Spine and Muscles": "spine_muscles",
    "Thorax": "thorax",
    "Abdomen": "abdomen",
    "Reproductive and Urinary System": "reproductive_urinary",
}


def model_region(code: str) -> str | None:
    """Normalise a region observation code ("region:thorax", "region:Spine and Muscles")."""
    raw = code.split(":", 1)[-1].strip()
    if raw in MODEL_REGION_OF_CATEGORY:
        return MODEL_REGION_OF_CATEGORY[raw]
    key = raw.lower().replace(" and ", "_").replace(" ", "_").replace("-", "_")
    if key in REGIONS_OF_MODEL_REGION:
        return key
    for name, regions in (
        ("chest_radiograph", None), ("thorax", None), ("chest", "thorax"), ("head", None),
        ("neuro", "head"), ("brain", "head"), ("spine", "spine_muscles"),
        ("muscul", "spine_muscles"), ("abdom", "abdomen"), ("urin", "reproductive_urinary"),
        ("reproductive", "reproductive_urinary"), ("genito", "reproductive_urinary"),
    ):
        if name in key:
            return regions or name
    return None


@dataclass(frozen=True)
class Entry:
    """One diagnosis of the knowledge base (see SCHEMA.md for each field's meaning)."""

    id: str
    name_en: str
    name_zh: str
    synonyms: tuple[str, ...]
    regions: tuple[str, ...]
    modalities: tuple[str, ...]
    category: str
    age_range: tuple[float, float] | None
    sex: str
    history_keywords: tuple[str, ...]
    features_en: tuple[str, ...]
    features_zh: tuple[str, ...]
    supported_by: tuple[str, ...]
    differentials: tuple[tuple[str, str, str], ...]  # (id, discriminator en, zh)
    next_imaging: tuple[dict, ...]
    urgency: str
    source_file: str

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name_en, *self.synonyms)


@dataclass(frozen=True, eq=False)
class KnowledgeView:
    """Entries sorted by id; equal (and hashed) by the hash of the files they came from."""

    entries: tuple[Entry, ...]
    knowledge_hash: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KnowledgeView) and other.knowledge_hash == self.knowledge_hash

    def __hash__(self) -> int:
        return hash(self.knowledge_hash)

    def get(self, entry_id: str) -> Entry | None:
        return _index(self).get(entry_id)


@lru_cache(maxsize=8)
def _index(view: KnowledgeView) -> dict[str, Entry]:
    return {e.id: e for e in view.entries}


def _text(value, lang: str) -> str:
    if isinstance(value, dict):
        return str(value.get(lang) or value.get("en") or "")
    return str(value or "")


def _entry(raw: dict, source: str) -> Entry:
    features = raw.get("features") or {}
    age = raw.get("age_range")
    return Entry(
        id=str(raw["id"]),
        name_en=_text(raw.get("names"), "en"),
        name_zh=_text(raw.get("names"), "zh"),
        synonyms=tuple(str(s) for s in raw.get("synonyms") or ()),
        regions=tuple(raw.get("regions") or ()),
        modalities=tuple(raw.get("modalities") or ()),
        category=str(raw.get("category") or "other"),
        age_range=(float(age[0]), float(age[1])) if age and len(age) == 2 else None,
        sex=str(raw.get("sex") or "any"),
        history_keywords=tuple(str(k) for k in raw.get("history_keywords") or ()),
        features_en=tuple(features.get("en") or ()) if isinstance(features, dict) else (),
        features_zh=tuple(features.get("zh") or ()) if isinstance(features, dict) else (),
        supported_by=tuple(raw.get("supported_by") or ()),
        differentials=tuple(
            (str(d.get("id")), _text(d.get("discriminator"), "en"),
             _text(d.get("discriminator"), "zh"))
            for d in raw.get("differentials") or () if isinstance(d, dict)
        ),
        next_imaging=tuple(n for n in raw.get("next_imaging") or () if isinstance(n, dict)),
        urgency=str(raw.get("urgency") or "none"),
        source_file=source,
    )


def knowledge_dir() -> Path:
    return Path(os.environ.get("RADASSIST_KNOWLEDGE", DEFAULT_DIR))


@lru_cache(maxsize=4)
def _load(directory: str) -> KnowledgeView:
    files = sorted(Path(directory).glob("*.json"))
    digest = hashlib.sha1()
    seen: dict[str, Entry] = {}
    for path in files:
        data = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + data)
        items = json.loads(data)
        for raw in items if isinstance(items, list) else ():
            if isinstance(raw, dict) and raw.get("id") and raw["id"] not in seen:
                seen[raw["id"]] = _entry(raw, path.name)
    entries = tuple(sorted(seen.values(), key=lambda e: e.id))
    return KnowledgeView(entries=entries, knowledge_hash=digest.hexdigest()[:16])


def load_view(directory: str | Path | None = None) -> KnowledgeView:
    """All entries, sorted by id (deterministic), with a hash of the files' bytes."""
    return _load(str(Path(directory) if directory else knowledge_dir()))
