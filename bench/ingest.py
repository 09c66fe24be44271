"""Ingest + pixel decoding throughput, side by side with a bare pydicom loop, in one run.

    .venv/bin/python bench/ingest.py [--data DIR] [--rounds 5]

The corpus is every file of `DIR/dicom/conformance`, `DIR/dicom/volumes` and pydicom's
bundled test files for which a bare `pydicom.dcmread(f).pixel_array` works (so both sides
decode exactly the same files). Per round, chunk by chunk (rotating the order), it times

    ours: `pacs_bridge.ingest.ingest(files)` then `imaging.pixels.instance_frames` for every
          instance (float32, physical units: Modality LUT, MONOCHROME1, colour);
    ours with pydicom's default plugin order (to show what the plugin choice contributes);
    bare: `pydicom.dcmread(f).pixel_array` for every file;

alternating which goes first, and reports medians over the rounds. Target: ours/bare >= 0.8.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pydicom  # noqa: E402
import pydicom.data  # noqa: E402

from imaging.pixels import decode as pixel_decode  # noqa: E402
from imaging.pixels import instance_frames  # noqa: E402
from pacs_bridge.ingest import ingest  # noqa: E402


def default_data() -> Path:
    return Path(os.environ.get("RADASSIST_DATA", REPO.parent / "shared" / "data" / "dev"))


def corpus(data: Path) -> list[Path]:
    roots = [data / "dicom" / "conformance", data / "dicom" / "volumes"]
    roots.append(Path(pydicom.data.__file__).parent / "test_files")
    files = []
    for root in roots:
        if not root.is_dir():
            print(f"note: {root} not found, skipped", file=sys.stderr)
            continue
        for dirpath, dirs, names in os.walk(root):
            dirs.sort()
            files.extend(Path(dirpath) / n for n in sorted(names) if not n.startswith("."))
    return [f for f in files if _bare_decodes(f)]


def _bare_decodes(path: Path) -> bool:
    try:
        pydicom.dcmread(path).pixel_array  # noqa: B018
    except Exception:
        return False
    return True


def run_ours(files: list[Path]) -> tuple[float, int]:
    start = time.perf_counter()
    result = ingest(files, keep_duplicates=True)  # every file, like the bare loop
    frames = 0
    for study in result.studies:
        for series in study.series:
            for inst in series.instances:
                frames += instance_frames(inst).shape[0]
    return time.perf_counter() - start, frames


def run_ours_default_plugins(files: list[Path]) -> tuple[float, int]:
    """Ours with pydicom's default plugin order: how much the plugin choice contributes."""
    preferred = dict(pixel_decode.PREFERRED_PLUGIN)
    pixel_decode.PREFERRED_PLUGIN.clear()
    try:
        return run_ours(files)
    finally:
        pixel_decode.PREFERRED_PLUGIN.update(preferred)


def run_bare(files: list[Path]) -> tuple[float, int]:
    start = time.perf_counter()
    frames = 0
    for f in files:
        ds = pydicom.dcmread(f)
        ds.pixel_array  # noqa: B018
        frames += int(ds.get("NumberOfFrames") or 1)
    return time.perf_counter() - start, frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="the dev data folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=40, help="files per interleaved chunk")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)

    files = corpus(args.data)
    if not files:
        print("no decodable files found", file=sys.stderr)
        return 1
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    runners = {"ours": run_ours, "ours_default": run_ours_default_plugins, "bare": run_bare}
    times: dict[str, list[float]] = {k: [] for k in runners}
    frames: dict[str, int] = {}
    run_ours(files[:20])  # warm imports and plugin discovery on both sides
    run_bare(files[:20])
    cpu: dict[str, list[float]] = {k: [] for k in runners}
    # Interleave in chunks, rotating the order, so that every pipeline sees the same load
    # (this machine is shared; whole-corpus runs seconds apart saw load swings of 2x).
    chunks = [files[i : i + args.chunk] for i in range(0, len(files), args.chunk)]
    names = list(runners)
    for _ in range(args.rounds):
        wall = dict.fromkeys(runners, 0.0)
        used = dict.fromkeys(runners, 0.0)
        counted = dict.fromkeys(runners, 0)
        for c, chunk in enumerate(chunks):
            order = names[c % len(names) :] + names[: c % len(names)]
            for name in order:
                gc.collect()
                start_cpu = time.process_time()
                elapsed, n = runners[name](chunk)
                used[name] += time.process_time() - start_cpu
                wall[name] += elapsed
                counted[name] += n
        for name in runners:
            times[name].append(wall[name])
            cpu[name].append(used[name])
            frames[name] = counted[name]

    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        f"corpus: {len(files)} files, {megabytes:.1f} MB; "
        f"medians of {args.rounds} rounds, interleaved in chunks of {args.chunk} files"
    )
    print(f"{'pipeline':<40}{'wall s':>8}{'files/s':>10}{'MB/s':>8}{'cpu s':>8}{'frames':>8}")
    labels = {
        "ours": "ingest + instance_frames (float32)",
        "ours_default": "  same, pydicom's default plugin order",
        "bare": "pydicom dcmread().pixel_array",
    }
    for k in runners:
        print(
            f"{labels[k]:<40}{med[k]:>8.2f}{len(files) / med[k]:>10.1f}"
            f"{megabytes / med[k]:>8.1f}{med_cpu[k]:>8.2f}{frames[k]:>8}"
        )
    ratio = med["bare"] / med["ours"]
    ratio_cpu = med_cpu["bare"] / med_cpu["ours"]
    print(f"ratio ours/bare (throughput): wall {ratio:.2f}, cpu {ratio_cpu:.2f}  (target >= 0.80)")
    print(
        f"  with pydicom's default plugin order: wall {med['bare'] / med['ours_default']:.2f}, "
        f"cpu {med_cpu['bare'] / med_cpu['ours_default']:.2f}"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
