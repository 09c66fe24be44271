"""The notes' uncertainty bands: defined once in `imaging.bands`, which the evaluation's
prediction lines use too (it may not import the notes)."""

from ..bands import LIKELY, POSSIBLE, band, rounded

__all__ = ["LIKELY", "POSSIBLE", "band", "rounded"]
