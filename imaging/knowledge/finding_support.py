"""Add the CT/MR finding heads' codes to the `supported_by` of entries whose features name them.

    python -m imaging.knowledge.finding_support weights/models/findings_ctmr.npz

The ranking hears an image finding only through an entry's `supported_by`. Rather than tag
665 entries by hand, each CT/MR entry's English typical-features text is read with the same
negation-aware patterns that labelled the training images (`training.findings_text`), so a
glioblastoma ("ring-enhancing mass ... vasogenic oedema") is supported by
`finding:enhancement`, `finding:mass` and `finding:oedema`. Only the heads the bundle keeps
are added; existing codes and file formatting (indent) are kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .findings_text import mentions

DIAGNOSES = Path(__file__).resolve().parent / "diagnoses"


def add_support(names: tuple[str, ...], folder: Path = DIAGNOSES) -> int:
    """Add `finding:<name>` codes; returns how many were added."""
    added = 0
    for path in sorted(folder.glob("*.json")):
        raw = path.read_text()
        indent = len(raw.splitlines()[1]) - len(raw.splitlines()[1].lstrip())
        entries = json.loads(raw)
        for e in entries:
            if not set(e.get("modalities", ())) & {"CT", "MR"}:
                continue
            found = mentions(" . ".join(e["features"]["en"]), names)
            for name in sorted(found):
                code = f"finding:{name}"
                if code not in e["supported_by"]:
                    e["supported_by"].append(code)
                    added += 1
        path.write_text(json.dumps(entries, indent=indent, ensure_ascii=False) + "\n")
    return added


def main() -> int:
    with np.load(sys.argv[1]) as z:
        names = tuple(str(n) for n in z["names"])
    print(add_support(names), "codes added for", names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
