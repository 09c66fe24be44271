"""What composing reads besides the analysis: the knowledge view, the model's text tower, the
teaching-case library, the ranking weights, the calibration and the paediatric measurement."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from ..ddx import rank as ddx_rank
from ..ddx.calibration import Calibration, load_calibration
from ..ddx.knowledge_view import KnowledgeView, load_view
from .context import PaediatricMeasurement


@dataclasses.dataclass(frozen=True)
class Resources:
    """What composing reads besides the analysis; injectable for tests."""

    view: KnowledgeView
    model: object | None = None  # has encode_text(list[str]) and .version, or None
    library: object | None = None  # imaging.cases.CaseLibrary or None
    weights: ddx_rank.Weights | None = None  # None: the tuned defaults
    # P(item is the diagnosis) and the measured hit rates; None: items are not calibrated
    calibration: Calibration | None = None
    # accuracy measured on paediatric validation images; None: not measured
    paediatric: PaediatricMeasurement | None = None

    @property
    def ranking_weights(self) -> ddx_rank.Weights:
        return self.weights or ddx_rank.DEFAULT_WEIGHTS


def _default_model():
    try:
        from ..model import get_model  # type: ignore[attr-defined]

        return get_model()
    except Exception:  # noqa: BLE001 - no weights yet: the note says the term is missing
        return None


@lru_cache(maxsize=1)
def default_resources() -> Resources:
    from ..cases.store import default_library

    model = _default_model()
    weights_dir = getattr(model, "weights_dir", None)
    return Resources(view=load_view(), model=model, library=default_library(),
                     calibration=load_calibration(weights_dir),
                     paediatric=PaediatricMeasurement.load(weights_dir))
