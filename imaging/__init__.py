"""Pixels and models: `analyze(study, context) -> Analysis` is the entry point.

`analyze` is imported lazily so that `import imaging` stays cheap (no torch, no MONAI).
"""

from __future__ import annotations

from typing import Any

__all__ = ["analyze"]


def __getattr__(name: str) -> Any:
    if name == "analyze":
        from imaging.analyze import analyze

        globals()["analyze"] = analyze  # the function, not the submodule of the same name
        return analyze
    raise AttributeError(f"module 'imaging' has no attribute {name!r}")
