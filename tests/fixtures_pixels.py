"""Series straight from files for the pixel tests, independent of the ingest grouping.

The pixel code takes `pacs_bridge.study.Series`; building them here with plain pydicom
keeps these tests about pixels and geometry (ingest has its own tests).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pydicom

from pacs_bridge.study import Instance, InstanceKind, Series


def instance_from_file(path: Path) -> Instance:
    ds = pydicom.dcmread(path, force=True)
    number = ds.get("InstanceNumber")
    return Instance(
        source=str(path),
        sop_instance_uid=str(ds.get("SOPInstanceUID", path.name)),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        kind=InstanceKind.IMAGE,
        modality=str(ds.get("Modality", "")),
        instance_number=int(number) if number not in (None, "") else None,
        dataset=ds,
    )


def load_series(folder: Path) -> list[Series]:
    """Every series of the files under `folder` (recursive), instances in file-name order."""
    groups: dict[str, list[Instance]] = defaultdict(list)
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        inst = instance_from_file(path)
        groups[str(inst.dataset.get("SeriesInstanceUID", ""))].append(inst)
    return [
        Series(
            series_instance_uid=uid,
            modality=insts[0].modality,
            description=str(insts[0].dataset.get("SeriesDescription", "")),
            series_number=None,
            instances=tuple(insts),
        )
        for uid, insts in groups.items()
    ]
