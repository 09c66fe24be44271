"""Walking sources: folders, zips, DICOMDIRs, PNG/JPEG and uploads, and the public calls.

Each source is read exactly once (pixel data stays encoded; `imaging` decodes it lazily), so
ingest costs little more than the read itself. Every file, zip member and upload goes through
one sniff-and-dispatch (`_Run.read_object`); anything that cannot be read becomes a
`Rejection` carrying the reason code of its typed error: one bad file never stops the rest.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset

# The package, for `_read_dicom` and `_make_instance`: looked up there at each call, so that
# replacing `pacs_bridge.ingest._read_dicom` (as the tests do) affects every source.
import pacs_bridge.ingest as _package
from common.errors import IngestError, NotDicomError, RadAssistError
from pacs_bridge import dicomdir
from pacs_bridge.archive import ArchiveLimits, ZipMember, is_zip, iter_zip
from pacs_bridge.deid import Deidentifier, has_burned_in_annotation
from pacs_bridge.limits import time_budget
from pacs_bridge.plain_images import is_plain_image
from pacs_bridge.sop_classes import describe
from pacs_bridge.study import IngestResult, IngestWarning, Instance, InstanceKind, Rejection

from .group import group
from .read import _HEAD, _plain_instance

log = logging.getLogger("pacs_bridge.ingest")  # never log dataset values: they may be PHI

PROGRESS_THRESHOLD = 50


class _Run:
    """State of one ingest call: the queue of files, what was seen, and what came out."""

    def __init__(
        self, deidentify: bool | Deidentifier, limits: ArchiveLimits, image_modality: str
    ) -> None:
        self.instances: list[Instance] = []
        self.rejections: list[Rejection] = []
        self.warnings: list[IngestWarning] = []
        self.limits = limits
        self.image_modality = image_modality
        self.queue: deque[Path] = deque()
        self.seen: set[str] = set()
        self.explicit: set[str] = set()  # files named on the command line (not found by a walk)
        self.index_files: set[str] = set()  # directory files already read through a DICOMDIR
        self.store = dicomdir.DiskStore()  # shared folder listings for File ID lookups
        self.deidentifier: Deidentifier | None = None
        if isinstance(deidentify, Deidentifier):
            self.deidentifier = deidentify
        elif deidentify:
            self.deidentifier = Deidentifier()

    # -- bookkeeping

    def reject(self, exc: IngestError | RadAssistError, fallback_source: str) -> None:
        self.rejections.append(Rejection(exc.source or fallback_source, exc.reason, exc.message))

    def enqueue(self, path: Path) -> bool:
        key = os.path.abspath(path)  # no syscalls: resolve() would cost more than the read
        if key in self.seen:
            return False
        self.seen.add(key)
        self.queue.append(path)
        return True

    def add(self, inst: Instance) -> None:
        if self.deidentifier is not None:
            inst = self._deidentified(inst)
        self.instances.append(inst)

    def _deidentified(self, inst: Instance) -> Instance:
        """The same instance built from its de-identified dataset (description re-derived)."""
        ds = self.deidentifier.apply(inst.dataset, source=inst.source)
        found = list(inst.warnings)
        if has_burned_in_annotation(ds):
            found.append(
                IngestWarning(
                    "burned_in_annotation",
                    "pixels may show identifying text; de-identification does not clean pixels",
                    inst.source,
                )
            )
        return Instance(
            source=inst.source,
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=inst.sop_class_uid,
            kind=inst.kind,
            modality=inst.modality,
            instance_number=inst.instance_number,
            dataset=ds,
            description=""
            if inst.kind is InstanceKind.IMAGE
            else describe(ds, inst.kind, inst.sop_class_uid),
            warnings=tuple(found),
        )

    # -- sources

    def expand_argument(self, arg: str | Path) -> None:
        path = Path(arg)
        if not path.exists():
            self.rejections.append(Rejection(str(arg), "not_found", "no such file or folder"))
            return
        if path.is_dir():
            self.walk(path)
        elif not path.is_file():
            self._not_regular(path)
        else:
            self.explicit.add(os.path.abspath(path))
            self.enqueue(path)

    def _not_regular(self, path: Path) -> None:
        # a named pipe, socket or device: opening a pipe blocks until someone writes to it
        self.rejections.append(Rejection(str(path), "not_a_file",
                                         "not a regular file (a pipe, socket or device)"))

    def walk(self, path: Path) -> None:
        """Queue every file under a folder (sorted, hidden files skipped with one warning)."""
        hidden = 0
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    hidden += 1
                    continue
                if not (Path(root) / name).is_file():
                    self._not_regular(Path(root) / name)
                    continue
                self.enqueue(Path(root) / name)
        if hidden:
            self.warnings.append(
                IngestWarning("hidden_files_skipped", f"{hidden} hidden file(s) skipped", str(path))
            )

    def read_object(
        self,
        source: str,
        name: str,
        opener: Callable[[], contextlib.AbstractContextManager[BinaryIO]],
        *,
        what: str,
        zips: bool = True,
        directory: Callable[[Dataset], None],
        unreadable_directory: Callable[[RadAssistError], None] | None = None,
    ) -> int:
        """Sniff one object and read it: the one dispatch for files, zip members and uploads.

        A zip (when `zips`) has its members read; a PNG/JPEG is wrapped; a DICOM object
        becomes an instance or, when it is a directory file, goes to `directory`. An object
        that does not parse but looks like a directory file goes to `unreadable_directory`
        (when given). Any failure becomes a rejection of `source`; `what` names the kind of
        source in the log. Returns how many extra work items it added (zip members).
        """
        try:
            with opener() as fp:
                head = fp.read(_HEAD)
                fp.seek(0)
                if zips and is_zip(head):
                    return self.read_zip(source, fp)
                with time_budget(source, "reading"):  # a zip's members get one each
                    if is_plain_image(head):
                        self.add(_plain_instance(source, fp.read(), self.image_modality))
                        return 0
                    try:
                        ds, found = _package._read_dicom(source, fp, head)
                    except RadAssistError as exc:
                        fp.seek(0)
                        if unreadable_directory is None or not dicomdir.looks_like_dicomdir(
                            name, fp.read(1024)
                        ):
                            raise
                        unreadable_directory(exc)
                        return 0
                    if not dicomdir.is_dicomdir(ds):
                        self.add(_package._make_instance(source, ds, found))
                        return 0
            directory(ds)
        except RadAssistError as exc:
            self.reject(exc, source)
        except OSError as exc:
            self.rejections.append(Rejection(source, "unreadable", f"cannot read file ({exc})"))
        except Exception as exc:  # last line of defence: a crash here would lose the study
            log.error(
                "unexpected %s reading %s (details withheld: may hold PHI)",
                type(exc).__name__,
                what,
            )
            self.rejections.append(
                Rejection(source, "internal", f"unexpected {type(exc).__name__} while reading")
            )
        return 0

    def read_path(self, path: Path) -> int:
        """Read one file from disk; returns how many extra work items it added (zip members)."""
        if os.path.abspath(path) in self.index_files:
            return 0  # a lower-level directory file, already read through its DICOMDIR

        def unreadable(exc: RadAssistError) -> None:
            self.unusable_dicomdir(path, f"unreadable: {exc.message}")

        return self.read_object(
            str(path),
            path.name,
            lambda: open(path, "rb"),
            what="a file",
            directory=lambda ds: self.follow_dicomdir(path, ds),
            unreadable_directory=unreadable,
        )

    def read_zip(self, label: str, fp: BinaryIO) -> int:
        members: list[ZipMember] = []
        for item in iter_zip(label, fp, self.limits):
            if isinstance(item, Rejection):
                self.rejections.append(item)
            elif isinstance(item, IngestWarning):
                self.warnings.append(item)
            else:
                members.append(item)
        indexes: dict[str, Dataset] = {}
        for member in members:
            self.read_member(member, indexes)
        if indexes:  # every member is read anyway: the index only tells what is absent
            contents = {m.name: m.data for m in members}
            self.warnings.extend(dicomdir.check_archive(label, contents, indexes))
        return len(members)

    def read_member(self, member: ZipMember, indexes: dict[str, Dataset]) -> None:
        """Read one zip member; directory files go into `indexes`, checked once at the end."""

        def index(ds: Dataset) -> None:
            indexes[member.name] = ds

        def unreadable(exc: RadAssistError) -> None:
            self.warnings.append(
                IngestWarning(
                    "dicomdir_unreadable",
                    f"directory file unreadable ({exc.message}); every member is read anyway",
                    member.source,
                )
            )

        self.read_object(
            member.source,
            member.name,
            lambda: contextlib.nullcontext(io.BytesIO(member.data)),
            what="a zip member",
            zips=False,
            directory=index,
            unreadable_directory=unreadable,
        )

    def follow_dicomdir(self, path: Path, ds: Dataset) -> None:
        """Queue the files a DICOMDIR (and its lower-level directory files) reference.

        Missing references give one warning with a count. A DICOMDIR named on the command
        line that leads to no file is replaced by a walk of its folder. A DICOMDIR met while
        walking a folder only adds the warning: its files are in the walk already (`enqueue`
        drops the second sighting), and its lower-level directory files are skipped.
        """
        explicit = os.path.abspath(path) in self.explicit
        try:
            index = dicomdir.load(path, ds, store=self.store)
        except RadAssistError as exc:
            self.unusable_dicomdir(path, exc.message)
            return
        except Exception as exc:  # malformed records surface only when accessed
            self.unusable_dicomdir(path, f"records unreadable ({type(exc).__name__})")
            return
        self.index_files.update(os.path.abspath(p) for p in index.directory_files)
        if not index.usable:
            if explicit:
                why = f"none of its {index.references} referenced files found"
                self.unusable_dicomdir(path, why if index.references else "lists no files")
            elif index.references:
                self.warnings.append(index.missing_warning())
            return
        for target in index.files:
            self.enqueue(Path(target))
        warning = index.missing_warning()
        if warning is not None:
            self.warnings.append(warning)
        for bad in index.unreadable:
            self.warnings.append(
                IngestWarning(
                    "dicomdir_unreadable",
                    f"lower-level directory file unreadable ({bad.reason}); "
                    "read every file in its folder instead",
                    str(bad.path),
                )
            )
            self.walk(Path(bad.path).parent)

    def unusable_dicomdir(self, path: Path, why: str) -> None:
        """One warning; a DICOMDIR named on the command line is replaced by its folder."""
        if os.path.abspath(path) in self.explicit:
            self.warnings.append(
                IngestWarning(
                    "dicomdir_unusable",
                    f"{path.name} unusable ({why}); read every file in its folder instead",
                    str(path),
                )
            )
            self.walk(path.parent)
        else:  # met during a walk: its folder is being read already
            self.warnings.append(
                IngestWarning("dicomdir_unreadable", f"directory file ignored ({why})", str(path))
            )


# ---------------------------------------------------------------------------- public calls


def _progress(enabled: bool, total: int):
    if not enabled or total <= PROGRESS_THRESHOLD:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="ingest", leave=False)


def ingest(
    paths: Iterable[str | Path],
    *,
    deidentify: bool | Deidentifier = False,
    progress: bool = False,
    limits: ArchiveLimits | None = None,
    image_modality: str = "OT",
    keep_duplicates: bool = False,
) -> IngestResult:
    """Read files, folders (recursive), zips, DICOMDIRs and PNG/JPEG into studies.

    Never raises for a bad source: each becomes a `Rejection`. `deidentify` applies the
    PS3.15 Basic Profile with one consistent UID remap for the whole call (pass a
    `Deidentifier` to share one remap across calls or to fix its salt). `progress` shows a
    tqdm bar on stderr when there are more than 50 files. `limits` bounds zip archives;
    `image_modality` is the Modality given to wrapped PNG/JPEG; `keep_duplicates` keeps
    every copy of a repeated SOP Instance UID (see `group`).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    run = _Run(deidentify, limits or ArchiveLimits(), image_modality)
    for arg in paths:
        run.expand_argument(arg)
    bar = _progress(progress, len(run.queue))
    try:
        while run.queue:
            path = run.queue.popleft()
            extra = run.read_path(path)
            if bar is not None:
                if extra:
                    bar.total += extra
                bar.update(1 + extra)
    finally:
        if bar is not None:
            bar.close()
    studies = group(run.instances, run.warnings, keep_duplicates=keep_duplicates)
    return IngestResult(
        studies=studies, rejections=tuple(run.rejections), warnings=tuple(run.warnings)
    )


def ingest_bytes(
    name: str,
    data: bytes,
    *,
    deidentify: bool | Deidentifier = False,
    limits: ArchiveLimits | None = None,
    image_modality: str = "OT",
) -> IngestResult:
    """Ingest an upload held in memory: one DICOM file, a zip, or a PNG/JPEG image."""
    run = _Run(deidentify, limits or ArchiveLimits(), image_modality)
    source = f"upload:{name}"

    def alone(ds: Dataset) -> None:
        raise NotDicomError(
            source,
            "a DICOMDIR alone has no images; upload a zip of the whole media",
            reason="dicomdir",
        )

    run.read_object(
        source,
        name,
        lambda: contextlib.nullcontext(io.BytesIO(data)),
        what="an upload",
        directory=alone,
    )
    studies = group(run.instances, run.warnings)
    return IngestResult(
        studies=studies, rejections=tuple(run.rejections), warnings=tuple(run.warnings)
    )
