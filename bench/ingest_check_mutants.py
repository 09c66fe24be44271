"""Issue 17's measurement: 300 files mutated from 12 real ones, `radassist ingest-check` over
the folder as ONE process; count aborts, untyped errors and hangs.

    .venv/bin/python bench/ingest_check_mutants.py [--out /tmp/radassist-mutants] [--per-seed 25]

The folder is rebuilt deterministically (same bytes every run) from 12 real files of the
shared corpus (conformance JPEG-LS, JPEG 2000, JPEG lossless/lossy, RLE, native CT, and a
slice of two real studies), 25 mutations each: Rows (5 values), Columns (5),
PhotometricInterpretation (4), BitsAllocated (4), truncation (3), byte flips in the header
(2) and in the pixel data (2). The files go to --out, never into the repository.

Two measurements:

1. the CLI: `radassist ingest-check --json --details FOLDER`, one process for the folder,
   with a wall-clock limit (--cli-timeout): its exit status (a signal = an abort), its
   summary (decoded / rejected by reason / crashes = untyped errors), and its wall time;
2. decoder level: every file through the fuzz harness's `run_case` (read, de-identify,
   decode) in an isolated child, one file at a time, with a per-file timeout: which files
   would kill a process (these become decoder-level regression tests), hang, or raise an
   untyped error.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import fuzz_harness as fh  # noqa: E402

SEEDS = (
    "conformance/pydicom-data/JLSL_16_15_1_1F.dcm",  # JPEG-LS lossless, 16 bit
    "conformance/pydicom-data/JLSL_08_07_0_1F.dcm",  # JPEG-LS lossless, 8 bit
    "conformance/pydicom-data/emri_small_jpeg_ls_lossless.dcm",  # JPEG-LS, 10 frames MR
    "conformance/pydicom-data/MR2_J2KI.dcm",  # JPEG 2000 lossy
    "conformance/pydicom-data/US1_J2KR.dcm",  # JPEG 2000 lossless, colour
    "conformance/nema-wg04/J2KR/CT1_J2KR",  # JPEG 2000 lossless CT
    "conformance/pydicom-data/JPEG-LL.dcm",  # JPEG lossless
    "conformance/nema-wg04/JPLY/MR4_JPLY",  # JPEG extended (lossy, 12 bit)
    "conformance/pydicom-data/emri_small_RLE.dcm",  # RLE, 10 frames
    "conformance/fo-dicom/CT-MONO2-16-ankle",  # native CT
    "studies/philips_ct_phantom_tilted/S21610/S4010/I30",  # a real CT study's slice
    "studies/siemens_mr_brain_mprage_child/SAG-anon",  # a real MR study's first slice
)

ROWS, COLUMNS = (0x0028, 0x0010), (0x0028, 0x0011)
BITS_ALLOCATED, PHOTOMETRIC = (0x0028, 0x0100), (0x0028, 0x0004)
US_VALUES = (0, 1, 2, 3, 7, 64, 127, 129, 255, 256, 511, 1024, 4096, 0x7FFF, 0x8000, 0xFFFF)
BITS_VALUES = (0, 1, 7, 8, 12, 16, 24, 32, 64, 255)
PHOTOMETRIC_VALUES = (b"MONOCHROME1", b"MONOCHROME2", b"RGB", b"YBR_FULL", b"YBR_FULL_422",
                      b"PALETTE COLOR", b"YBR_ICT", b"YBR_RCT", b"YBR_PARTIAL_420", b"", b"XYZ")
PLAN = ("rows",) * 5 + ("columns",) * 5 + ("photometric",) * 4 + ("bits",) * 4 + \
       ("truncate",) * 3 + ("flip",) * 2 + ("pixelflip",) * 2


def seed_files(data: Path) -> list[Path]:
    out = []
    for rel in SEEDS:
        path = data / "dicom" / rel
        if path.is_dir():
            path = sorted(p for p in path.iterdir() if p.is_file())[0]
        out.append(path)
    return out


def _set_us(data: bytes, tag: tuple[int, int], value: int) -> bytes | None:
    found = fh._elements(data, *tag)
    if not found:
        return None
    out = data
    for el in found:  # every encoding of the tag (a file meta copy is rare, but harmless)
        if el.explicit and el.vr not in (b"US", b"SS"):
            continue
        raw = struct.pack(">H" if el.big else "<H", value)
        out = out[:el.value_at] + raw + out[el.value_at + 2:]
    return out


def mutate(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, str]:
    if kind in ("rows", "columns", "bits"):
        tag = {"rows": ROWS, "columns": COLUMNS, "bits": BITS_ALLOCATED}[kind]
        value = rng.choice(BITS_VALUES if kind == "bits" else US_VALUES)
        out = _set_us(data, tag, value)
        if out is not None:
            return out, f"{kind}={value}"
    if kind == "photometric":
        found = fh._elements(data, *PHOTOMETRIC)
        if found:
            value = rng.choice(PHOTOMETRIC_VALUES)
            return fh._set_value(data, found[0], value), f"photometric={value.decode()!r}"
    if kind == "truncate":
        return fh._mut_truncate(rng, data, [])
    if kind == "pixelflip":
        return fh._mut_pixels(rng, data, [])
    return fh._mut_flip(rng, data, [])


def build(folder: Path, data: Path, per_seed: int) -> list[tuple[Path, str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.dcm"):
        old.unlink()
    made = []
    for s, src in enumerate(seed_files(data)):
        raw = src.read_bytes()
        for k in range(per_seed):
            rng = random.Random(f"ingest-check-mutants:{src.name}:{k}")
            out, what = mutate(rng, raw, PLAN[k % len(PLAN)])
            path = folder / f"{s:02d}-{k:02d}-{src.stem[:24]}.dcm"
            path.write_bytes(out)
            made.append((path, src.name, what))
    return made


def run_cli(folder: Path, timeout: float) -> dict:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "radassist_cli.main", "ingest-check", "--json", "--details",
             str(folder)], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"exit": "timeout", "wall": time.perf_counter() - started, "summary": None,
                "stderr": ""}
    wall = time.perf_counter() - started
    try:
        summary = json.loads(done.stdout)
    except ValueError:
        summary = None
    return {"exit": done.returncode, "wall": wall, "summary": summary,
            "stderr": done.stderr}


def _quiet() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # GDCM / CharLS print to fd 2; the table says what happened
    import logging

    logging.disable(logging.CRITICAL)
    import imaging.pixels  # noqa: F401 - once per child
    import pacs_bridge.ingest  # noqa: F401


def _run_file(path: str) -> tuple[str, str, str, str]:
    out = fh.run_case(Path(path).read_bytes(), path)
    return out.status, out.stage, out.reason, out.message[:120]


def run_decoder_level(made, timeout: float) -> list[tuple[Path, str, str, str, str, str]]:
    from common.errors import WorkerCrashError
    from common.isolation import Isolated

    child = Isolated("decoder", initializer=_quiet, seconds=timeout)
    rows = []
    try:
        for path, seed, what in made:
            try:
                status, _stage, reason, message = child.call(_run_file, str(path))
            except WorkerCrashError as exc:
                status = "hang" if exc.reason == "time_budget" else "killed"
                reason, message = exc.reason, exc.message
            rows.append((path, seed, what, status, reason, message))
    finally:
        child.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/radassist-mutants"))
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("RADASSIST_DATA", fh.DEFAULT_DATA)))
    ap.add_argument("--per-seed", type=int, default=25)
    ap.add_argument("--cli-timeout", type=float, default=1800.0)
    ap.add_argument("--file-timeout", type=float, default=60.0)
    ap.add_argument("--skip-decoder-level", action="store_true")
    args = ap.parse_args(argv)
    made = build(args.out, args.data, args.per_seed)
    print(f"{len(made)} files from {len(SEEDS)} seeds in {args.out}", flush=True)

    cli = run_cli(args.out, args.cli_timeout)
    s = cli["summary"] or {}
    code = cli["exit"]
    aborted = isinstance(code, int) and code < 0
    reasons = s.get("rejected_by_reason", {})
    print("\n| `radassist ingest-check` over the folder, one process | count |")
    print("|---|---:|")
    print(f"| cases | {len(made)} |")
    print(f"| files the CLI reported | {s.get('files', 0)} |")
    print(f"| ok (decoded) | {s.get('decoded', 0)} |")
    print(f"| typed errors (rejected with a reason) | {s.get('rejected', 0)} |")
    print(f"| of which decoder_crashed (child died, file reported) | "
          f"{reasons.get('decoder_crashed', 0)} |")
    print(f"| of which time_budget | {reasons.get('time_budget', 0)} |")
    print(f"| aborts (the CLI process killed by a signal) | {1 if aborted else 0}"
          f"{f' (exit {code})' if aborted else ''} |")
    print(f"| untyped errors (crashes) | {s.get('crashes', 0)} |")
    print(f"| hangs (CLI over {args.cli_timeout:g} s) | {1 if code == 'timeout' else 0} |")
    print(f"| exit status | {code} |")
    print(f"| wall time | {cli['wall']:.1f} s |")
    if reasons:
        print("\n| rejected by reason | count |\n|---|---:|")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            print(f"| {reason} | {n} |")
    if s.get("crash_files"):
        print("\nuntyped errors:")
        for line in s["crash_files"]:
            print(f"  {line}")
    if args.skip_decoder_level:
        return 0 if not aborted and s.get("crashes", 1) == 0 and code != "timeout" else 1

    started = time.perf_counter()
    rows = run_decoder_level(made, args.file_timeout)
    counts = Counter(r[3] for r in rows)
    print(f"\n| decoder level (`run_case` per file in an isolated child, "
          f"{args.file_timeout:g} s each) | count |")
    print("|---|---:|")
    for status in ("ok", "typed", "untyped", "killed", "hang"):
        print(f"| {status} | {counts.get(status, 0)} |")
    print(f"| wall time | {time.perf_counter() - started:.1f} s |")
    bad = [r for r in rows if r[3] in ("untyped", "killed", "hang")]
    if bad:
        print("\n| file | seed, mutation | status | reason |\n|---|---|---|---|")
        for path, seed, what, status, reason, message in bad:
            print(f"| {path.name} | {seed}, {what} | {status} | {reason}: {message[:80]} |")
    return 0 if not bad and not aborted and s.get("crashes", 1) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
