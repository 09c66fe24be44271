"""The corpus checker behind `radassist ingest-check`: does every file load or fail clearly?

Each file goes through the real pipeline — `pacs_bridge.ingest` then
`imaging.pixels.decode_frames` for every object with pixel data — and ends in exactly one
state: decoded, rejected (a typed error with a reason code), or crashed (any other
exception, which is a bug). Files ending in `.zst` are zstandard-compressed DICOM and are
decompressed in memory.

Compressed files that have an uncompressed twin are then compared with it, in physical
units (after the Modality LUT):

- NEMA WG04: `nema-wg04/<FAMILY>/<NAME>_<FAMILY>` against `nema-wg04/REF/<NAME>_UNC`;
- dcm_qa_ts: `dcm_qa_ts/<k>.dcm` (k = 2..9) against `dcm_qa_ts/1.dcm`;
- `KNOWN_TWINS`: encodings of one image that pydicom, pylibjpeg and dicomParser ship
  side by side (big endian, RLE, JPEG-LS, JPEG 2000, deflate variants of one file).

Files are checked one at a time in a child process (`common.isolation`, one child for the
whole run, replaced if it dies): a file that kills its process (a native decoder's abort or
segfault, the OOM killer) or outlives its time budget is reported as rejected with reason
"decoder_crashed" (or "time_budget") naming the signal, and the check carries on with the
next file. `isolate=False` checks in this process.

Tolerances (`LOSSY_MIN_PSNR_DB` and the JPEG-LS rule) are stated here and printed in the
report: lossless transfer syntaxes must match exactly; JPEG-LS near-lossless within the
NEAR parameter of its own codestream (times the rescale slope); other lossy syntaxes
(JPEG baseline/extended, lossy JPEG 2000) must reach a PSNR of 30 dB, the peak being the
reference's value range.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from common.errors import RadAssistError
from imaging.conformance_twins import (  # noqa: F401 (re-exported for the CLI and tests)
    KNOWN_TWINS,
    LOSSLESS_SYNTAXES,
    LOSSY_MIN_PSNR_DB,
    TOLERANCE_TEXT,
    PairResult,
    compare,
    jpeg_ls_near,
    twin_of,
)
from imaging.pixels.frames import decode_frames
from pacs_bridge.transfer_syntaxes import has_pixel_data

ZSTD_MAX_BYTES = 2 * 1024**3  # a .zst that inflates beyond this is refused, not read
CRASH = "crash"
DECODER_CRASHED = "decoder_crashed"  # imaging.pixels.reasons' code: the process died on it


@dataclass(frozen=True)
class FileResult:
    """What happened to one file of the corpus."""

    path: str
    status: str  # "decoded" | "rejected" | "crash"
    reason: str = ""  # reason code of the typed error (or the exception type for a crash)
    message: str = ""
    objects: int = 0  # DICOM objects read from it (a zip or DICOMDIR can hold many)
    frames: int = 0  # frames decoded
    non_image: bool = False  # read fine, but nothing in it has pixel data


@dataclass(frozen=True)
class Report:
    files: tuple[FileResult, ...]
    pairs: tuple[PairResult, ...] = ()

    def summary(self) -> dict:
        status = Counter(f.status for f in self.files)
        reasons = Counter(f.reason for f in self.files if f.status == "rejected")
        crashes = [f for f in self.files if f.status == CRASH]
        return {
            "files": len(self.files),
            "decoded": status.get("decoded", 0),
            "rejected": status.get("rejected", 0),
            "crashes": len(crashes),
            "equivalence_failures": sum(not p.passed for p in self.pairs),
            "rejected_by_reason": dict(sorted(reasons.items())),
            "non_image": sum(f.non_image for f in self.files),
            "frames_decoded": sum(f.frames for f in self.files),
            "equivalence_pairs": len(self.pairs),
            "equivalence_lossless": sum(p.lossless for p in self.pairs),
            "equivalence_lossy": sum(not p.lossless for p in self.pairs),
            "equivalence_tolerance": TOLERANCE_TEXT,
            "equivalence_by_family": {
                fam: {
                    "pairs": sum(p.family == fam for p in self.pairs),
                    "failures": sum(p.family == fam and not p.passed for p in self.pairs),
                }
                for fam in sorted({p.family for p in self.pairs})
            },
            "crash_files": [f"{f.path}: {f.reason}: {f.message}" for f in crashes],
        }


# ---------------------------------------------------------------------------- walking


def walk(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every regular file under the given folders (recursive, extension or not), sorted.

    Only regular files: opening a named pipe in the folder would block the check forever."""
    for arg in paths:
        path = Path(arg)
        if path.is_file():
            yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and (Path(root) / name).is_file():
                    yield Path(root) / name


