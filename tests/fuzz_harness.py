"""A deterministic fuzzer for the ingest → de-identify → decode path, on real seed files.

Every case is a pure function of (run seed, case index): `make_case` picks a seed file and
applies one to three mutations with a `random.Random` seeded from both, so any failure is
reproduced from its two numbers alone (`python bench/fuzz.py --repro SEED:INDEX`).

Seeds are real files: pydicom's bundled test files and the shared conformance corpus
(small files only, read in place, never copied into the repository). Mutations:

- byte flips (mostly in the header), truncation, block deletion/duplication, insertion of
  structural bytes (item and delimiter tags, JPEG markers), splices from another seed;
- tag-aware edits found by scanning for the tag's bytes: new values for Rows, Columns,
  NumberOfFrames, BitsAllocated/Stored, SamplesPerPixel, PixelRepresentation,
  PhotometricInterpretation, PlanarConfiguration, TransferSyntaxUID, LUT descriptors...;
  a different (or invalid) VR; a corrupted length field (0, odd, huge, undefined);
- flips inside the pixel data (compressed codestreams reach the decoders).

`run_case` runs what a file goes through in the product: `read_instance` on the bytes,
de-identification (`Deidentifier.apply`), the header-only `series_geometry`, then
`series_stacks` (which decodes with `decode_frames`); a DICOMDIR goes through
`dicomdir.check_archive`. Its outcome is "ok", a typed error (a `RadAssistError` reason) or
an untyped exception (type, message, stage).

`run_fuzz` runs cases in child processes, each under an RLIMIT_AS cap, with a wall-clock
timeout per case: a hang is killed and counted, a process killed by a signal (an abort in
a C/C++ decoder, the kernel's OOM killer) is counted and replaced, so no case can stop the
run. The parent never decodes anything.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import struct
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import connection, get_context
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dev"
MAX_SEED_BYTES = 512 * 1024  # bigger seeds only slow the run down; the mutations do the work
SKIP_SUFFIXES = {".py", ".txt", ".json", ".gz", ".bz2", ".zip", ".md", ".csv", ".npy", ".j2k",
                 ".jpg", ".png", ".jls", ".bin", ".xml", ".raw"}


# ---------------------------------------------------------------------------- seeds


def seed_paths(data_root: Path | None = None) -> list[Path]:
    """Small real DICOM files: pydicom's bundled test files, then the conformance corpus."""
    import pydicom.data

    roots = [Path(pydicom.data.__file__).parent / "test_files"]
    conformance = (data_root or DEFAULT_DATA) / "dicom" / "conformance"
    if conformance.is_dir():
        roots.append(conformance)
    out: list[Path] = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if (path.is_file() and path.suffix.lower() not in SKIP_SUFFIXES
                    and 132 <= path.stat().st_size <= MAX_SEED_BYTES):
                out.append(path)
    return out


def load_seeds(data_root: Path | None = None) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in seed_paths(data_root)]


# ---------------------------------------------------------------------------- mutations

