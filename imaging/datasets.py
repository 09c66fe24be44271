"""Loaders for the three image datasets, laid out like `../shared/data/dev`.

Every image becomes one `ImageRecord` with the labels each head is trained on and the text
the contrastive head pairs it with. Splits come from the data (by case / patient) and are
never re-drawn, so no patient appears in two splits. Any split name works (`test` on the
sealed set).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MODALITIES = ("CT", "MR", "XR")
REGIONS = ("head", "spine_muscles", "thorax", "abdomen", "reproductive_urinary", "chest_radiograph")
PLANES = ("axial", "coronal", "sagittal")
# NIH labels with enough examples in the dev data to train a head (pneumonia first).
FINDINGS = ("pneumonia", "covid19", "infiltration", "atelectasis", "edema", "effusion")

REGION_OF_CATEGORY = {
    "Head": "head",
    "Spine and Muscles": "spine_muscles",
    "Thorax": "thorax",
    "Abdomen": "abdomen",
    "Reproductive and Urinary System": "reproductive_urinary",
}
PLANE_OF_LABEL = {
    "axial": "axial", "transverse": "axial", "coronal": "coronal", "sagittal": "sagittal",
}
NIH_FINDING = {
    "Pneumonia": "pneumonia",
    "Infiltration": "infiltration",
    "Atelectasis": "atelectasis",
    "Edema": "edema",
    "Effusion": "effusion",
}


def default_data_dir() -> Path:
    """`RADASSIST_DATA`, else `../shared/data/dev` beside the repository."""
    env = os.environ.get("RADASSIST_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dev"


@dataclass(frozen=True)
class ImageRecord:
    """One training / evaluation image and everything known about it.

    `findings` maps a finding name to 0/1 only where the source actually labels it (NIH
    labels all five NIH findings; the COVID set labels only `covid19`); missing means unknown.
    """

    id: str
    dataset: str  # "medpix" | "nih_cxr14" | "covid_cxr"
    path: Path
    split: str
    group: str  # case / patient id (for grouped bootstrap)
    modality: str  # CT | MR | XR
    region: str | None
    plane: str | None
    plane_raw: str = ""
    findings: dict[str, int] = field(default_factory=dict)
    view: str = ""
    no_finding: bool = False  # NIH "No Finding" / COVID set "No Finding"
    caption: str = ""
    texts: tuple[str, ...] = ()  # sentences paired with the image for contrastive training


def _clean(text: str | None) -> str:
    return " ".join(str(text or "").split())


def load_medpix(root: Path, splits: Iterable[str] | None = None) -> list[ImageRecord]:
    base = root / "medpix"
    if not (base / "images.csv").is_file():
        return []
    wanted = set(splits) if splits is not None else None
    descriptions = {d["image"]: d for d in json.loads((base / "descriptions.json").read_text())}
    cases = {c["U_id"]: c.get("Case") or {} for c in json.loads((base / "cases.json").read_text())}
    out: list[ImageRecord] = []
    with (base / "images.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if wanted is not None and row["split"] not in wanted:
                continue
            image_id = Path(row["image"]).stem
            desc = descriptions.get(image_id, {})
            d = desc.get("Description") or {}
            case = cases.get(row["U_id"], {})
            plane_raw = _clean(d.get("Plane"))
            caption = _clean(d.get("Caption"))
            title = _clean(case.get("Title"))
            diagnosis = _clean(case.get("Case Diagnosis"))
            modality_text = _clean(d.get("Modality"))
            texts = [t for t in (caption, f"{modality_text}, {plane_raw.lower()}: {title}",
                                 diagnosis, _clean(case.get("Findings"))[:300]) if t]
            out.append(
                ImageRecord(
                    id=f"medpix/{image_id}",
                    dataset="medpix",
                    path=base / row["image"],
                    split=row["split"],
                    group=row["U_id"],
                    modality=row["modality"],
                    region=REGION_OF_CATEGORY.get(desc.get("Location Category") or ""),
                    plane=PLANE_OF_LABEL.get(plane_raw.lower()),
                    plane_raw=plane_raw,
                    caption=caption,
                    texts=tuple(texts),
                )
            )
    return out


def load_nih(root: Path, splits: Iterable[str] | None = None) -> list[ImageRecord]:
    base = root / "nih_cxr14"
    if not (base / "labels.csv").is_file():
        return []
    wanted = set(splits) if splits is not None else None
    out: list[ImageRecord] = []
    with (base / "labels.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if wanted is not None and row["split"] not in wanted:
                continue
            labels = [s.strip() for s in row["finding_labels"].split("|") if s.strip()]
            findings = {name: int(nih in labels) for nih, name in NIH_FINDING.items()}
            readable = [s.replace("_", " ").lower() for s in labels]
            sentence = (
                "Chest radiograph with no acute finding."
                if labels == ["No Finding"]
                else "Chest radiograph showing " + ", ".join(readable) + "."
            )
            out.append(
                ImageRecord(
                    id=f"nih_cxr14/{Path(row['image']).stem}",
                    dataset="nih_cxr14",
                    path=base / row["image"],
                    split=row["split"],
                    group=f"nih:{row['patient_id']}",
                    modality="XR",
                    region="chest_radiograph",
                    plane=None,
                    findings=findings,
                    view=row.get("view", ""),
                    no_finding=labels == ["No Finding"],
                    caption=sentence,
                    texts=(sentence,),
                )
            )
    return out


def load_covid(root: Path, splits: Iterable[str] | None = None) -> list[ImageRecord]:
    base = root / "covid_cxr"
    if not (base / "metadata.csv").is_file():
        return []
    wanted = set(splits) if splits is not None else None
    out: list[ImageRecord] = []
    with (base / "metadata.csv").open(newline="", encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            if wanted is not None and row["split"] not in wanted:
                continue
            is_ct = row["modality"].strip().upper() == "CT"
            finding = _clean(row["finding"])
            view = _clean(row["view"])
            notes = _clean(row["clinical_notes"])
            kind = "CT" if is_ct else "Chest radiograph"
            sentence = f"{kind} with {finding.lower()} pattern." if finding else kind + "."
            texts = tuple(t for t in (sentence, notes[:300]) if t)
            out.append(
                ImageRecord(
                    id=f"covid_cxr/{Path(row['image']).stem}",
                    dataset="covid_cxr",
                    path=base / row["image"],
                    split=row["split"],
                    group=f"covid:{row['patientid']}",
                    modality="CT" if is_ct else "XR",
                    region="thorax" if is_ct else "chest_radiograph",
                    plane=PLANE_OF_LABEL.get(view.lower()) if is_ct else None,
                    plane_raw=view,
                    findings={} if is_ct else {"covid19": int("COVID-19" in finding)},
                    view=view,
                    no_finding=finding == "No Finding",
                    caption=sentence,
                    texts=texts,
                )
            )
    return out


def load_all(root: str | Path, splits: Iterable[str] | None = None) -> list[ImageRecord]:
    """Every image of the three datasets present under `root`, in a stable order."""
    root = Path(root)
    splits = list(splits) if splits is not None else None
    return load_medpix(root, splits) + load_nih(root, splits) + load_covid(root, splits)


def manifest_sha1(root: str | Path) -> str:
    """sha1 of the data manifest (or of the label files if there is none), for provenance."""
    root = Path(root)
    manifest = root / "MANIFEST.sha1.csv"
    files = [manifest] if manifest.is_file() else [
        p for p in (root / "medpix/images.csv", root / "nih_cxr14/labels.csv",
                    root / "covid_cxr/metadata.csv") if p.is_file()
    ]
    digest = hashlib.sha1()
    for p in files:
        digest.update(p.read_bytes())
    return digest.hexdigest()
