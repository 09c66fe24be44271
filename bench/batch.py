"""`radassist batch` throughput with 1 and 2 Dask workers, in one run, and the cost per study.

The source is the shared data's 7 real DICOM studies plus the first `--images` MedPix JPEGs
(symlinked into one folder tree). Each worker count analyses the whole source into a fresh
output folder on a LocalCluster (one torch thread per worker). Studies/s counts from the
first submission to the last result: cluster start and the one-off model load per worker
(shown apart) are not part of the steady state a long archive run lives in. The cost per
study is worker-seconds per study (workers × wall / studies); the CPU seconds per study of
each kind (real study, MedPix image) come from the manifest rows, and the CPU share (CPU
seconds / worker-seconds) shows how much of a core each worker got: below 1, other
processes on the machine took the rest, and studies/s measures them too.

    .venv/bin/python bench/batch.py [--images 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from pacs_bridge.batch.engine import ClusterSpec, run_batch  # noqa: E402
from pacs_bridge.batch.sources import discover  # noqa: E402


def build_source(data: Path, images: int, folder: Path) -> None:
    """Symlinks to the real studies and the first `images` MedPix images."""
    studies = data / "dicom" / "studies"
    for d in sorted(p for p in studies.iterdir() if p.is_dir()):
        os.symlink(d, folder / d.name, target_is_directory=True)
    jpgs = sorted((data / "medpix" / "images").glob("*.jpg"))[:images]
    (folder / "medpix").mkdir()
    for j in jpgs:
        os.symlink(j, folder / "medpix" / j.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get(
        "RADASSIST_DATA", REPO.parent / "shared" / "data" / "dev")))
    ap.add_argument("--images", type=int, default=40, help="MedPix images besides the studies")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not (args.data / "dicom" / "studies").is_dir():
        print(f"shared data not found at {args.data}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="radassist-bench-batch-"))
    try:
        src = tmp / "src"
        src.mkdir()
        build_source(args.data, args.images, src)
        found = discover(str(src))
        kind = {t.study_uid: ("image" if t.files[0].endswith(".jpg") else "study")
                for t in found.tasks}
        results = []
        for n in (int(x) for x in args.workers.split(",")):
            s = run_batch(str(src), tmp / f"out{n}", discovery=found,
                          cluster=ClusterSpec(workers=n, threads_per_worker=1, dashboard=False))
            per_kind, cpu_kind = {}, {}
            for k in ("study", "image"):
                rows = [r for r in s.rows if kind.get(r.study_uid) == k]
                per_kind[k] = round(statistics.mean(r.seconds for r in rows), 3) if rows else None
                cpu_kind[k] = (round(statistics.mean(r.cpu_seconds for r in rows), 3)
                               if rows else None)
            results.append({
                "workers": n, "studies": s.done + s.failed, "failed": s.failed,
                "wall_s": s.wall_seconds, "setup_s": s.setup_seconds,
                "studies_per_s": round(s.studies_per_second, 3),
                "worker_s_per_study": round(n * s.wall_seconds / max(1, s.done + s.failed), 3),
                "mean_analysis_s": per_kind,
                "mean_cpu_s": cpu_kind,
                "cpu_share": round(sum(r.cpu_seconds for r in s.rows)
                                   / max(1e-9, n * s.wall_seconds), 3),
            })
            print(f"  {n} worker(s): {results[-1]}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = results[0]["studies_per_s"]
    n_studies = sum(1 for v in kind.values() if v == "study")
    print(f"\nsource: {n_studies} real DICOM studies + {len(kind) - n_studies} MedPix images "
          f"= {len(kind)} studies; load average before: {load_before:.1f}, after: "
          f"{os.getloadavg()[0]:.1f} (2 cores)")
    print(f"{'workers':>7} {'studies/s':>10} {'scaling':>8} {'wall s':>7} {'start-up s':>10} "
          f"{'worker-s/study':>14} {'CPU share':>9} {'CPU s (study)':>13} {'CPU s (image)':>13}")
    for r in results:
        print(f"{r['workers']:>7} {r['studies_per_s']:>10.3f} "
              f"{r['studies_per_s'] / base:>7.2f}× {r['wall_s']:>7.1f} {r['setup_s']:>10.1f} "
              f"{r['worker_s_per_study']:>14.3f} {r['cpu_share']:>9.2f} "
              f"{r['mean_cpu_s']['study']!s:>13} {r['mean_cpu_s']['image']!s:>13}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(r["failed"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