# (group, element) of the attributes the pixel pipeline trusts, with values to try.
_US_VALUES = (0, 1, 2, 3, 4, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 48, 64, 255, 256, 4096,
              0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
_US_TAGS = {
    (0x0028, 0x0010): "Rows", (0x0028, 0x0011): "Columns",
    (0x0028, 0x0100): "BitsAllocated", (0x0028, 0x0101): "BitsStored",
    (0x0028, 0x0102): "HighBit", (0x0028, 0x0103): "PixelRepresentation",
    (0x0028, 0x0002): "SamplesPerPixel", (0x0028, 0x0006): "PlanarConfiguration",
}
_IS_VALUES = (b"0", b"-1", b"1", b"2", b"3", b"100", b"1000", b"65535", b"99999999",
              b"2147483647", b"1e9", b"abc", b"", b"2\\3", b" 8 ", b"nan")
_TS_VALUES = (
    b"1.2.840.10008.1.2", b"1.2.840.10008.1.2.1", b"1.2.840.10008.1.2.2",
    b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.4.50", b"1.2.840.10008.1.2.4.51",
    b"1.2.840.10008.1.2.4.57", b"1.2.840.10008.1.2.4.70", b"1.2.840.10008.1.2.4.80",
    b"1.2.840.10008.1.2.4.81", b"1.2.840.10008.1.2.4.90", b"1.2.840.10008.1.2.4.91",
    b"1.2.840.10008.1.2.4.201", b"1.2.840.10008.1.2.4.203", b"1.2.840.10008.1.2.5",
    b"1.2.840.10008.1.2.8.1", b"1.2.840.10008.1.2.4.100", b"1.2.840.10008.1.2.4.94",
    b"1.2.840.10008.5.1.4.1.1.2", b"1.2.3.4", b"garbage", b"", b"1.2.840.10008.1.2.4.5O",
)
_CS_VALUES = (b"MONOCHROME1", b"MONOCHROME2", b"RGB", b"YBR_FULL", b"YBR_FULL_422",
              b"PALETTE COLOR", b"YBR_ICT", b"YBR_RCT", b"YBR_PARTIAL_420", b"", b"XYZ",
              b"ARGB", b"HSV")
_STRING_TAGS = {
    (0x0028, 0x0008): ("NumberOfFrames", _IS_VALUES),
    (0x0002, 0x0010): ("TransferSyntaxUID", _TS_VALUES),
    (0x0028, 0x0004): ("PhotometricInterpretation", _CS_VALUES),
    (0x0008, 0x0016): ("SOPClassUID", (b"1.2.840.10008.5.1.4.1.1.7", b"1.2.840.10008.1.3.10",
                                       b"1.2.840.10008.5.1.4.1.1.88.33", b"", b"x")),
    (0x0028, 0x1052): ("RescaleIntercept", (b"-1024", b"1e308", b"nan", b"inf", b"x", b"")),
    (0x0028, 0x1053): ("RescaleSlope", (b"0", b"1e308", b"-inf", b"nan", b"x", b"")),
    (0x0028, 0x0030): ("PixelSpacing", (b"0\\0", b"-1\\1", b"nan\\nan", b"1", b"1e400\\1")),
    (0x0020, 0x0037): ("ImageOrientationPatient", (b"0\\0\\0\\0\\0\\0", b"1\\0\\0\\1\\0\\0",
                                                   b"nan\\0\\0\\0\\1\\0", b"1")),
    (0x0020, 0x0032): ("ImagePositionPatient", (b"1e308\\0\\0", b"nan\\1\\1", b"1\\2")),
    (0x0028, 0x1050): ("WindowCenter", (b"nan", b"1e308", b"x", b"40\\")),
    (0x0028, 0x1051): ("WindowWidth", (b"0", b"-1", b"nan", b"1e-308")),
    (0x0008, 0x0008): ("ImageType", (b"ORIGINAL\\PRIMARY\\M\\MOSAIC", b"MOSAIC")),
}
# Tags whose value holds binary descriptors (US/SS triplets) or sequences.
_BINARY_TAGS = {
    (0x0028, 0x1101): "RedPaletteDescriptor", (0x0028, 0x1102): "GreenPaletteDescriptor",
    (0x0028, 0x1103): "BluePaletteDescriptor", (0x0028, 0x3002): "LUTDescriptor",
    (0x0028, 0x1201): "RedPaletteData", (0x0028, 0x3006): "LUTData",
    (0x0028, 0x3000): "ModalityLUTSequence", (0x5200, 0x9230): "PerFrameFunctionalGroups",
    (0x5200, 0x9229): "SharedFunctionalGroups", (0x0004, 0x1220): "DirectoryRecordSequence",
    (0x7FE0, 0x0010): "PixelData", (0x0002, 0x0000): "FileMetaGroupLength",
}
_ALL_TAGS = [*_US_TAGS, *_STRING_TAGS, *_BINARY_TAGS]
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}
_VRS = (b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
        b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST",
        b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV", b"ZZ", b"\0\0",
        b"ox", b"  ")
_LENGTHS = (0, 1, 2, 3, 4, 7, 255, 0x7FFF, 0xFFFE, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFE,
            0xFFFFFFFF)
