"""How pixel data is encoded: the transfer syntaxes we decode (and therefore accept), the
transfer syntax of a dataset, and where its pixel data is.

`DECODABLE` is the one table of transfer syntaxes. The pixel decoder (`imaging.pixels.decode`)
refuses any other as "unsupported_transfer_syntax" and picks its header checks by
`codestream`; the DICOM listener (`pacs_bridge.service.scp`) offers exactly these, so nothing
is acknowledged that cannot then be decoded; the corpus checker (`imaging.conformance`)
demands identical values from the `lossless` ones and a PSNR bar from the others.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

DEFLATED_IMAGE_FRAME = UID("1.2.840.10008.1.2.8.1")  # 2024; pydicom 3.0 has no decoder

# PixelData, FloatPixelData, DoubleFloatPixelData
PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


class Codestream(enum.Enum):
    """What one frame of pixel data holds: tells which header checks can run before decoding."""

    NATIVE = "native"  # uncompressed values (a deflated dataset is inflated when read)
    JPEG = "jpeg"  # JPEG and JPEG-LS: rows, columns, components in the SOF segment
    J2K = "j2k"  # JPEG 2000 and HTJ2K: the same in the SIZ segment
    RLE = "rle"  # RLE segments: sizes unknowable before decoding
    DEFLATE = "deflate"  # each frame deflated: sizes unknowable before inflating


@dataclass(frozen=True)
class TransferSyntax:
    uid: UID
    lossless: bool  # decoded values are exactly the encoder's input, whatever the encoder
    codestream: Codestream
    decoder: str  # what decodes it here: why it is in the table


_NATIVE = "pydicom's native decoder"
_LIBJPEG = "pylibjpeg-libjpeg"
_CHARLS = "pyjpegls (CharLS), pylibjpeg-libjpeg"
_OPENJPEG = "pylibjpeg-openjpeg"

DECODABLE: dict[UID, TransferSyntax] = {
    s.uid: s
    for s in (
        TransferSyntax(ExplicitVRLittleEndian, True, Codestream.NATIVE, _NATIVE),
        TransferSyntax(ImplicitVRLittleEndian, True, Codestream.NATIVE, _NATIVE),
        TransferSyntax(DeflatedExplicitVRLittleEndian, True, Codestream.NATIVE, _NATIVE),
        TransferSyntax(ExplicitVRBigEndian, True, Codestream.NATIVE, _NATIVE),
        TransferSyntax(JPEGBaseline8Bit, False, Codestream.JPEG, f"pillow, {_LIBJPEG}"),
        TransferSyntax(JPEGExtended12Bit, False, Codestream.JPEG, f"pillow (8 bit), {_LIBJPEG}"),
        TransferSyntax(JPEGLossless, True, Codestream.JPEG, _LIBJPEG),
        TransferSyntax(JPEGLosslessSV1, True, Codestream.JPEG, _LIBJPEG),
        TransferSyntax(JPEGLSLossless, True, Codestream.JPEG, _CHARLS),
        TransferSyntax(JPEGLSNearLossless, False, Codestream.JPEG, _CHARLS),
        TransferSyntax(JPEG2000Lossless, True, Codestream.J2K, _OPENJPEG),
        TransferSyntax(JPEG2000, False, Codestream.J2K, _OPENJPEG),  # may be lossy
        TransferSyntax(HTJ2KLossless, True, Codestream.J2K, _OPENJPEG),
        TransferSyntax(HTJ2KLosslessRPCL, True, Codestream.J2K, _OPENJPEG),
        TransferSyntax(HTJ2K, False, Codestream.J2K, _OPENJPEG),  # may be lossy
        TransferSyntax(
            RLELossless, True, Codestream.RLE, "pydicom's RLE decoder; 1-bit data frame by frame"
        ),
        TransferSyntax(
            DEFLATED_IMAGE_FRAME, True, Codestream.DEFLATE, "zlib, frame by frame, in the decoder"
        ),
    )
}


def declared_transfer_syntax(ds: Dataset) -> UID | None:
    """The Transfer Syntax UID of the dataset's file meta, or None when there is none."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(tsyntax)) if tsyntax else None


def transfer_syntax_of(ds: Dataset) -> UID:
    """The declared transfer syntax, else the one the dataset was read in.

    A dataset built in memory, or read without telling, gets the DICOM default (implicit VR
    little endian).
    """
    declared = declared_transfer_syntax(ds)
    if declared is not None:
        return declared
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little in (True, None) else ExplicitVRBigEndian


def pixel_data_tag(ds: Dataset) -> int | None:
    """The tag of the dataset's (integer, float or double float) pixel data, or None."""
    return next((tag for tag in PIXEL_DATA_TAGS if tag in ds), None)


def has_pixel_data(ds: Dataset) -> bool:
    return pixel_data_tag(ds) is not None


def float_bits(ds: Dataset) -> int | None:
    """32 or 64 for float or double float pixel data (whatever Bits Allocated says), else None."""
    if 0x7FE00008 in ds:
        return 32
    return 64 if 0x7FE00009 in ds else None
