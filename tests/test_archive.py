"""Zip archives: real studies load from memory; zip slip, zip bombs and nesting are refused."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest

from pacs_bridge.archive import ArchiveLimits, check_limits, iter_zip, unsafe_member_reason
from pacs_bridge.errors import ArchiveSafetyError
from pacs_bridge.ingest import ingest, ingest_bytes

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_ingest import all_instances, bundled  # noqa: E402


def _zip(path: Path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_of_real_series_loads_in_memory(dicom_dir: Path, tmp_path: Path) -> None:
    series = sorted((dicom_dir / "volumes" / "SAG-anon_MR_brain_MPRAGE").glob("*.dcm"))[:20]
    archive = _zip(tmp_path / "study.zip", {f"study/{p.name}": p.read_bytes() for p in series})
    before = set(tmp_path.iterdir())
    result = ingest([archive])
    assert set(tmp_path.iterdir()) == before  # nothing extracted
    assert result.rejections == ()
    (study,) = result.studies
    (s,) = study.series
    assert len(s.instances) == 20
    assert all(i.source.startswith(f"{archive}!study/") for i in s.instances)
    # The same archive as an upload.
    uploaded = ingest_bytes("study.zip", archive.read_bytes())
    assert len(all_instances(uploaded)) == 20


def test_zip_shipped_in_corpus(dicom_dir: Path) -> None:
    result = ingest([dicom_dir / "conformance" / "fo-dicom" / "abd1.zip"])
    assert result.rejections == ()
    (study,) = result.studies
    (series,) = study.series
    assert series.modality == "MR" and len(series.instances) == 11


def test_zip_slip_members_are_refused_and_the_rest_loads(tmp_path: Path) -> None:
    good = bundled("MR_small.dcm").read_bytes()
    evil = bundled("CT_small.dcm").read_bytes()
    archive = _zip(
        tmp_path / "slip.zip",
        {
            "../../evil.dcm": evil,
            "/etc/evil.dcm": evil,
            "dir/../../evil2.dcm": evil,
            "C:\\evil.dcm": evil,
            "ok/mr.dcm": good,
        },
    )
    result = ingest([archive])
    assert len(all_instances(result)) == 1
    unsafe = [r for r in result.rejections if r.reason == "unsafe_archive"]
    assert len(unsafe) == 4
    assert all("nothing extracted" in r.message for r in unsafe)
    assert not (tmp_path.parent / "evil.dcm").exists()
    assert unsafe_member_reason("a/b/c.dcm") is None
    assert unsafe_member_reason("a/../../b") == "'..' in path"


def test_zip_bomb_ratio_is_refused_before_inflating(tmp_path: Path) -> None:
    # 32 MiB of zeros deflates to ~32 KiB: a 1000:1 ratio, over the default 500:1 limit.
    archive = _zip(tmp_path / "bomb.zip", {"zeros.dcm": b"\0" * (32 * 1024 * 1024)})
    assert archive.stat().st_size < 200_000
    result = ingest([archive])
    (rejection,) = result.rejections
    assert rejection.reason == "unsafe_archive"
    assert rejection.source == str(archive)
    assert "compression ratio" in rejection.message and "500:1" in rejection.message
    assert all_instances(result) == []


def test_zip_total_size_and_entry_limits(tmp_path: Path) -> None:
    members = {f"f{i}.bin": bytes(range(256)) * 40 for i in range(30)}  # 30 x 10 KiB
    archive = _zip(tmp_path / "many.zip", members, method=zipfile.ZIP_STORED)
    with pytest.raises(ArchiveSafetyError, match="exceeds the limit of 10 entries"):
        list(iter_zip(str(archive), archive, ArchiveLimits(max_entries=10)))
    with pytest.raises(ArchiveSafetyError, match="total uncompressed size") as info:
        list(iter_zip(str(archive), archive, ArchiveLimits(max_total_bytes=100_000)))
    assert str(archive) in str(info.value)
    result = ingest([archive], limits=ArchiveLimits(max_total_bytes=100_000))
    assert [r.reason for r in result.rejections] == ["unsafe_archive"]


def test_declared_multi_gigabyte_member_is_refused_from_the_directory() -> None:
    info = zipfile.ZipInfo("huge.dcm")
    info.file_size = 6 * 1024**3
    info.compress_size = 6 * 1024**3  # even stored (ratio 1) it is over the total limit
    with pytest.raises(ArchiveSafetyError, match="per-member limit"):
        check_limits("huge.zip", [info], ArchiveLimits())


def test_nested_zip_is_not_followed(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("mr.dcm", bundled("MR_small.dcm").read_bytes())
    archive = _zip(
        tmp_path / "outer.zip",
        {"inner.zip": inner.getvalue(), "ct.dcm": bundled("CT_small.dcm").read_bytes()},
    )
    result = ingest([archive])
    assert len(all_instances(result)) == 1
    assert [w.code for w in result.warnings] == ["nested_archive"]


def test_corrupt_zip_is_rejected(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "x.zip", {"a.dcm": bundled("MR_small.dcm").read_bytes()})
    broken = tmp_path / "broken.zip"
    broken.write_bytes(archive.read_bytes()[:200])
    result = ingest([broken])
    assert [r.reason for r in result.rejections] == ["corrupt"]
