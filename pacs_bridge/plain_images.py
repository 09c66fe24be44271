"""PNG and JPEG files wrapped as a one-image Secondary Capture study, for teaching use.

A photo of a film or an exported screenshot has no DICOM header, no geometry and no patient.
Wrapping it as a Secondary Capture Image lets everything downstream handle a single type.
UIDs are derived from the SHA-1 of the file bytes, so the same file always becomes the
same study (and therefore the same note), and no clock value is written into the object.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from common.errors import CorruptFileError, NotDicomError, UnsupportedError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
PLAIN_IMAGE_WARNING = "plain image: no DICOM geometry or patient data"
MAX_PIXELS = 100_000_000  # a photo of a film is far below; larger is a decompression bomb


def is_plain_image(head: bytes) -> bool:
    return head.startswith(PNG_MAGIC) or head.startswith(JPEG_MAGIC)


def _uid(digest: str, what: str) -> str:
    return generate_uid(entropy_srcs=["radassist plain image", digest, what])


def plain_study_uid(data: bytes) -> str:
    """The Study Instance UID a plain image file becomes, without decoding it."""
    return _uid(hashlib.sha1(data).hexdigest(), "study")


def _to_array(source: str, data: bytes) -> tuple[np.ndarray, str, int]:
    """Pixels, photometric interpretation and bits allocated for the SC object."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise UnsupportedError(
                    source, f"image of {img.width}x{img.height} pixels is over the limit"
                )
            img.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise UnsupportedError(source, f"image too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise NotDicomError(source, "neither DICOM nor a readable PNG/JPEG image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(source, f"broken or truncated image ({exc})") from exc
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise UnsupportedError(source, f"image values out of 16-bit range (mode {mode})")
        return arr.astype(np.uint16), "MONOCHROME2", 16
    if mode in ("1", "L", "LA"):
        return np.asarray(img.convert("L"), dtype=np.uint8), "MONOCHROME2", 8
    if mode == "F":
        raise UnsupportedError(source, "floating-point images are not supported")
    return np.asarray(img.convert("RGB"), dtype=np.uint8), "RGB", 8


def wrap_plain_image(source: str, data: bytes, *, modality: str = "OT") -> Dataset:
    """A Secondary Capture dataset (with file meta) holding the image's pixels uncompressed.

    Built with pydicom rather than highdicom's `SCImage`, because `SCImage` requires a patient
    orientation, and a plain image has none: the header must not claim what nobody knows.
    """
    digest = hashlib.sha1(data).hexdigest()
    pixels, photometric, bits = _to_array(source, data)
    sop_uid = _uid(digest, "instance")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = FileDataset(source, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = _uid(digest, "study")
    ds.SeriesInstanceUID = _uid(digest, "series")
    ds.PatientName = ""
    ds.PatientID = f"IMG-{digest[:12]}"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.StudyDescription = "Plain image"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.SeriesDescription = "Plain image (no DICOM header)"
    ds.ConversionType = "WSD"  # workstation: the image was made outside any modality
    ds.Manufacturer = "radassist (plain image wrapper)"
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.ImageComments = f"Wrapped from a plain image file, SHA-1 {digest}"
    ds.BurnedInAnnotation = "YES"  # unknown: a photo or screenshot may show anything
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    ds.PhotometricInterpretation = photometric
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    return ds