_STRUCTURAL = (b"\xfe\xff\x00\xe0", b"\xfe\xff\x0d\xe0", b"\xfe\xff\xdd\xe0",
               b"\xfe\xff\x00\xe0\xff\xff\xff\xff", b"\xff\xd8", b"\xff\xd9", b"\xff\xc0",
               b"\xff\xda", b"\xff\x4f\xff\x51", b"\xff\xf7", b"\x00\x00\x00\x00",
               b"\xff\xff\xff\xff", b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


@dataclass(frozen=True)
class _Element:
    tag_at: int
    explicit: bool
    big: bool
    vr: bytes
    len_at: int  # where the length field starts
    len_size: int  # 2 or 4
    value_at: int
    length: int


def _elements(data: bytes, group: int, elem: int) -> list[_Element]:
    """Every plausible encoding of one tag in the bytes (little and big endian)."""
    out = []
    for big in (False, True):
        pattern = struct.pack(">HH" if big else "<HH", group, elem)
        start = 0
        while len(out) < 8:
            at = data.find(pattern, start)
            if at < 0 or at + 8 > len(data):
                break
            start = at + 1
            vr = data[at + 4:at + 6]
            fmt = ">" if big else "<"
            if vr.isalpha() and vr.isupper():
                if vr in _LONG_VRS:
                    if at + 12 > len(data):
                        continue
                    (length,) = struct.unpack(fmt + "L", data[at + 8:at + 12])
                    out.append(_Element(at, True, big, vr, at + 8, 4, at + 12, length))
                else:
                    (length,) = struct.unpack(fmt + "H", data[at + 6:at + 8])
                    out.append(_Element(at, True, big, vr, at + 6, 2, at + 8, length))
            else:
                (length,) = struct.unpack(fmt + "L", data[at + 4:at + 8])
                out.append(_Element(at, False, big, b"", at + 4, 4, at + 8, length))
    return out


def _set_value(data: bytes, el: _Element, value: bytes) -> bytes:
    """Replace an element's value (and its length field); a parent's length is left as is."""
    if len(value) % 2:
        value += b"\0" if el.vr in (b"UI", b"OB", b"") else b" "
    fmt = (">" if el.big else "<") + ("H" if el.len_size == 2 else "L")
    length = struct.pack(fmt, min(len(value), (1 << (8 * el.len_size)) - 1))
    end = el.value_at + (el.length if el.length != 0xFFFFFFFF else 0)
    return data[:el.len_at] + length + value + data[min(end, len(data)):]


def _pick_element(rng: random.Random, data: bytes, tags) -> tuple[tuple[int, int], _Element] | None:
    tags = list(tags)
    rng.shuffle(tags)
    for tag in tags:
        found = _elements(data, *tag)
        if found:
            return tag, rng.choice(found)
    return None


def _mut_us(rng: random.Random, data: bytes, _seeds) -> tuple[bytes, str]:
    picked = _pick_element(rng, data, _US_TAGS)
    if picked is None:
        return _mut_flip(rng, data, _seeds)
    tag, el = picked
    value = rng.choice(_US_VALUES)
    if el.explicit and el.vr not in (b"US", b"SS"):
        return _set_value(data, el, str(value).encode()), f"{_US_TAGS[tag]}={value}"
    raw = struct.pack(">H" if el.big else "<H", value)
    return data[:el.value_at] + raw + data[el.value_at + 2:], f"{_US_TAGS[tag]}={value}"


def _mut_string(rng: random.Random, data: bytes, _seeds) -> tuple[bytes, str]:
    picked = _pick_element(rng, data, _STRING_TAGS)
    if picked is None:
        return _mut_flip(rng, data, _seeds)
    tag, el = picked
    name, values = _STRING_TAGS[tag]
    value = rng.choice(values)
    return _set_value(data, el, value), f"{name}={value.decode('latin-1')!r}"


def _mut_vr(rng: random.Random, data: bytes, _seeds) -> tuple[bytes, str]:
    picked = _pick_element(rng, data, _ALL_TAGS)
    if picked is None or not picked[1].explicit:
        return _mut_length(rng, data, _seeds)
    _, el = picked
    vr = rng.choice(_VRS)
    at = el.tag_at + 4
    return data[:at] + vr + data[at + 2:], f"VR@{el.tag_at}={vr!r}"


def _mut_length(rng: random.Random, data: bytes, _seeds) -> tuple[bytes, str]:
    picked = _pick_element(rng, data, _ALL_TAGS)
    if picked is None:
        return _mut_flip(rng, data, _seeds)
    _, el = picked
    value = rng.choice(_LENGTHS) if rng.random() < 0.7 else max(0, el.length + rng.randint(-9, 9))
    value &= (1 << (8 * el.len_size)) - 1
    fmt = (">" if el.big else "<") + ("H" if el.len_size == 2 else "L")
    raw = struct.pack(fmt, value)
    return data[:el.len_at] + raw + data[el.len_at + el.len_size:], f"len@{el.tag_at}={value}"


def _position(rng: random.Random, data: bytes) -> int:
    if rng.random() < 0.6:
        return rng.randrange(min(len(data), 2048) or 1)
    return rng.randrange(len(data) or 1)


def _mut_flip(rng: random.Random, data: bytes, _seeds) -> tuple[bytes, str]:
    buf = bytearray(data)
    n = rng.choice((1, 1, 2, 4, 8, 16))
    for _ in range(n):
        if buf:
            buf[_position(rng, data)] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else \
                rng.randrange(1, 256)
    return bytes(buf), f"flip×{n}"


def _mut_pixels(rng: random.Random, data: bytes, _seeds) -> tuple[bytes, str]:
    """Flips inside the pixel data: compressed codestreams reach the decoders."""
    found = _elements(data, 0x7FE0, 0x0010)
    if not found:
        return _mut_flip(rng, data, _seeds)
    start = found[-1].value_at
    if start >= len(data):
        return _mut_truncate(rng, data, _seeds)
    buf = bytearray(data)
    n = rng.choice((1, 2, 4, 16, 64))
    near_start = rng.random() < 0.6  # codestream headers sit at the start of each frame
    span = min(len(data) - start, 600) if near_start else len(data) - start
    for _ in range(n):
        buf[start + rng.randrange(span)] = rng.randrange(256)
    return bytes(buf), f"pixelflip×{n}{'@head' if near_start else ''}"


def _mut_truncate(rng: random.Random, data: bytes, _seeds) -> tuple[bytes, str]:
    cut = rng.randrange(len(data)) if rng.random() < 0.5 else len(data) - rng.randint(1, 64)
    cut = max(0, cut)
    return data[:cut], f"truncate@{cut}"


def _mut_block(rng: random.Random, data: bytes, _seeds) -> tuple[bytes, str]:
    at = _position(rng, data)
    size = rng.choice((1, 2, 4, 8, 16, 64, 512))
    if rng.random() < 0.5:
        return data[:at] + data[at + size:], f"delete{size}@{at}"
    return data[:at] + data[at:at + size] + data[at:], f"dup{size}@{at}"


def _mut_insert(rng: random.Random, data: bytes, _seeds) -> tuple[bytes, str]:
    at = _position(rng, data)
    chunk = rng.choice(_STRUCTURAL)
    if rng.random() < 0.5:
        return data[:at] + chunk + data[at:], f"insert{chunk.hex()}@{at}"
    return data[:at] + chunk + data[at + len(chunk):], f"overwrite{chunk.hex()}@{at}"


def _mut_splice(rng: random.Random, data: bytes, seeds) -> tuple[bytes, str]:
    name, other = seeds[rng.randrange(len(seeds))]
    if not other:
        return _mut_flip(rng, data, seeds)
    a = rng.randrange(len(other))
    size = rng.choice((16, 128, 1024, 8192))
    chunk = other[a:a + size]
    at = _position(rng, data)
    if rng.random() < 0.5:
        return data[:at] + chunk, f"splice-tail({name}@{a}+{size})@{at}"
    return data[:at] + chunk + data[at + len(chunk):], f"splice({name}@{a}+{size})@{at}"


MUTATORS: tuple[tuple[Callable, int], ...] = (
    (_mut_us, 6), (_mut_string, 5), (_mut_vr, 2), (_mut_length, 3), (_mut_flip, 3),
    (_mut_pixels, 3), (_mut_truncate, 2), (_mut_block, 1), (_mut_insert, 1), (_mut_splice, 1),
)
_FUNCS = [f for f, _ in MUTATORS]
_WEIGHTS = [w for _, w in MUTATORS]


def make_case(seeds: list[tuple[str, bytes]], run_seed: int, index: int) -> tuple[str, bytes, str]:
    """(seed file name, mutated bytes, what was done) for case `index` of run `run_seed`."""
    rng = random.Random(f"radassist-fuzz:{run_seed}:{index}")
    name, data = seeds[rng.randrange(len(seeds))]
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        mutate = rng.choices(_FUNCS, _WEIGHTS)[0]
        data, what = mutate(rng, data, seeds)
        done.append(what)
    return name, data, "; ".join(done)


# ---------------------------------------------------------------------------- one case


@dataclass
class Outcome:
    status: str  # "ok", "typed", "untyped"
    stage: str = ""
    reason: str = ""  # typed: the error's reason; untyped: the exception type
    message: str = ""
    where: str = ""  # untyped: innermost frame of the traceback
    seconds: float = 0.0
    maxrss_kb: int = 0


def run_case(data: bytes, source: str = "fuzz.dcm") -> Outcome:
    """What a file goes through: read, de-identify, headers, stacks (decoding); typed or not."""
    from imaging.pixels import decode_frames, series_stacks
    from imaging.pixels.decode import has_pixel_data
    from imaging.pixels.stacks import series_geometry
    from pacs_bridge import dicomdir
    from pacs_bridge.deid import Deidentifier
    from pacs_bridge.errors import RadAssistError
    from pacs_bridge.ingest import _read_dicom, read_instance
    from pacs_bridge.study import InstanceKind

    stage = "read"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                inst = read_instance(source, data)
            except RadAssistError as exc:
                if exc.reason != "dicomdir":
                    raise
                import io

                stage = "dicomdir"
                ds, _ = _read_dicom(source, io.BytesIO(data), data[:132])
                dicomdir.check_archive(source, {"DICOMDIR": data}, {"DICOMDIR": ds})
                return Outcome("ok", stage)
            stage = "deid"
            Deidentifier(salt="fuzz").apply(inst.dataset, source=source)
            stage = "geometry"
            series_geometry([inst])
            stage = "decode"
            if inst.kind is InstanceKind.IMAGE:
                series_stacks([inst])
            elif has_pixel_data(inst.dataset):
                decode_frames(inst)
    except RadAssistError as exc:
        if exc.source != source:
            return Outcome("untyped", stage, "UnnamedSource", f"{exc} (source {exc.source!r})")
        return Outcome("typed", stage, exc.reason, exc.message[:200])
    except BaseException as exc:  # noqa: BLE001 - counting them is the point
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno} {tb[-1].name}" if tb else ""
        return Outcome("untyped", stage, type(exc).__name__, str(exc)[:200], where)
    return Outcome("ok", stage)


