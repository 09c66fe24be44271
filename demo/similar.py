"""Evidence for one differential item, and similar teaching cases shown beside the study.

The note's differential items carry their own evidence and the ids of similar library
cases (`imaging.notes`); "Find similar cases" asks the case library directly with the
study's image embedding and the typed history. Images of a teaching case are read from
the data folder (`medpix/images`), which is already public and de-identified.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from common.catalog import languages
from demo.callbacks import ViewerState
from demo.render import gallery_files, picture_file
from demo.teaching import TeachingCase, load_library


def _lang(lang: str | None) -> str:
    return lang if lang in languages() else "en"


def _medpix_id(case_id: str) -> str:
    """Library ids may be "MPX1007" or "medpix/MPX1007_synpic46719"."""
    return case_id.split("/")[-1].split("_")[0]


def case_image(case: TeachingCase | None, size: int = 320) -> np.ndarray | None:
    if case is None or not case.images:
        return None
    try:
        with Image.open(case.images[0].path) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            return np.asarray(im)
    except OSError:
        return None


def _percent(probability: float | None) -> str:
    """A calibrated probability as a percentage; a bundle without calibration has none."""
    return "not calibrated" if probability is None else f"{probability:.0%}"


def differential_choices(state: ViewerState, lang: str = "en") -> list[tuple[str, str]]:
    note = state.note
    items = getattr(note, "differential", ()) or ()
    return [
        (f"{i + 1}. {item.names.get(_lang(lang))} ({_percent(item.likelihood)})",
         item.diagnosis_id)
        for i, item in enumerate(items)
    ]


def evidence_markdown(state: ViewerState, item_id: str | None, lang: str = "en") -> str:
    lang = _lang(lang)
    item = next((d for d in getattr(state.note, "differential", ()) or ()
                 if d.diagnosis_id == item_id), None)
    if item is None:
        return ""
    lines = [f"**{item.names.get(lang)}** — {item.band}, {_percent(item.likelihood)}"]
    if item.supporting:
        lines.append("Supporting: " + "; ".join(t.get(lang) for t in item.supporting))
    if item.against:
        lines.append("Against: " + "; ".join(t.get(lang) for t in item.against))
    if item.discriminators:
        lines.append("Discriminators: " + "; ".join(t.get(lang) for t in item.discriminators))
    if item.saliency is not None:
        lines.append(f"Where the model looked: {item.saliency.zone.get(lang)} "
                     f"(slice {item.saliency.slice_index + 1}, map "
                     f"`{item.saliency.finding_code}`)")
    if item.similar_cases:
        lines.append("Similar teaching cases: " + "; ".join(
            f"{c.case_id} ({c.diagnosis}, similarity {c.similarity:.2f})"
            for c in item.similar_cases[:3]))
    return "\n\n".join(lines)


def on_ddx_item(state: ViewerState, item_id: str | None, lang: str, library_dir: str):
    """Evidence text of the chosen item and the picture file of its most similar teaching case."""
    md = evidence_markdown(state, item_id, lang)
    item = next((d for d in getattr(state.note, "differential", ()) or ()
                 if d.diagnosis_id == item_id), None)
    image = None
    if item is not None and item.similar_cases and library_dir:
        library = load_library(library_dir)
        if library is not None:
            case = library.get(_medpix_id(item.similar_cases[0].case_id))
            image = case_image(case)
            if case is not None:
                md += f"\n\n**Beside the study — {case.case_id}:** {case.diagnosis}. " \
                      f"{case.findings[:400]}"
    return md, picture_file(image)


def _case_library():
    """The project's case library (`imaging.cases.store.default_library`), if built."""
    try:
        from imaging.cases.store import default_library

        return default_library()
    except Exception:
        return None


def find_similar(state: ViewerState, library_dir: str, k: int = 8) -> tuple[list, str]:
    """(gallery items, markdown) of library cases nearest the analysed study."""
    if state.study is None:
        return [], "Upload a study first."
    hits: list[tuple[str, str, float]] = []
    lib = _case_library()
    series = state.analysis.series if state.analysis is not None else ()
    emb = next((s.embedding for s in series if s.embedding is not None), None)
    history = state.context.history or None
    if lib is not None and (emb is not None or history):
        try:
            found = lib.search(embedding=emb, history=history, k=k)
            hits = [(h.case_id, h.diagnosis, h.similarity) for h in found]
        except Exception:
            hits = []
    if not hits and state.note is not None:
        seen: dict[str, tuple[str, str, float]] = {}
        for item in state.note.differential:
            for c in item.similar_cases:
                seen.setdefault(c.case_id, (c.case_id, c.diagnosis, c.similarity))
        hits = sorted(seen.values(), key=lambda h: -h[2])[:k]
    if not hits:
        if lib is None:
            why = "the case library is not built: run `radassist cases build --data DIR`"
        else:
            why = "analyse the study or type a clinical history first"
        return [], f"No similar cases ({why})."
    teaching = load_library(library_dir) if library_dir else None
    gallery, lines = [], []
    for case_id, diagnosis, sim in hits:
        case = teaching.get(_medpix_id(case_id)) if teaching else None
        img = case_image(case, 200)
        if img is not None:
            gallery.append((img, f"{diagnosis} ({sim:.2f})"))
        lines.append(f"- **{case_id}** {diagnosis} — similarity {sim:.2f}")
    return gallery, "\n".join(lines)


def on_find_similar(state: ViewerState, library_dir: str):
    """`find_similar` for a Gradio gallery: pictures as files (see `picture_file`)."""
    gallery, md = find_similar(state, library_dir)
    return gallery_files(gallery), md


def image_paths(case: TeachingCase | None) -> list[Path]:
    return [i.path for i in case.images] if case else []
