"""The vision-language model: MONAI encoder, open_clip text coupling, heads, OOD.

`get_model(weights_dir=None)` loads the weights bundle once per folder and caches it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imaging.model.loaded import RadAssistModel

_CACHE: dict[Path, RadAssistModel] = {}
_LOCK = threading.Lock()


def get_model(weights_dir: str | Path | None = None) -> RadAssistModel:
    """The loaded model for `weights_dir` (default: `RADASSIST_WEIGHTS` or the repo's weights/)."""
    from imaging.model.loaded import RadAssistModel, default_weights_dir

    path = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    path = path.resolve()
    with _LOCK:
        if path not in _CACHE:
            _CACHE[path] = RadAssistModel(path)
        return _CACHE[path]


__all__ = ["get_model"]