# ---------------------------------------------------------------------------- the pool


@dataclass
class Result:
    """One case's result as the parent saw it."""

    index: int
    seed_name: str
    mutation: str
    status: str  # ok, typed, untyped, hang, killed
    stage: str = ""
    reason: str = ""
    message: str = ""
    where: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    run_seed: int
    cases: int = 0
    results: list[Result] = field(default_factory=list)
    peak_rss_kb: int = 0
    wall: float = 0.0
    seeds: int = 0

    def counts(self) -> Counter:
        return Counter(r.status for r in self.results)

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status in ("untyped", "hang", "killed")]


def _limit_memory(cap_bytes: int) -> None:
    if cap_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))


def _worker(conn, seeds, run_seed: int, cap_bytes: int, crash_dir: str | None) -> None:
    _limit_memory(cap_bytes)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # C decoders print to stderr; the table says what happened
    import logging

    logging.disable(logging.CRITICAL)
    import imaging.pixels  # noqa: F401 - import once, not per case
    import pacs_bridge.ingest  # noqa: F401

    while True:
        try:
            index = conn.recv()
        except EOFError:
            return
        if index is None:
            return
        name, data, what = make_case(seeds, run_seed, index)
        if crash_dir:  # written before running, so a hang or an abort leaves its input
            Path(crash_dir, "current.dcm").write_bytes(data)
        start = time.perf_counter()
        out = run_case(data, f"fuzz:{run_seed}:{index}")
        out.seconds = time.perf_counter() - start
        out.maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        conn.send((index, name, what, out))


