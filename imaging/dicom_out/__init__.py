"""DICOM objects sent back to the PACS: the note as TID 1500 SR, the key image as SC."""

from .sc import build_sc
from .sr import build_sr
from .uids import AI_DRAFT

__all__ = ["AI_DRAFT", "build_sc", "build_sr"]
