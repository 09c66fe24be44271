"""The vision-language model: MONAI encoder, open_clip text coupling, heads, OOD.

`get_model(weights_dir=None)` loads the weights bundle once per folder and caches it, as
TorchScript (`runtime.RuntimeModel`: starts in a fraction of a second, no MONAI import);
`get_model(..., eager=True)` gives the MONAI / open_clip network itself (`loaded.RadAssistModel`)
for training, export and the tests that hold the two equal.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imaging.model.loaded import RadAssistModel
    from imaging.model.runtime import RuntimeModel

_CACHE: dict[tuple[Path, bool], RadAssistModel | RuntimeModel] = {}
_LOCK = threading.Lock()


def get_model(weights_dir: str | Path | None = None, *, eager: bool = False,
              progress=None) -> RadAssistModel | RuntimeModel:
    """The loaded model for `weights_dir` (default: `RADASSIST_WEIGHTS` or the repo's weights/).

    `progress(message)` is told when the one-off TorchScript export runs (about 15 s).
    """
    from imaging.model.loaded import RadAssistModel, default_weights_dir

    path = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    key = (path.resolve(), eager)
    with _LOCK:
        if key not in _CACHE:
            if eager:
                _CACHE[key] = RadAssistModel(key[0])
            else:
                from imaging.model.runtime import RuntimeModel

                _CACHE[key] = RuntimeModel(key[0], progress=progress)
        return _CACHE[key]


__all__ = ["get_model"]
