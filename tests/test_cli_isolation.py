"""The command-line paths carry on past a file that kills its process (issue 17).

`radassist ingest-check` checks each file in a child (`imaging.conformance.check_corpus`):
a file whose decoding aborts the child is a rejection with reason "decoder_crashed" naming
the signal, and the files after it are checked. `radassist analyze` analyses in a child; when
it dies, a screening child finds the file that kills a decoder, which is reported as skipped,
and the study is analysed without it. The abort here is real: the per-file
function decodes the issue's poison file with GDCM in the child's own process, as
`imaging.pixels` did before it refused such files (GDCM throws, the child gets SIGABRT).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pydicom.data
import pytest
from pydicom import dcmread

from imaging.conformance import _check_in_child, check_corpus
from pacs_bridge.ingest import ingest

FILES = Path(pydicom.data.__file__).parent / "test_files"


def gdcm_then_check(path: str, keep: bool):
    """In the checking child: the poison goes to GDCM unguarded first (it aborts)."""
    if "poison" in Path(path).name:
        from pydicom.pixels import get_decoder
        from pydicom.pixels.utils import as_pixel_options

        ds = dcmread(path)
        get_decoder(ds.file_meta.TransferSyntaxUID).as_array(
            ds, decoding_plugin="gdcm", **as_pixel_options(ds))
    return _check_in_child(path, keep)


def _poison(out: Path) -> Path:
    ds = dcmread(FILES / "MR_small_jpeg_ls_lossless.dcm")
    ds.Columns = 65535  # the codestream's SOF55 says 64: GDCM throws, uncaught
    ds.save_as(out, enforce_file_format=True)
    return out


def test_ingest_check_reports_a_file_that_killed_its_checker_and_carries_on(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(FILES / "CT_small.dcm", folder / "a-ct.dcm")
    _poison(folder / "m-poison.dcm")
    shutil.copy(FILES / "MR_small_jpeg_ls_lossless.dcm", folder / "z-mr.dcm")
    report = check_corpus([folder], check_in_child=gdcm_then_check)
    by_name = {Path(f.path).name: f for f in report.files}
    assert list(by_name) == ["a-ct.dcm", "m-poison.dcm", "z-mr.dcm"]
    poison = by_name["m-poison.dcm"]
    assert (poison.status, poison.reason) == ("rejected", "decoder_crashed")
    assert "SIGABRT" in poison.message
    assert by_name["a-ct.dcm"].status == by_name["z-mr.dcm"].status == "decoded"
    assert report.summary()["crashes"] == 0
    # without the unguarded GDCM the same file is refused by the header checks, typed
    plain = {Path(f.path).name: f for f in check_corpus([folder]).files}["m-poison.dcm"]
    assert (plain.status, plain.reason) == ("rejected", "inconsistent_pixel_header")


def test_named_pipes_are_skipped_not_opened(tmp_path):
    """Opening a FIFO blocks until someone writes to it: ingest-check and ingest hung."""
    folder = tmp_path / "with-pipe"
    folder.mkdir()
    shutil.copy(FILES / "CT_small.dcm", folder / "ct.dcm")
    os.mkfifo(folder / "pipe.dcm")
    assert [Path(f.path).name for f in check_corpus([folder], isolate=False).files] == ["ct.dcm"]
    result = ingest([folder])
    assert len(result.studies) == 1
    assert [(Path(r.source).name, r.reason) for r in result.rejections] == [
        ("pipe.dcm", "not_a_file")]
    assert ingest([folder / "pipe.dcm"]).rejections[0].reason == "not_a_file"


def _gdcm_if_poison(path: str, exclude: frozenset[str]) -> None:
    """In a child: every image of the input whose file is named poison goes to GDCM first,
    unguarded (it aborts the process), as imaging.pixels did before it refused such files."""
    from pydicom.pixels import get_decoder
    from pydicom.pixels.utils import as_pixel_options

    for p in sorted(Path(path).rglob("*poison*")):
        if str(p) in exclude:
            continue
        ds = dcmread(p)
        get_decoder(ds.file_meta.TransferSyntaxUID).as_array(
            ds, decoding_plugin="gdcm", **as_pixel_options(ds))


def analyse_with_unguarded_gdcm(path, context, fmt, lang, want_objects, exclude):
    from radassist_cli.cmd_analyze import analyse_path

    _gdcm_if_poison(path, exclude)
    return analyse_path(path, context, fmt, lang, want_objects, exclude)


def screen_with_unguarded_gdcm(path, exclude, marker):
    from radassist_cli.cmd_analyze import decode_each

    for p in sorted(Path(path).rglob("*poison*")):
        if str(p) not in exclude:
            Path(marker).write_text(str(p))  # as decode_each does before each image
            _gdcm_if_poison(path, exclude)
    decode_each(path, exclude, marker)


@pytest.mark.skipif(not (Path(__file__).resolve().parent.parent / "weights" / "models"
                         / "model.pt").is_file(), reason="weights/models/model.pt not there")
def test_analyze_reports_the_file_that_killed_its_process_and_analyses_the_rest(tmp_path):
    """The CLI's path for a decoder that aborts: the analysis child dies (SIGABRT), a
    screening child finds the file, and the study is analysed without it."""
    from fixtures_bridge import make_study, write_files

    from imaging.types import ClinicalContext
    from radassist_cli.cmd_analyze import run_isolated

    folder = tmp_path / "study"
    normal = make_study(3, seed="cli-poison")
    write_files(normal, folder)
    _poison(folder / "poison.dcm")
    out = run_isolated(str(folder), ClinicalContext(), "json", "en", True,
                       analyse=analyse_with_unguarded_gdcm, screen=screen_with_unguarded_gdcm)
    assert [(Path(s).name, r) for s, _, r in out.skipped] == [("poison.dcm", "decoder_crashed")]
    assert "SIGABRT" in out.skipped[0][1]
    note = json.loads(out.text)
    assert note["study_instance_uid"] == str(normal[0].StudyInstanceUID)
    assert len(out.objects) >= 1  # the SR of the three readable slices