def _zstd_bytes(path: Path) -> bytes:
    import zstandard

    from common.errors import CorruptFileError

    try:
        with open(path, "rb") as fp:
            reader = zstandard.ZstdDecompressor().stream_reader(fp)
            data = reader.read(ZSTD_MAX_BYTES + 1)
    except zstandard.ZstdError as exc:
        raise CorruptFileError(str(path), f"not valid zstandard data ({exc})") from exc
    if len(data) > ZSTD_MAX_BYTES:
        raise CorruptFileError(
            str(path), f"decompresses to more than {ZSTD_MAX_BYTES} bytes", reason="too_large"
        )
    return data


def _ingest_one(path: Path):
    from pacs_bridge.ingest import ingest, ingest_bytes

    if path.suffix.lower() == ".zst":
        return ingest_bytes(path.name[: -len(".zst")], _zstd_bytes(path))
    return ingest([path])


def _objects(result) -> list:
    return [
        inst for study in result.studies for series in study.series for inst in series.instances
    ]


# ---------------------------------------------------------------------------- checking one file


def check_file(path: Path, keep: Callable[[Path], bool] = lambda p: False):
    """(FileResult, decoded arrays or None): arrays are returned only when `keep(path)`."""
    source = str(path)
    try:
        result = _ingest_one(path)
    except RadAssistError as exc:
        return FileResult(source, "rejected", exc.reason, exc.message), None
    except Exception as exc:  # a crash: reported, never raised
        return FileResult(source, CRASH, type(exc).__name__, str(exc)[:300]), None
    objects = _objects(result)
    internal = [r for r in result.rejections if r.reason == "internal"]
    if internal:
        return FileResult(source, CRASH, "ingest_internal", internal[0].message), None
    if not objects:
        if result.rejections:
            first = result.rejections[0]
            return FileResult(source, "rejected", first.reason, first.message), None
        return FileResult(source, "rejected", "empty", "nothing readable in it"), None
    frames = 0
    arrays = []
    with_pixels = [inst for inst in objects if has_pixel_data(inst.dataset)]
    for inst in with_pixels:
        try:
            decoded = decode_frames(inst)
        except RadAssistError as exc:
            return FileResult(source, "rejected", exc.reason, exc.message, len(objects)), None
        except Exception as exc:
            return (
                FileResult(source, CRASH, type(exc).__name__, str(exc)[:300], len(objects)),
                None,
            )
        frames += decoded.array.shape[0]
        if keep(path):
            arrays.append((inst.dataset, decoded.array))
    if result.rejections:  # e.g. members of a zip; the file itself still loaded
        first = result.rejections[0]
        note = f"{len(result.rejections)} part(s) rejected, first: {first.reason}"
    else:
        note = ""
    return (
        FileResult(source, "decoded", "", note, len(objects), frames, not with_pixels),
        arrays if keep(path) else None,
    )


# ---------------------------------------------------------------------------- equivalence pairs

# (folder name, file name) -> its uncompressed twin, relative to that folder
def _quiet_child() -> None:
    """In the checking child: no library warnings or pydicom log lines (each file's outcome
    is reported once, in the table)."""
    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def _check_in_child(path: str, keep: bool):
    result, arrays = check_file(Path(path), keep=lambda p: keep)
    if arrays:  # back to the parent: what `compare` reads of each dataset, and the pixels
        arrays = [(_portable(ds), arr) for ds, arr in arrays]
    return result, arrays


def _portable(ds):
    """The attributes `compare` reads, in a dataset that pickles (a dataset as read holds
    pydicom's local conversion callbacks, which do not)."""
    from pydicom.dataset import Dataset, FileMetaDataset

    from pacs_bridge.transfer_syntaxes import transfer_syntax_of

    out = Dataset()
    out.file_meta = FileMetaDataset()
    out.file_meta.TransferSyntaxUID = transfer_syntax_of(ds)
    for keyword in ("LossyImageCompression", "RescaleSlope", "NumberOfFrames"):
        if keyword in ds:
            setattr(out, keyword, ds.get(keyword))
    if "PixelData" in ds:
        out.add_new(0x7FE00010, "OB", bytes(ds.PixelData))
    return out


def _file_budget() -> float | None:
    """The hard limit on one file in the child: its read and decode budgets, with room for a
    zip of many members (each member has its own budget inside)."""
    from pacs_bridge.limits import file_seconds

    seconds = file_seconds()
    return max(240.0, 4 * seconds) if seconds > 0 else None


