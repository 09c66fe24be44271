"""Benchmark the note layer: compose, case search at 10,000 cases, and a cold `radassist
analyze` of a chest radiograph DICOM, printed as one table.

    .venv/bin/python bench/notes.py [--data ../shared/data/dev] [--runs 50]

Compose is timed on a real `Analysis` of the radiograph when the model weights exist
(otherwise on a hand-built one), with the shipped knowledge base and the default case
library; its time excludes the model's own analysis. Targets: compose p50 < 50 ms, case
search < 20 ms at 10,000 cases, cold analyze < 5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

RADIOGRAPH = "dicom/conformance/fo-dicom/CR-MONO1-10-chest"
QUERY = "65 year old man with fever, productive cough, chest pain and weight loss; smoker"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def time_calls(fn, runs: int) -> list[float]:
    fn()  # warm-up (caches, lazy imports)
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def real_analysis(dicom: Path):
    try:
        from imaging.analyze import analyze
        from pacs_bridge.ingest import ingest

        study = ingest([dicom]).studies[0]
        start = time.perf_counter()
        analysis = analyze(study, None)
        return analysis, (time.perf_counter() - start) * 1000, "real analysis of the radiograph"
    except Exception as exc:  # noqa: BLE001 - no weights yet
        from fixtures_notes import chest_radiograph_analysis

        return chest_radiograph_analysis(), None, f"hand-built analysis ({type(exc).__name__})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get(
        "RADASSIST_DATA", REPO.parent / "shared" / "data" / "dev")))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()

    from imaging.cases.library import CaseLibrary, CaseRecord, read_medpix
    from imaging.notes import compose, to_json, to_markdown
    from imaging.notes.compose import default_resources
    from imaging.types import ClinicalContext

    rows: list[tuple[str, str, str]] = []
    dicom = args.data / RADIOGRAPH
    analysis, analyze_ms, how = real_analysis(dicom)
    res = default_resources()
    ctx = ClinicalContext(age=67, sex="M", history="fever, productive cough, smoker")
    compose_ms = time_calls(lambda: compose(analysis, ctx, resources=res), args.runs)
    render_ms = time_calls(lambda: (to_json(compose(analysis, ctx, resources=res)),
                                    to_markdown(compose(analysis, ctx, resources=res), "zh")),
                           max(5, args.runs // 5))
    detail = (f"{how}; {len(res.view.entries)} knowledge entries; library "
              f"{len(res.library) if res.library is not None else 'none'}; text model "
              f"{'yes' if res.model is not None else 'no'}")
    rows.append(("compose p50 / p95", f"{pct(compose_ms, 50):.1f} / {pct(compose_ms, 95):.1f} ms",
                 detail))
    rows.append(("compose + JSON + Markdown p50", f"{pct(render_ms, 50):.1f} ms", "3 composes"))
    if res.model is not None:  # the history's text embedding is the model's own time
        encode_ms = time_calls(lambda: res.model.encode_text([ctx.history]), args.runs)
        rows.append(("  of which model encode_text(history) p50", f"{pct(encode_ms, 50):.1f} ms",
                     "MiniLM text tower, one sentence"))
        rows.append(("  compose beyond the model p50 (difference)",
                     f"{pct(compose_ms, 50) - pct(encode_ms, 50):.1f} ms", "target < 50 ms"))
    if analyze_ms is not None:
        rows.append(("model analyze (warm, for scale)", f"{analyze_ms:.0f} ms", "one call"))

    # case search at 10,000 cases: real histories repeated, random unit embeddings
    real = read_medpix(args.data, None) if (args.data / "medpix").is_dir() else []
    histories = [r.history for r in real] or ["fever and cough"]
    dim = 512
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(10_000, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cases = [CaseRecord(f"C{i:05d}", "train", "thorax", ("CT",), histories[i % len(histories)],
                        "", "dx", "", None, None) for i in range(10_000)]
    start = time.perf_counter()
    library = CaseLibrary(cases, emb)
    load_ms = (time.perf_counter() - start) * 1000
    q = emb[123]
    for label, fn in (
        ("case search by image", lambda: library.search(embedding=q, k=10)),
        ("case search by history", lambda: library.search(history=QUERY, k=10)),
        ("case search by both", lambda: library.search(embedding=q, history=QUERY, k=10)),
    ):
        ms = time_calls(fn, args.runs)
        rows.append((f"{label} p50 / p95", f"{pct(ms, 50):.2f} / {pct(ms, 95):.2f} ms",
                     f"10,000 cases, D={dim} (index build {load_ms:.0f} ms)"))

    # cold process: radassist analyze on the radiograph DICOM
    if dicom.is_file():
        cold = []
        for _ in range(args.cold_runs):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "radassist_cli.main", "analyze",
                                   str(dicom), "--age", "67", "--history", "cough"],
                                  cwd=REPO, capture_output=True, text=True)
            cold.append(time.perf_counter() - start)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: " + (
            proc.stderr.strip().splitlines() or ["?"])[-1][:80]
        rows.append((f"radassist analyze, cold process (median of {args.cold_runs})",
                     f"{statistics.median(cold):.2f} s", f"{dicom.name}; {status}"))
    else:
        rows.append(("radassist analyze, cold process", "skipped", f"{dicom} not found"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':>20}  detail")
    print("-" * (width + 60))
    for name, value, detail in rows:
        print(f"{name:<{width}}  {value:>20}  {detail}")
    print("targets: compose p50 < 50 ms; case search < 20 ms at 10,000 cases; cold analyze < 5 s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} during this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
