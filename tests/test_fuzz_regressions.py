"""Every distinct failure the fuzzer found (bench/fuzz.py), rebuilt in code from pydicom's test
files, plus a bounded fuzz run: 0 untyped exceptions, 0 hangs, 0 killed processes.

Each regression names the fuzz case it came from (run seed:case index) and what it did
before the fix. The inputs are built here by patching bytes of files bundled with pydicom
(`_patch`), so nothing is copied from the shared data.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom.data
import pytest
from fuzz_harness import _elements, _set_value, run_case, run_fuzz
from pydicom import dcmread

from imaging.pixels import decode_frames, instance_frames
from imaging.pixels.decode import _isolated_gdcm, check_before_decode, decode
from pacs_bridge.deid import Deidentifier
from pacs_bridge.errors import CorruptFileError, PixelDataError, TooLargeError
from pacs_bridge.ingest import ingest, read_instance
from pacs_bridge.limits import TimeBudgetError, max_pixel_bytes, time_budget

REPO = Path(__file__).resolve().parent.parent
FILES = Path(pydicom.data.__file__).parent / "test_files"


def _patch(name: str, *edits: tuple[str, tuple[int, int], object]) -> bytes:
    """A bundled file with its first element of each tag changed: ("value", tag, bytes),
    ("vr", tag, two bytes) or ("us", tag, int)."""
    data = (FILES / name).read_bytes()
    for kind, tag, new in edits:
        el = _elements(data, *tag)[0]
        if kind == "value":
            data = _set_value(data, el, new)
        elif kind == "vr":
            data = data[: el.tag_at + 4] + new + data[el.tag_at + 6 :]
        else:
            data = data[: el.value_at] + struct.pack("<H", new) + data[el.value_at + 2 :]
    return data


# (case id, bytes, stage, reason): what each used to raise is in the comment.
CASES = [
    # 2:1 ValueError "could not convert string to float" in Deidentifier.apply
    ("bad_ds_kept_by_deid", lambda: _patch("CT_small.dcm", ("value", (0x0028, 0x1052), b"x")),
     "deid", "unreadable_element"),
    # 2:75 NotImplementedError "Unknown Value Representation" in Deidentifier.apply
    ("unknown_vr_in_deid", lambda: _patch("CT_small.dcm", ("vr", (0x0010, 0x0010), b"ZZ")),
     "deid", "unreadable_element"),
    # 2:981 BytesLengthException in Deidentifier.apply
    ("bytes_length_in_deid", lambda: _patch("CT_small.dcm", ("vr", (0x0028, 0x0030), b"FL")),
     "deid", "unreadable_element"),
    # 2:3476 OSError "No tag to read" (a sequence that ends inside an item tag)
    ("short_sequence_in_deid",
     lambda: _patch("rtplan.dcm", ("value", (0x300A, 0x00B0), b"\xfe\xff")),
     "deid", "unreadable_element"),
    # 2:260 AttributeError "Failed to resolve ambiguous VR for tag (7FE0,0010)"
    ("ambiguous_pixel_vr_in_deid",
     lambda: _patch("nested_priv_SQ.dcm", ("value", (0x0002, 0x0010), b"1.2.840.10008.1.2.8.1")),
     "deid", "unreadable_element"),
    # 2:583 TypeError "A UID must be created from a string" (file meta UID with a numeric VR)
    ("numeric_vr_meta_uid_in_deid",
     lambda: _patch("CT_small.dcm", ("vr", (0x0002, 0x0002), b"US")),
     "deid", "unreadable_element"),
    # 2:736 ValueError "invalid literal for int()" in decode (BitsAllocated read as AS)
    ("bits_allocated_not_a_number",
     lambda: _patch("MR_small_jp2klossless.dcm", ("vr", (0x0028, 0x0100), b"AS")),
     "decode", "inconsistent_pixel_header"),
    # 2:886 MemoryError "Unable to allocate 47.7 TiB" (NumberOfFrames 99999999, compressed)
    ("frames_blow_up_compressed",
     lambda: _patch("JPGExtended.dcm", ("value", (0x0028, 0x0008), b"99999999")),
     "read", "too_large"),
    # 2:1369 hang over 10 s (JPEG 2000, NumberOfFrames "1e9")
    ("frames_1e9_hang", lambda: _patch("JPEG2000.dcm", ("value", (0x0028, 0x0008), b"1e9")),
     "read", "too_large"),
]


@pytest.mark.parametrize(("name", "build", "stage", "reason"), CASES, ids=[c[0] for c in CASES])
def test_fuzz_regression_is_typed(name, build, stage, reason):
    start = time.perf_counter()
    outcome = run_case(build(), f"{name}.dcm")
    assert (outcome.status, outcome.stage, outcome.reason) == ("typed", stage, reason), outcome
    assert time.perf_counter() - start < 5


def test_deid_error_names_file_and_tag_never_the_value():
    ds = read_instance("ct.dcm", _patch("CT_small.dcm", ("value", (0x0028, 0x1052), b"SECRET")))
    with pytest.raises(CorruptFileError) as info:
        Deidentifier(salt="s").apply(ds.dataset, source="ct.dcm")
    assert info.value.source == "ct.dcm" and "(0028,1052)" in info.value.message
    assert "SECRET" not in str(info.value)


def test_deid_never_converts_what_it_removes():
    """A broken value in an element the profile removes (X) costs nothing: not even read."""
    data = _patch("CT_small.dcm", ("vr", (0x0008, 0x0080), b"ZZ"))  # InstitutionName
    out = Deidentifier(salt="s").apply(read_instance("ct.dcm", data).dataset, source="ct.dcm")
    assert 0x00080080 not in out


def test_ingest_with_deidentify_rejects_with_the_reason(tmp_path: Path):
    path = tmp_path / "bad.dcm"
    path.write_bytes(_patch("CT_small.dcm", ("value", (0x0028, 0x1052), b"x")))
    result = ingest([path], deidentify=True)
    assert [r.reason for r in result.rejections] == ["unreadable_element"]  # was "internal"


def test_unknown_vr_in_last_element_is_not_converted_at_read():
    """1:306 / 2:446 NotImplementedError at read: the truncation check converted the last
    element; it now looks at the raw element only (a private one is never converted)."""
    data = (FILES / "CT_small.dcm").read_bytes() + b"\x11\x00\x28\x10S\x00\x02\x00AB"
    assert run_case(data, "x.dcm").status == "ok"


def test_gdcm_abort_is_refused_before_any_decoder():
    """2:1045 SIGABRT: GDCM aborts on a JPEG-LS whose Rows disagree with its codestream.
    The header check refuses it; run in a child so a regression cannot kill pytest."""
    code = (
        "import sys; sys.path[:0] = ['tests', '.']\n"
        "from test_fuzz_regressions import _patch\n"
        "from fuzz_harness import run_case\n"
        "o = run_case(_patch('JPEGLSNearLossless_08.dcm', ('us', (0x28, 0x10), 65534)), 'x')\n"
        "print(o.status, o.stage, o.reason)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["typed", "decode", "inconsistent_pixel_header"]


def test_codestream_must_agree_with_header():
    ds = dcmread(FILES / "JPEGLSNearLossless_08.dcm")
    check_before_decode(ds, "ok.dcm", ds.file_meta.TransferSyntaxUID)
    ds.Columns = ds.Columns + 1
    with pytest.raises(PixelDataError) as info:
        decode(ds, "cols.dcm")
    assert info.value.reason == "inconsistent_pixel_header" and "codestream" in info.value.message


def test_more_frames_than_fragments_is_refused_before_allocation():
    ds = dcmread(FILES / "SC_rgb_rle_2frame.dcm")
    ds.NumberOfFrames = 3
    with pytest.raises(PixelDataError) as info:
        decode_frames(ds, "frames.dcm")
    assert info.value.reason == "inconsistent_pixel_header" and "fragments" in info.value.message


def test_pixel_ceiling_is_configurable(monkeypatch):
    assert max_pixel_bytes() == 2 << 30
    data = (FILES / "CT_small.dcm").read_bytes()  # 128 x 128 x 16 bit: 64 KiB as float32
    monkeypatch.setenv("RADASSIST_MAX_PIXEL_BYTES", "32K")
    with pytest.raises(TooLargeError) as info:
        read_instance("ct.dcm", data)
    assert info.value.reason == "too_large" and "RADASSIST_MAX_PIXEL_BYTES" in info.value.message
    with pytest.raises(PixelDataError) as info:  # and again before decoding
        instance_frames(dcmread(FILES / "CT_small.dcm"), "ct.dcm")
    assert info.value.reason == "too_large"
    monkeypatch.setenv("RADASSIST_MAX_PIXEL_BYTES", "64K")
    assert instance_frames(read_instance("ct.dcm", data)).shape == (1, 128, 128)


def test_isolated_gdcm_matches_and_survives_an_abort():
    from pydicom.pixels import get_decoder
    from pydicom.pixels.utils import as_pixel_options

    ds = dcmread(FILES / "MR_small_jpeg_ls_lossless.dcm")
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    opts = as_pixel_options(ds)
    arr, _ = _isolated_gdcm(decoder, ds, opts, "x.dcm", ds.file_meta.TransferSyntaxUID,
                            ValueError("first plugin"))
    assert (arr == decode(ds, "x.dcm").array[0]).all()

    class Aborting:
        def as_array(self, *args, **kwargs):
            os.abort()

    with pytest.raises(PixelDataError) as info:
        _isolated_gdcm(Aborting(), ds, opts, "x.dcm", ds.file_meta.TransferSyntaxUID,
                       ValueError("first plugin"))
    assert info.value.reason == "decoder_crashed" and "SIGABRT" in info.value.message


def test_isolated_gdcm_hang_is_killed_at_the_budget(monkeypatch):
    monkeypatch.setenv("RADASSIST_FILE_SECONDS", "0.5")
    ds = dcmread(FILES / "MR_small_jpeg_ls_lossless.dcm")

    class Hanging:
        def as_array(self, *args, **kwargs):
            time.sleep(60)

    start = time.perf_counter()
    with pytest.raises(PixelDataError) as info:
        _isolated_gdcm(Hanging(), ds, {}, "x.dcm", ds.file_meta.TransferSyntaxUID,
                       ValueError("first plugin"))
    assert info.value.reason == "time_budget" and time.perf_counter() - start < 10


def test_time_budget_on_the_main_thread_and_a_noop_elsewhere():
    start = time.perf_counter()
    with pytest.raises(TimeBudgetError) as info, time_budget("slow.dcm", "reading", 0.2):
        while time.perf_counter() - start < 5:
            pass
    assert info.value.reason == "time_budget" and info.value.source == "slow.dcm"
    assert time.perf_counter() - start < 2

    done = []

    def elsewhere():
        with time_budget("t.dcm", "reading", 0.01):
            time.sleep(0.05)
        done.append(True)

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join()
    assert done == [True]


def test_time_budget_leaves_an_outer_timer_armed():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        with time_budget("f.dcm", "reading", 1):
            pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < left <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_cli_ingest_rejects_a_file_over_its_time_budget(tmp_path: Path, monkeypatch):
    import pacs_bridge.ingest as ingest_module

    path = tmp_path / "ct.dcm"
    path.write_bytes((FILES / "CT_small.dcm").read_bytes())
    real = ingest_module._make_instance

    def slow(*args, **kwargs):
        time.sleep(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_make_instance", slow)
    monkeypatch.setenv("RADASSIST_FILE_SECONDS", "0.2")
    start = time.perf_counter()
    result = ingest([path])
    assert [r.reason for r in result.rejections] == ["time_budget"]
    assert time.perf_counter() - start < 3


def test_cli_ingest_file_seconds_option(tmp_path: Path, monkeypatch, capsys):
    import json

    import pacs_bridge.ingest as ingest_module
    from radassist_cli.main import main

    path = tmp_path / "ct.dcm"
    path.write_bytes((FILES / "CT_small.dcm").read_bytes())
    real = ingest_module._make_instance

    def slow(*args, **kwargs):
        time.sleep(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_make_instance", slow)
    monkeypatch.setenv("RADASSIST_FILE_SECONDS", "60")  # restored after the test
    assert main(["ingest", str(path), "--json", "--file-seconds", "0.2"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["rejected_by_reason"] == {"time_budget": 1}


def test_bounded_fuzz_run():
    """300 mutated real files through read, de-identification and decoding: every outcome
    is ok or a typed error; no hang, no killed process (< 60 s on two busy cores)."""
    report = run_fuzz(300, run_seed=12, workers=2, timeout=10.0, memory_cap=3 << 30)
    counts = report.counts()
    assert report.cases == 300
    assert report.failures() == [], [
        (r.status, r.stage, r.reason, r.message, f"12:{r.index}") for r in report.failures()
    ]
    assert counts["ok"] > 0 and counts["typed"] > 0
    assert report.peak_rss_kb < 2 * 1024 * 1024


def test_deflate_bomb_is_refused_before_pydicom_inflates_it(monkeypatch):
    import io
    import zlib

    from pydicom.dataset import FileMetaDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    buf = io.BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    from pydicom.filewriter import write_file_meta_info

    write_file_meta_info(buf, meta)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = b"\0" * (1 << 20)
    body = b"".join(packer.compress(zeros) for _ in range(80)) + packer.flush()
    bomb = buf.getvalue() + body  # ~80 KB that inflates to 80 MiB
    monkeypatch.setenv("RADASSIST_MAX_PIXEL_BYTES", "1M")  # limit: 1 MiB + 64 MiB of header
    with pytest.raises(TooLargeError) as info:
        read_instance("bomb.dcm", bomb)
    assert "deflate" in info.value.message
    ds = read_instance("dfl.dcm", (FILES / "image_dfl.dcm").read_bytes())  # a real one reads
    assert ds.dataset.Rows


# Issue 17: files on which GDCM, run in-process, throws a C++ exception nobody catches and the
# process aborts (SIGABRT). Each is shown to abort an unguarded GDCM decode in a child, and to
# be refused by `check_before_decode` (a typed "inconsistent_pixel_header") before any decoder.
_GDCM_IN_PROCESS = (
    "import io, sys\n"
    "from pydicom import dcmread\n"
    "from pydicom.pixels import get_decoder\n"
    "from pydicom.pixels.utils import as_pixel_options\n"
    "ds = dcmread(io.BytesIO(sys.stdin.buffer.read()))\n"
    "get_decoder(ds.file_meta.TransferSyntaxUID).as_array(\n"
    "    ds, decoding_plugin='gdcm', **as_pixel_options(ds))\n"
)
_RUN_CASE = (
    "import sys; sys.path[:0] = ['tests', '.']\n"
    "from fuzz_harness import run_case\n"
    "o = run_case(sys.stdin.buffer.read(), 'x')\n"
    "print(o.status, o.stage, o.reason)\n"
)
ABORTING = [
    # the issue's poison (JPEG-LS lossless, Columns = 65535; codestream SOF55 says 64)
    ("jpeg_ls_columns_65535",
     lambda: _patch("MR_small_jpeg_ls_lossless.dcm", ("us", (0x0028, 0x0011), 65535))),
    # JPEG-LS whose Rows were changed
    ("jpeg_ls_rows_changed",
     lambda: _patch("MR_small_jpeg_ls_lossless.dcm", ("us", (0x0028, 0x0010), 65534))),
    # a one-component JPEG 2000 whose PhotometricInterpretation was changed (the 300-file
    # run's 03-11 MR2_J2KI YBR_FULL and 05-13 CT1_J2KR YBR_FULL_422: GDCM died in its fork)
    ("j2k_one_component_ybr_full",
     lambda: _patch("MR_small_jp2klossless.dcm", ("value", (0x0028, 0x0004), b"YBR_FULL"))),
    ("j2k_one_component_rgb",
     lambda: _patch("MR_small_jp2klossless.dcm", ("value", (0x0028, 0x0004), b"RGB"))),
]


def _aborts_gdcm_and_is_refused(data: bytes) -> None:
    gdcm = subprocess.run([sys.executable, "-c", _GDCM_IN_PROCESS], input=data, cwd=REPO,
                          capture_output=True, timeout=120)
    assert gdcm.returncode == -signal.SIGABRT, gdcm.stderr[-2000:]  # poison, unguarded
    assert b"gdcm::Exception" in gdcm.stderr
    out = subprocess.run([sys.executable, "-c", _RUN_CASE], input=data, cwd=REPO,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.decode().split() == ["typed", "decode", "inconsistent_pixel_header"]


@pytest.mark.parametrize(("name", "build"), ABORTING, ids=[a[0] for a in ABORTING])
def test_gdcm_aborting_file_is_refused_before_any_decoder(name, build):
    _aborts_gdcm_and_is_refused(build())


def test_issue_17_poison_from_the_conformance_corpus_is_refused(dicom_dir):
    """The issue's exact file: JLSL_16_15_1_1F.dcm, Columns = 65535, Study/Series UIDs, CT."""
    import io

    src = dicom_dir / "conformance" / "pydicom-data" / "JLSL_16_15_1_1F.dcm"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    ds = dcmread(src)
    ds.Columns = 65535
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = "1.2.3.17.1", "1.2.3.17.2", "CT"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    _aborts_gdcm_and_is_refused(buf.getvalue())
    with pytest.raises(PixelDataError, match="codestream is 128 x 128") as info:
        decode(dcmread(io.BytesIO(buf.getvalue())), "poison.dcm")
    assert info.value.reason == "inconsistent_pixel_header"
