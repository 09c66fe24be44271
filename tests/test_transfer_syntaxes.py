"""One transfer-syntax table for the decoder, the listener and the corpus checker."""

from __future__ import annotations

import zlib
from pathlib import Path

from fixtures_bridge import bridges_fixture  # noqa: F401 (the `bridges` fixture)
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pynetdicom import AE, _config

from imaging.conformance import LOSSLESS_SYNTAXES
from imaging.pixels import instance_frames
from pacs_bridge.ingest import read_instance
from pacs_bridge.service.scp import TRANSFER_SYNTAXES
from pacs_bridge.transfer_syntaxes import (
    DECODABLE,
    DEFLATED_IMAGE_FRAME,
    Codestream,
    transfer_syntax_of,
)


def test_the_listener_accepts_what_the_decoder_decodes():
    assert set(TRANSFER_SYNTAXES) == set(DECODABLE)
    assert LOSSLESS_SYNTAXES <= set(DECODABLE)
    for uid, syntax in DECODABLE.items():  # pydicom decodes all but the frame-wise deflate
        if syntax.codestream is not Codestream.DEFLATE:
            assert get_decoder(uid).is_available, uid


def test_a_dataset_built_in_memory_has_the_default_transfer_syntax():
    from pydicom.dataset import Dataset

    assert transfer_syntax_of(Dataset()) == "1.2.840.10008.1.2"


def test_deflated_image_frame_is_accepted_stored_and_decoded(bridges, tmp_path: Path):
    svc, _ = bridges()
    reference = Path(get_testdata_file("CT_small.dcm", download=False))
    ds = dcmread(reference)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    ds.PixelData = encapsulate([deflate.compress(ds.PixelData) + deflate.flush()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = DEFLATED_IMAGE_FRAME
    path = tmp_path / "dif.dcm"
    ds.save_as(path, enforce_file_format=True)
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(ds.SOPClassUID, [DEFLATED_IMAGE_FRAME])
    assoc = ae.associate("127.0.0.1", svc.scp.port, ae_title="BRIDGE")
    assert assoc.is_established and not assoc.rejected_contexts
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's encoded bytes unchanged
    try:
        status = assoc.send_c_store(path).Status
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked
        assoc.release()
    assert status == 0x0000
    spooled = svc.spool.study_dir(ds.StudyInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
    got = instance_frames(read_instance("dif.dcm", spooled.read_bytes()))
    want = instance_frames(read_instance("CT_small.dcm", reference.read_bytes()))
    assert got.shape == want.shape and (got == want).all()
