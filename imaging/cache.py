"""Where derived files live: `RADASSIST_CACHE`, default ~/.cache/radassist (never in git).

Feature caches, the TorchScript export, knowledge-text embeddings and the case library are
all rebuilt from the data and the weights, so they share one root a user can move or wipe.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("RADASSIST_CACHE") or Path.home() / ".cache" / "radassist")