@dataclass
class _Slot:
    proc: object
    conn: object
    index: int | None = None
    started: float = 0.0
    done: int = 0


def run_fuzz(
    cases: int,
    run_seed: int = 1,
    *,
    workers: int = 2,
    timeout: float = 10.0,
    memory_cap: int = 3 << 30,
    data_root: Path | None = None,
    crash_dir: Path | None = None,
    start: int = 0,
    recycle: int = 2000,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Run cases start..start+cases-1 in `workers` child processes; never raises for a case.

    `timeout` is the wall-clock limit per case (a hang is killed, counted and the worker
    replaced); `memory_cap` the RLIMIT_AS of each worker; a worker is replaced every
    `recycle` cases. Inputs of untyped failures, hangs and kills are written to `crash_dir`.
    """
    seeds = load_seeds(data_root)
    if not seeds:
        raise RuntimeError("no seed files found")
    # forkserver, not fork: a worker forked from a process that has loaded torch (the test
    # suite) inherits gigabytes of resident pages, which its peak RSS would count
    ctx = get_context("forkserver")
    report = Report(run_seed, seeds=len(seeds))
    t0 = time.perf_counter()
    todo = list(range(start, start + cases))[::-1]
    slots: list[_Slot] = []
    crash = str(crash_dir) if crash_dir else None

    def spawn(k: int) -> _Slot:
        wdir = None
        if crash:
            wdir = os.path.join(crash, f"w{k}")
            os.makedirs(wdir, exist_ok=True)
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, seeds, run_seed, memory_cap, wdir),
                           daemon=True)
        proc.start()
        child.close()
        return _Slot(proc, parent)

    def save(index: int, status: str) -> None:
        if crash_dir is None:
            return
        _, data, _ = make_case(seeds, run_seed, index)
        Path(crash_dir, f"{status}-{run_seed}-{index}.dcm").write_bytes(data)

    def retire(slot: _Slot) -> None:
        try:
            slot.conn.close()
        except OSError:
            pass
        # Process.kill, not os.kill: a forkserver child is reaped by the fork server the
        # moment it exits, so its pid can be gone between is_alive() and the signal
        # (ProcessLookupError, seen once in CI); multiprocessing ignores that race
        if slot.proc.is_alive():
            slot.proc.kill()
        slot.proc.join()

    for k in range(max(1, workers)):
        slots.append(spawn(k))
    try:
        while todo or any(s.index is not None for s in slots):
            for k, slot in enumerate(slots):
                if slot.index is None and todo:
                    if slot.done >= recycle:
                        slot.conn.send(None)
                        retire(slot)
                        slot = slots[k] = spawn(k)
                    slot.index = todo.pop()
                    slot.started = time.perf_counter()
                    slot.conn.send(slot.index)
            busy = [s for s in slots if s.index is not None]
            if not busy:
                break
            deadline = min(s.started for s in busy) + timeout
            ready = connection.wait([s.conn for s in busy] + [s.proc.sentinel for s in busy],
                                    timeout=max(0.0, deadline - time.perf_counter()))
            now = time.perf_counter()
            for k, slot in enumerate(slots):
                if slot.index is None:
                    continue
                if slot.conn in ready:
                    try:
                        index, name, what, out = slot.conn.recv()
                    except (EOFError, OSError):
                        pass
                    else:
                        report.results.append(Result(index, name, what, out.status, out.stage,
                                                     out.reason, out.message, out.where,
                                                     out.seconds))
                        report.peak_rss_kb = max(report.peak_rss_kb, out.maxrss_kb)
                        if out.status == "untyped":
                            save(index, "untyped")
                        slot.index = None
                        slot.done += 1
                        continue
                dead = not slot.proc.is_alive()
                if dead or now - slot.started >= timeout:
                    index = slot.index
                    name, _, what = make_case(seeds, run_seed, index)
                    if dead:
                        slot.proc.join()
                        code = slot.proc.exitcode
                        sig = -code if code is not None and code < 0 else 0
                        what_died = signal.Signals(sig).name if sig else f"exit {code}"
                        report.results.append(Result(index, name, what, "killed",
                                                     reason=what_died,
                                                     seconds=now - slot.started))
                        save(index, "killed")
                    else:
                        report.results.append(Result(index, name, what, "hang",
                                                     reason=f">{timeout:g}s",
                                                     seconds=now - slot.started))
                        save(index, "hang")
                    retire(slot)
                    slots[k] = spawn(k)
            if progress is not None:
                progress(len(report.results), cases)
    finally:
        for slot in slots:
            try:
                slot.conn.send(None)
            except (OSError, ValueError):
                pass
            retire(slot)
    report.cases = len(report.results)
    report.wall = time.perf_counter() - t0
    # the workers' own high-water marks only: RUSAGE_CHILDREN of the caller also counts every
    # child it ever reaped (in the test suite, CLI runs that load the model, ~3 GB)
    return report


# ---------------------------------------------------------------------------- the table


def table(reports: list[Report]) -> str:
    """The acceptance table: outcomes, typed errors by reason, every failure with a repro."""
    results = [r for rep in reports for r in rep.results]
    counts = Counter(r.status for r in results)
    peak = max((rep.peak_rss_kb for rep in reports), default=0)
    seeds = ", ".join(str(rep.run_seed) for rep in reports)
    wall = sum(rep.wall for rep in reports)
    slowest = max((r.seconds for r in results if r.status not in ("hang",)), default=0.0)
    lines = [
        f"| fuzz run (seeds {seeds}; {reports[0].seeds if reports else 0} seed files) | count |",
        "|---|---:|",
        f"| cases | {len(results):,} |",
        f"| ok (read, de-identified, decoded) | {counts['ok']:,} |",
        f"| typed errors (RadAssistError) | {counts['typed']:,} |",
        f"| untyped exceptions | {counts['untyped']:,} |",
        f"| hangs (killed after the per-case timeout) | {counts['hang']:,} |",
        f"| killed by a signal / died | {counts['killed']:,} |",
        f"| peak RSS of a worker | {peak / 1024:,.0f} MiB |",
        f"| slowest finished case | {slowest:.2f} s |",
        f"| wall time | {wall:,.0f} s |",
        "",
        "| typed error reason | count |",
        "|---|---:|",
    ]
    by_reason = Counter(r.reason for r in results if r.status == "typed")
    lines += [f"| {reason} | {n:,} |" for reason, n in by_reason.most_common()]
    fails = [r for r in results if r.status in ("untyped", "hang", "killed")]
    if fails:
        lines += ["", "| failure | stage | type / signal | where | repro (seed:index) | seed file, "
                  "mutation |", "|---|---|---|---|---|---|"]
        grouped: dict[tuple, list[Result]] = {}
        run_of = {id(r): rep.run_seed for rep in reports for r in rep.results}
        for r in fails:
            grouped.setdefault((r.status, r.stage, r.reason, r.where), []).append(r)
        for (status, stage, reason, where), rs in sorted(grouped.items(),
                                                         key=lambda kv: -len(kv[1])):
            first = rs[0]
            lines.append(
                f"| {status} ×{len(rs)} | {stage} | {reason}: {first.message[:60]} | {where} | "
                f"{run_of[id(first)]}:{first.index} | {first.seed_name}, {first.mutation[:60]} |"
            )
    return "\n".join(lines)
