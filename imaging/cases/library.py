"""The teaching-case library: MedPix-style cases in SQLite, searched by image and history.

Built once (`radassist cases build`) from a data folder's `train` split (or any split);
loaded into memory as one float32 matrix of case image embeddings plus a TF-IDF inverted
index of the histories, so a search is one matrix product and a few postings (well under
20 ms for 10,000 cases, see `bench/notes.py`). Text is de-identified (`deid.scrub`) before
it is stored.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ddx.knowledge_view import MODEL_REGION_OF_CATEGORY
from ..ddx.tfidf import TfidfIndex
from .deid import scrub

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
  case_id TEXT PRIMARY KEY,
  split TEXT NOT NULL,
  region TEXT,              -- model region code of the case's images (majority)
  modalities TEXT NOT NULL, -- JSON list
  history TEXT NOT NULL,
  findings TEXT NOT NULL,
  diagnosis TEXT NOT NULL,
  differential TEXT NOT NULL,
  age_decade INTEGER,       -- decade only (e.g. 70 for 73)
  sex TEXT,
  n_images INTEGER NOT NULL,
  embedding BLOB            -- float32, L2-normalised mean of the image embeddings
);
"""

EmbedFn = Callable[[list[Path]], np.ndarray]


@dataclass(frozen=True)
class CaseRecord:
    case_id: str
    split: str
    region: str | None
    modalities: tuple[str, ...]
    history: str
    findings: str
    diagnosis: str
    differential: str
    age_decade: int | None
    sex: str | None
    image_paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class CaseHit:
    case_id: str
    diagnosis: str
    similarity: float
    region: str | None


def _age_decade(raw) -> int | None:
    try:
        return int(float(str(raw).strip())) // 10 * 10
    except (TypeError, ValueError):
        return None