def check_corpus(paths: Iterable[str | Path], progress: Callable | None = None, *,
                 isolate: bool = True, check_in_child: Callable = _check_in_child) -> Report:
    """Check every file under `paths`; `progress(iterable)` may wrap the file list (tqdm).

    With `isolate` (the default) each file is checked in a child process, by
    `check_in_child(path, keep)` (a module-level function: the child imports it); a file
    that kills the child is a rejection ("decoder_crashed"), never the end of the run."""
    from common.errors import WorkerCrashError
    from common.isolation import Isolated

    files = list(dict.fromkeys(walk(paths)))
    twins = {p: t for p in files if (t := twin_of(p)) is not None}
    needed = set(twins) | {ref for _, ref in twins.values()}
    arrays: dict[Path, list] = {}
    results = []
    iterator = progress(files) if progress else files
    child = Isolated("checking", initializer=_quiet_child,
                     seconds=_file_budget()) if isolate else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom_log = logging.getLogger("pydicom")
        level = pydicom_log.level
        pydicom_log.setLevel(logging.CRITICAL)
        try:
            for path in iterator:
                if child is None:
                    result, decoded = check_file(path, keep=lambda p: p in needed)
                else:
                    try:
                        result, decoded = child.call(check_in_child, str(path),
                                                     path in needed, source=str(path))
                    except WorkerCrashError as exc:
                        if exc.reason == "start_failed":
                            raise  # nothing can be checked: one error, not a row per file
                        reason = DECODER_CRASHED if exc.reason == "crashed" else exc.reason
                        result, decoded = FileResult(str(path), "rejected", reason,
                                                     exc.message), None
                results.append(result)
                if decoded:
                    arrays[path] = decoded
        finally:
            pydicom_log.setLevel(level)
            if child is not None:
                child.close()
    pairs = []
    by_path = {Path(r.path): r for r in results}
    for comp_path, (family, ref_path) in sorted(twins.items()):
        comp, ref = arrays.get(comp_path), arrays.get(ref_path)
        if comp and ref:
            pairs.append(compare(family, comp_path, ref_path, comp, ref))
            continue
        missing = comp_path if not comp else ref_path
        why = by_path.get(missing)
        note = f"{missing} did not decode" + (f" ({why.reason})" if why else " (not found)")
        pairs.append(
            PairResult(
                family,
                str(comp_path),
                str(ref_path),
                True,
                math.nan,
                math.nan,
                "both decode",
                False,
                note,
            )
        )
    return Report(tuple(results), tuple(pairs))


# ---------------------------------------------------------------------------- readable table


def format_table(report: Report, details: bool = False) -> str:
    s = report.summary()
    lines = [
        f"{'files':<22}{s['files']:>7}",
        f"{'decoded':<22}{s['decoded']:>7}   ({s['non_image']} without pixel data, "
        f"{s['frames_decoded']} frames)",
        f"{'rejected':<22}{s['rejected']:>7}",
        f"{'crashes':<22}{s['crashes']:>7}",
        f"{'equivalence pairs':<22}{s['equivalence_pairs']:>7}   ({s['equivalence_lossless']} "
        f"lossless, {s['equivalence_lossy']} lossy)",
        f"{'equivalence failures':<22}{s['equivalence_failures']:>7}",
        "",
        "rejected by reason:",
    ]
    lines += [f"  {reason:<30}{n:>5}" for reason, n in s["rejected_by_reason"].items()] or ["  -"]
    if report.pairs:
        lines += ["", f"equivalence ({TOLERANCE_TEXT}):"]
        fw = max(len(p.family) for p in report.pairs) + 2
        nw = max(len(Path(p.compressed).name) for p in report.pairs) + 2
        lines.append(f"  {'family':<{fw}}{'file':<{nw}}{'max|err|':>10}{'PSNR dB':>9}  rule")
        for p in report.pairs:
            mark = "ok  " if p.passed else "FAIL"
            psnr = "inf" if math.isinf(p.psnr_db) and p.psnr_db > 0 else f"{p.psnr_db:.1f}"
            lines.append(
                f"  {p.family:<{fw}}{Path(p.compressed).name:<{nw}}{p.max_abs_error:>10.4g}"
                f"{psnr:>9}  {p.rule} {mark}{(' ' + p.note) if p.note else ''}"
            )
    crashes = [f for f in report.files if f.status == CRASH]
    if crashes:
        lines += ["", "crashes:"] + [f"  {f.path}: {f.reason}: {f.message}" for f in crashes]
    if details:
        rejected = [f for f in report.files if f.status == "rejected"]
        lines += ["", "rejected files:"] + [
            f"  {f.path}: [{f.reason}] {f.message}" for f in rejected
        ]
    return "\n".join(lines)


__all__ = [
    "FileResult",
    "LOSSY_MIN_PSNR_DB",
    "PairResult",
    "Report",
    "TOLERANCE_TEXT",
    "check_corpus",
    "check_file",
    "compare",
    "format_table",
    "twin_of",
    "walk",
]
