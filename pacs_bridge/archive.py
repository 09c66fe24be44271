"""Reading zip archives safely: in memory, never extracted, with limits checked before reading.

A zip from outside is hostile until proven otherwise: member names may climb out of the target
folder ("zip slip"), and a few kilobytes may declare gigabytes (a zip bomb). Members are read
into memory one at a time, so a path can never be written anywhere; the limits on entry count,
total declared size, per-member size and compression ratio are checked from the central
directory before any member is decompressed. `zipfile` itself never returns more bytes than a
member's declared size, so checking declared sizes bounds what is actually inflated.
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from common.errors import ArchiveSafetyError, CorruptFileError, UnsupportedError
from pacs_bridge.study import IngestWarning, Rejection

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"

_QUIET_SKIPS = ("__MACOSX/",)
_QUIET_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits for one archive; the defaults fit real studies (a CT of 2,000 slices is ~1 GiB)."""

    max_entries: int = 20_000
    max_total_bytes: int = 4 * 1024**3
    max_member_bytes: int = 2 * 1024**3
    max_ratio: float = 500.0  # uncompressed / compressed, per member above `ratio_floor`
    ratio_floor: int = 1024 * 1024  # small members may compress arbitrarily well


@dataclass(frozen=True)
class ZipMember:
    source: str  # "archive.zip!path/in/zip"
    name: str  # path inside the archive
    data: bytes


def is_zip(head: bytes) -> bool:
    return head[:4] in (ZIP_MAGIC, EMPTY_ZIP_MAGIC)


def unsafe_member_reason(name: str) -> str | None:
    """Why a member name could escape an extraction folder, or None if it is harmless."""
    normal = name.replace("\\", "/")
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(normal).parts:
        return "'..' in path"
    if "\x00" in normal:
        return "NUL in name"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_limits(label: str, infos: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    """Raise `ArchiveSafetyError` naming the archive and the limit it breaks."""
    if len(infos) > limits.max_entries:
        raise ArchiveSafetyError(
            label, f"{len(infos)} entries exceeds the limit of {limits.max_entries} entries"
        )
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > limits.max_member_bytes:
            raise ArchiveSafetyError(
                label,
                f"member {info.filename!r} declares {info.file_size:,} bytes, over the "
                f"per-member limit of {limits.max_member_bytes:,} bytes (zip bomb?)",
            )
        if info.file_size > limits.ratio_floor:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise ArchiveSafetyError(
                    label,
                    f"member {info.filename!r} compression ratio {ratio:,.0f}:1 exceeds the "
                    f"limit of {limits.max_ratio:,.0f}:1 (zip bomb?)",
                )
    if total > limits.max_total_bytes:
        raise ArchiveSafetyError(
            label,
            f"total uncompressed size {total:,} bytes exceeds the limit of "
            f"{limits.max_total_bytes:,} bytes (zip bomb?)",
        )


def iter_zip(
    label: str, file: str | Path | BinaryIO, limits: ArchiveLimits | None = None
) -> Iterator[ZipMember | Rejection | IngestWarning]:
    """Yield each safe member's bytes; unsafe or unreadable members become rejections.

    Raises `ArchiveSafetyError` (whole archive refused, nothing read) when a limit is broken,
    and `CorruptFileError` when the file is not a readable zip.
    """
    limits = limits or ArchiveLimits()
    try:
        zf = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(label, f"unreadable zip archive ({exc})") from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        check_limits(label, infos, limits)
        for info in infos:
            name = info.filename
            source = f"{label}!{name}"
            if name.startswith(_QUIET_SKIPS) or PurePosixPath(name).name in _QUIET_NAMES:
                continue
            reason = unsafe_member_reason(name)
            if reason is not None:
                yield Rejection(
                    source,
                    ArchiveSafetyError.reason,
                    f"unsafe member path ({reason}); skipped, nothing extracted",
                )
                continue
            if _is_symlink(info):
                yield Rejection(source, ArchiveSafetyError.reason, "symbolic link member; skipped")
                continue
            if info.flag_bits & 0x1:
                yield Rejection(source, UnsupportedError.reason, "encrypted member; skipped")
                continue
            try:
                with zf.open(info) as fh:
                    data = fh.read(info.file_size + 1)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
                yield Rejection(source, CorruptFileError.reason, f"unreadable zip member ({exc})")
                continue
            if len(data) > info.file_size:  # cannot happen with zipfile; kept as a guard
                raise ArchiveSafetyError(label, f"member {name!r} inflates past its declared size")
            if is_zip(data[:4]):
                yield IngestWarning(
                    "nested_archive", "zip inside a zip is not followed; skipped", source
                )
                continue
            yield ZipMember(source, name, data)