def read_medpix(data_dir: Path, splits: Iterable[str] | None = ("train",)) -> list[CaseRecord]:
    """The MedPix cases of the given splits (all splits when None), sorted by id."""
    base = Path(data_dir) / "medpix"
    wanted = set(splits) if splits is not None else None
    images: dict[str, list[tuple[str, str, str]]] = {}
    with open(base / "images.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if wanted is None or row["split"] in wanted:
                images.setdefault(row["U_id"], []).append(
                    (row["image"], row["split"], row["modality"]))
    descriptions = {d["image"]: d for d in json.loads((base / "descriptions.json").read_text())}
    records = []
    for case in json.loads((base / "cases.json").read_text()):
        uid = case["U_id"]
        if uid not in images:
            continue
        rows = sorted(images[uid])
        regions, ages, sexes = [], [], []
        for image, _, _ in rows:
            d = descriptions.get(Path(image).stem, {})
            if d.get("Location Category") in MODEL_REGION_OF_CATEGORY:
                regions.append(MODEL_REGION_OF_CATEGORY[d["Location Category"]])
            desc = d.get("Description") or {}
            ages.append(desc.get("Age"))
            sexes.append(str(desc.get("Sex") or "").lower())
        region = max(sorted(set(regions)), key=regions.count) if regions else None
        sex = "F" if "female" in sexes else "M" if "male" in sexes else None
        text = case.get("Case") or {}
        records.append(CaseRecord(
            case_id=uid, split=rows[0][1], region=region,
            modalities=tuple(sorted({m for _, _, m in rows})),
            history=scrub(text.get("History")), findings=scrub(text.get("Findings")),
            diagnosis=scrub(text.get("Case Diagnosis")),
            differential=scrub(text.get("Differential Diagnosis")),
            age_decade=next((a for a in map(_age_decade, ages) if a is not None), None),
            sex=sex, image_paths=tuple(base / image for image, _, _ in rows),
        ))
    return sorted(records, key=lambda r: r.case_id)


def build(
    data_dir: Path, db_path: Path, *, splits: Iterable[str] | None = ("train",),
    embed: EmbedFn | None = None, model_version: str = "none", progress: bool = False,
) -> int:
    """Index the cases into a fresh SQLite file; returns the number of cases."""
    records = read_medpix(data_dir, splits)
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_suffix(db_path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    con.executescript(SCHEMA)
    iterator: Iterable[CaseRecord] = records
    if progress:
        from tqdm import tqdm
        iterator = tqdm(records, desc="cases", unit="case")
    for r in iterator:
        blob = None
        if embed is not None and r.image_paths:
            vectors = np.asarray(embed(list(r.image_paths)), dtype=np.float32)
            mean = vectors.mean(axis=0)
            blob = (mean / max(float(np.linalg.norm(mean)), 1e-8)).astype(np.float32).tobytes()
        con.execute(
            "INSERT INTO cases VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (r.case_id, r.split, r.region, json.dumps(list(r.modalities)), r.history, r.findings,
             r.diagnosis, r.differential, r.age_decade, r.sex, len(r.image_paths), blob),
        )
    con.executemany("INSERT INTO meta VALUES (?,?)", [
        ("model_version", model_version if embed is not None else "none"),
        ("splits", json.dumps(sorted(splits) if splits is not None else "all")),
        ("source", Path(data_dir).name),
    ])
    con.commit()
    con.close()
    tmp.replace(db_path)
    return len(records)


class CaseLibrary:
    """All cases in memory; `search` by image embedding, history text, or both."""

    def __init__(self, rows: list[CaseRecord], embeddings: np.ndarray | None,
                 model_version: str = "none", source_key: str | None = None) -> None:
        self.rows = rows
        self.ids = [r.case_id for r in rows]
        self.embeddings = embeddings  # (N, D) float32 or None
        self.model_version = model_version
        self.history_index = TfidfIndex([r.history for r in rows], bigrams=False)
        self._position = {cid: i for i, cid in enumerate(self.ids)}
        self._priors: dict[str, dict[str, float]] = {}
        self.source_key = source_key  # identifies the file's content, for on-disk caches

    @classmethod
    def load(cls, db_path: Path) -> CaseLibrary:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            cur = con.execute(
                "SELECT case_id, split, region, modalities, history, findings, diagnosis, "
                "differential, age_decade, sex, embedding FROM cases ORDER BY case_id")
            rows, vectors = [], []
            for row in cur:
                rows.append(CaseRecord(row[0], row[1], row[2], tuple(json.loads(row[3])),
                                       row[4], row[5], row[6], row[7], row[8], row[9]))
                vectors.append(None if row[10] is None else np.frombuffer(row[10], np.float32))
        finally:
            con.close()
        embeddings = None
        if vectors and all(v is not None for v in vectors):
            embeddings = np.stack(vectors).astype(np.float32)
        stat = Path(db_path).stat()
        source_key = hashlib.sha1(
            f"{Path(db_path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        return cls(rows, embeddings, meta.get("model_version", "none"), source_key[:16])

    def entry_prior(self, view) -> dict[str, float]:
        """How many library cases each knowledge entry matches (diagnosis via `matcher`)."""
        key = view.knowledge_hash
        cached = self._priors.get(key)
        disk = None
        if cached is None and self.source_key:
            from ..ddx.text_space import cache_dir

            disk = cache_dir() / f"library_prior_{self.source_key}_{key}.json"
            if disk.is_file():
                try:
                    cached = json.loads(disk.read_text())
                except (OSError, ValueError):
                    cached = None
        if cached is None:
            from ..ddx.rank import name_index

            index = name_index(view)
            counts: dict[str, float] = {}
            for r in self.rows:
                for i in index.matching(r.diagnosis):
                    entry_id = view.entries[i].id
                    counts[entry_id] = counts.get(entry_id, 0.0) + 1.0
            cached = dict(sorted(counts.items()))
            if disk is not None:
                try:
                    disk.parent.mkdir(parents=True, exist_ok=True)
                    disk.write_text(json.dumps(cached))
                except OSError:
                    pass  # read-only cache: recomputed next time
        self._priors[key] = cached
        return cached

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, case_id: str) -> CaseRecord | None:
        i = self._position.get(case_id)
        return None if i is None else self.rows[i]

    def search(
        self, embedding: np.ndarray | None = None, history: str | None = None, k: int = 10,
        exclude: Iterable[str] = (),
    ) -> list[CaseHit]:
        """Nearest cases; with both queries the similarity is the mean of the two cosines."""
        if not self.rows:
            return []
        parts = []
        if embedding is not None and self.embeddings is not None:
            q = np.asarray(embedding, dtype=np.float32).ravel()
            if q.shape[0] == self.embeddings.shape[1]:
                parts.append(self.embeddings @ q)
        if history and history.strip():
            parts.append(self.history_index.similarity(history))
        if not parts:
            return []
        sim = np.mean(np.stack(parts), axis=0)
        for cid in exclude:
            i = self._position.get(cid)
            if i is not None:
                sim[i] = -np.inf
        k = min(k, len(self.rows))
        top = np.argpartition(-sim, k - 1)[:k]
        top = sorted(top, key=lambda i: (-float(sim[i]), self.ids[i]))
        return [CaseHit(self.ids[i], self.rows[i].diagnosis, round(float(sim[i]), 6),
                        self.rows[i].region) for i in top if np.isfinite(sim[i])]
