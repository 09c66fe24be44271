"""Fuzz ingest, de-identification and decoding with mutated real files; print the table.

    .venv/bin/python bench/fuzz.py --cases 20000 --seed 1 [--workers 2] [--timeout 10]
    .venv/bin/python bench/fuzz.py --repro 1:4711 [--out /tmp/case.dcm]

Seeds are pydicom's bundled test files and `DATA/dicom/conformance` (read in place). Each
case runs in a child process under an RLIMIT_AS cap (`--memory-gib`) with a per-case
wall-clock timeout, so hangs, aborts and blow-ups are counted, not fatal. The inputs of
untyped failures, hangs and kills go to `--crash-dir` (default /tmp/radassist-fuzz), never
into the repository. `--repro SEED:INDEX` rebuilds one case, writes it, and runs it in this
process with the full traceback. The harness itself is `tests/fuzz_harness.py`; a bounded
run of it is a test (`tests/test_fuzz_regressions.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import fuzz_harness as fh  # noqa: E402


def _repro(spec: str, data_root: Path, out: Path | None) -> int:
    run_seed, index = (int(v) for v in spec.split(":"))
    seeds = fh.load_seeds(data_root)
    name, data, what = fh.make_case(seeds, run_seed, index)
    print(f"case {run_seed}:{index}: seed file {name}, {what}, {len(data):,} bytes")
    if out is not None:
        out.write_bytes(data)
        print(f"written to {out}")
    start = time.perf_counter()
    outcome = fh.run_case(data, f"fuzz:{run_seed}:{index}")
    print(f"{outcome.status} at {outcome.stage}: {outcome.reason} {outcome.message} "
          f"{outcome.where} ({time.perf_counter() - start:.2f} s)")
    if outcome.status == "untyped":  # once more, letting the exception through
        from pacs_bridge.ingest import read_instance

        try:
            inst = read_instance("repro", data)
            from imaging.pixels import series_stacks
            from pacs_bridge.deid import Deidentifier

            Deidentifier(salt="fuzz").apply(inst.dataset, source="repro")
            series_stacks([inst])
        except Exception:  # noqa: BLE001
            traceback.print_exc()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="first case index (to split a run)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    ap.add_argument("--memory-gib", type=float, default=3.0, help="RLIMIT_AS per worker")
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("RADASSIST_DATA", fh.DEFAULT_DATA)))
    ap.add_argument("--crash-dir", type=Path, default=Path("/tmp/radassist-fuzz"))
    ap.add_argument("--json", type=Path, help="also write every non-ok result as JSON")
    ap.add_argument("--repro", metavar="SEED:INDEX")
    ap.add_argument("--out", type=Path, help="with --repro: write the case's bytes here")
    args = ap.parse_args(argv)
    if args.repro:
        return _repro(args.repro, args.data, args.out)
    args.crash_dir.mkdir(parents=True, exist_ok=True)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 30:
            last[0] = now
            print(f"  {done:,}/{total:,}", file=sys.stderr, flush=True)

    report = fh.run_fuzz(args.cases, args.seed, workers=args.workers, timeout=args.timeout,
                         memory_cap=int(args.memory_gib * (1 << 30)), data_root=args.data,
                         crash_dir=args.crash_dir, start=args.start, progress=progress)
    print(fh.table([report]))
    if args.json:
        rows = [vars(r) for r in report.results if r.status != "ok"]
        args.json.write_text(json.dumps({"seed": args.seed, "cases": report.cases,
                                         "peak_rss_kb": report.peak_rss_kb, "wall": report.wall,
                                         "results": rows}, indent=1))
    failed = report.failures()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
