"""Uncertainty bands for calibrated probabilities, and how the note rounds them.

Observations, and differential items' calibrated probability of being the diagnosis: "likely"
at 0.70 or more, "possible" from 0.30 to below 0.70, "indeterminate" below 0.30 — the same
cut-offs shown to the reader in the note itself.
"""

from __future__ import annotations

LIKELY, POSSIBLE = 0.70, 0.30


def band(probability: float) -> str:
    """The uncertainty band of a calibrated probability (cut-offs in the module docstring)."""
    if probability >= LIKELY:
        return "likely"
    if probability >= POSSIBLE:
        return "possible"
    return "indeterminate"


def rounded(x: float) -> float:
    """A probability, score or similarity as the note stores it (4 decimals)."""
    return round(float(x), 4)
