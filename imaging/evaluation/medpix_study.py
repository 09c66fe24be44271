"""A MedPix teaching case as `analyze` sees a study: each image one single-slice stack.

The differential evaluation must measure what the note is built from, not a copy of it.
So each JPEG becomes the `ImageStack` a DICOM series of that image would give (header
modality CT/MR as MedPix labels it, a header window mapping 0-255 to the image's own grey
levels), goes through `imaging.analyze.analyze_stack` (the same windowing, quality / OOD /
phantom checks, header priors, pooling and CT/MR finding heads as a real study), and the case
becomes an `Analysis` of those series, which `ddx.rank.study_evidence` pools exactly as the
note does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..cases.library import CaseRecord
from ..types import Analysis, ImageStack, Window

# 8-bit teaching JPEGs: the header window that shows them as they were saved
JPEG_WINDOW = Window("header", 127.5, 255.0)
BATCH = 32


@lru_cache(maxsize=8)
def image_modalities(data_dir: Path) -> dict[str, str]:
    """Image file stem -> the header modality MedPix gives it (CT / MR)."""
    import csv

    with open(Path(data_dir) / "medpix" / "images.csv", newline="") as fh:
        return {Path(r["image"]).stem: r["modality"] for r in csv.DictReader(fh)}


def image_stack(path: Path, modality: str) -> ImageStack:
    """One teaching image as the one-slice stack a DICOM series of it would give."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L"), dtype=np.float32)
    return ImageStack(series_instance_uid=Path(path).stem, modality=modality,
                      photometric="MONOCHROME2", array=arr[None], windows=(JPEG_WINDOW,),
                      sop_instance_uids=(Path(path).stem,), frame_numbers=(1,))


def _outputs(model, paths: list[Path], modalities: dict[str, str], progress: bool):
    """Per-slice network outputs of every image (one slice each), batched and cached on disk
    by model and image list: the network is the slow part, `interpret` is not."""
    from ..analyze import prepare_stack
    from ..ddx.text_space import cache_dir, model_key
    from ..model.loaded import Prediction

    key = hashlib.sha1("|".join(p.stem for p in paths).encode()).hexdigest()[:16]
    path = cache_dir() / "evaluation" / f"medpix_outputs_{model_key(model)}_{key}.npz"
    fields = [f.name for f in dataclasses.fields(Prediction)]
    if path.is_file():
        with np.load(path) as z:
            return Prediction(**{f: z[f] for f in fields})
    parts = []
    starts = range(0, len(paths), BATCH)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="medpix images", unit="batch")
    for start in starts:
        chunk = paths[start:start + BATCH]
        batch = torch.cat([prepare_stack(image_stack(p, modalities.get(p.stem, "OT"))).batch()
                           for p in chunk])
        parts.append(model.predict(batch))
    out = Prediction(**{f: np.concatenate([getattr(q, f) for q in parts]) for f in fields})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{f: getattr(out, f) for f in fields})
    tmp.replace(path)
    return out


def image_outputs(model, cases: list[CaseRecord], data_dir: Path, progress: bool = False):
    """(image file stems, their cached per-image network outputs as one `Prediction`)."""
    paths = [Path(p) for c in cases for p in c.image_paths]
    return [p.stem for p in paths], _outputs(model, paths, image_modalities(Path(data_dir)),
                                             progress)


def image_embeddings(model, cases: list[CaseRecord], data_dir: Path,
                     progress: bool = False) -> dict[str, np.ndarray]:
    """Image file stem -> joint-space embedding, from the same cached network outputs."""
    paths = [Path(p) for c in cases for p in c.image_paths]
    outputs = _outputs(model, paths, image_modalities(Path(data_dir)), progress)
    return {p.stem: outputs.embedding[i] for i, p in enumerate(paths)}


def case_analyses(model, cases: list[CaseRecord], data_dir: Path,
                  progress: bool = False) -> dict[str, Analysis]:
    """Every case's `Analysis`: `analyze.interpret` on each image's own network output,
    exactly as `analyze_stack` reads a one-slice stack (key images dropped)."""
    from ..analyze import interpret, prepare_stack
    from ..model.loaded import Prediction

    modalities = image_modalities(Path(data_dir))
    paths = [Path(p) for c in cases for p in c.image_paths]
    outputs = _outputs(model, paths, modalities, progress)
    fields = [f.name for f in dataclasses.fields(Prediction)]
    analyses: dict[str, Analysis] = {}
    row = 0
    for case in cases:
        series = []
        for path in case.image_paths:
            prepared = prepare_stack(image_stack(Path(path), modalities.get(Path(path).stem,
                                                                            "OT")))
            pred = Prediction(**{f: getattr(outputs, f)[row:row + 1] for f in fields})
            row += 1
            result = interpret(model, prepared, pred)
            series.append(dataclasses.replace(result, key_image=None, saliency=()))
        analyses[case.case_id] = Analysis(study_instance_uid=case.case_id, series=tuple(series),
                                          model_version=str(model.version))
    return analyses


def case_contexts(data_dir: Path, split: str) -> dict[str, tuple[int | None, str | None]]:
    """Age and sex per case from the image descriptions (what a DICOM header would carry)."""
    out: dict[str, tuple[int | None, str | None]] = {}
    for d in json.loads((Path(data_dir) / "medpix" / "descriptions.json").read_text()):
        desc = d.get("Description") or {}
        age = None
        try:
            age = int(float(str(desc.get("Age")).strip()))
        except (TypeError, ValueError):
            pass
        sex = {"male": "M", "female": "F"}.get(str(desc.get("Sex") or "").strip().lower())
        prev = out.get(d["U_id"], (None, None))
        out[d["U_id"]] = (prev[0] if prev[0] is not None else age, prev[1] or sex)
    return out
