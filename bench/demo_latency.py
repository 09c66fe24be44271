"""Viewer latency: time from an upload to the first picture and to the draft note.

    .venv/bin/python bench/demo_latency.py [--data DIR] [--rounds 5]

Runs the viewer's own callbacks (`demo.callbacks`: ingest → first rendered image →
`imaging.analyze` → `compose` → Markdown), the same code a browser request runs, after the
one-off start-up warm-up (model weights and note resources), which is timed separately.
Inputs side by side: a computed radiograph (DICOM, from the data folder), a chest radiograph
JPEG (NIH, validation split) and pydicom's CT_small. Medians over the rounds.
Target from the issue: a radiograph's first result (the note) within 3 s on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pydicom.data import get_testdata_file  # noqa: E402

from demo import callbacks as cb  # noqa: E402


def default_data() -> Path:
    env = os.environ.get("RADASSIST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "dev"


def inputs(data: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    cr = data / "dicom/conformance/fo-dicom/CR-MONO1-10-chest"
    if cr.is_file():
        out["CR chest (DICOM)"] = str(cr)
    labels = data / "nih_cxr14/labels.csv"
    if labels.is_file():
        with labels.open(newline="") as fh:
            row = next((r for r in csv.DictReader(fh) if r["split"] == "val"), None)
        if row:
            out["NIH chest (JPEG)"] = str(data / "nih_cxr14" / row["image"])
    out["CT_small (DICOM)"] = get_testdata_file("CT_small.dcm")
    return out


def one_request(path: str) -> dict[str, float]:
    t0 = time.perf_counter()
    state = cb.load_files([path])
    index = cb.first_image_index(state)
    cb.render_view(state, index)
    t_image = time.perf_counter()
    cb.analyse(state, cb.context_from_inputs(None, None, ""), index=index)
    t_analysis = time.perf_counter()
    note = cb.note_markdown(state, "en")
    t_note = time.perf_counter()
    if state.note is None:
        raise SystemExit(f"no note for {path}: {state.note_error}")
    assert cb.AI_DRAFT in note
    return {"first image": t_image - t0, "analyze + compose": t_analysis - t_image,
            "render note": t_note - t_analysis, "total (first result)": t_note - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cases = inputs(args.data)

    t0 = time.perf_counter()
    from demo.app import warm_up

    warm_up()
    startup = time.perf_counter() - t0

    results: dict[str, dict[str, list[float]]] = {name: {} for name in cases}
    for _ in range(args.rounds):
        for name, path in cases.items():
            for step, seconds in one_request(path).items():
                results[name].setdefault(step, []).append(seconds)

    steps = ["first image", "analyze + compose", "render note", "total (first result)"]
    names = list(cases)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"start-up warm-up (once per process): {startup:.2f} s; "
          f"load average {load} on {os.cpu_count()} cores")
    print(f"seconds per request, median over {args.rounds} rounds "
          f"(first request after warm-up in the last row), 2 torch threads")
    header = f"{'step':<24}" + "".join(f"{n:>20}" for n in names)
    print(header)
    print("-" * len(header))
    for step in steps:
        row = "".join(f"{statistics.median(results[n][step]):>20.3f}" for n in names)
        print(f"{step:<24}{row}")
    row = "".join(f"{results[n]['total (first result)'][0]:>20.3f}" for n in names)
    print(f"{'total, first request':<24}{row}")
    worst = max(max(statistics.median(results[n]["total (first result)"]),
                    results[n]["total (first result)"][0]) for n in names if "chest" in n)
    print(f"radiograph first result (worst of median and first request): {worst:.2f} s "
          f"(target 3 s) -> {'OK' if worst <= 3.0 else 'TOO SLOW'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
