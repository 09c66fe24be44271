"""The viewer's callbacks on real DICOM files, without a browser."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from demo import callbacks as cb
from demo import render
from demo.header_panel import MASK, header_rows
from demo.quiz_ui import QuizState, next_question, submit_answer
from demo.teaching import (
    CaseImage,
    Tally,
    TeachingCase,
    TeachingLibrary,
    score_differential,
    simple_match,
    split_items,
)
from imaging.types import Analysis, Saliency, SeriesAnalysis

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")


@pytest.fixture(scope="module")
def ct_state() -> cb.ViewerState:
    return cb.load_files([CT])


def test_upload_dicom_gives_series_and_image(ct_state):
    assert ct_state.study is not None
    assert [v.stack is not None for v in ct_state.views] == [True]
    assert "CT" in ct_state.views[0].label
    img, caption = cb.render_view(ct_state, 0)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert min(img.shape[:2]) >= 384  # the 128² slice is enlarged for the screen
    assert img.std() > 10  # a real picture, not a blank frame
    assert "slice 1/1" in caption
    thumbs = cb.thumbnails(ct_state)
    assert len(thumbs) == 1 and max(thumbs[0][0].shape[:2]) <= 128


def test_ct_presets_and_default_window(ct_state):
    names = [w.name for w in cb.window_options(ct_state.views[0])]
    for preset in ("lung", "mediastinum", "bone", "brain", "auto", "full range"):
        assert preset in names
    assert cb.default_window_for(ct_state.views[0]).name == "mediastinum"
    assert cb.preset_window(ct_state, 0, "lung") == (-600.0, 1500.0)
    lo, hi, max_width = cb.window_range(ct_state.views[0])
    for w in cb.window_options(ct_state.views[0]):
        assert lo <= w.center <= hi and 1 <= w.width <= max_width


def test_mr_and_radiograph_presets(tmp_path):
    mr = cb.load_files([MR])
    assert "MR (auto)" in [w.name for w in cb.window_options(mr.views[0])]
    assert "lung" not in [w.name for w in cb.window_options(mr.views[0])]
    assert cb.auto_window_name("CR") == cb.auto_window_name("DX") == "radiograph (auto)"


def test_window_level_changes_pixels(ct_state):
    lung, _ = cb.render_view(ct_state, 0, 0, -600, 1500)
    bone, caption = cb.render_view(ct_state, 0, 0, 400, 1800)
    assert not np.array_equal(lung, bone)
    assert "W 1800 / L 400" in caption
    narrow, _ = cb.render_view(ct_state, 0, 0, 40, 80)
    # a narrow window saturates more pixels to pure black or white
    assert np.isin(narrow[..., 0], (0, 255)).mean() > np.isin(bone[..., 0], (0, 255)).mean()


def test_invert_and_zoom(ct_state):
    plain, _ = cb.render_view(ct_state, 0, 0, 40, 400)
    inverted, _ = cb.render_view(ct_state, 0, 0, 40, 400, invert=True)
    # enlarged with bilinear interpolation, so equal up to rounding
    assert np.abs(inverted.astype(int) - (255 - plain.astype(int))).max() <= 1
    zoomed, caption = cb.render_view(ct_state, 0, 0, 40, 400, zoom=2.0)
    assert zoomed.shape == plain.shape and not np.array_equal(zoomed, plain)
    assert "zoom 2×" in caption


def test_header_masks_phi_by_default(ct_state):
    ds = pydicom.dcmread(CT)
    name = str(ds.PatientName)
    rows = cb.header_table(ct_state, 0, 0)
    text = json.dumps(rows)
    assert name and name not in text
    assert ["(0010,0010)", "PatientName", "PN", MASK] in rows
    assert any(r[1] == "Modality" and r[3] == "CT" for r in rows)  # the rest stays readable
    only_patient = cb.header_table(ct_state, 0, 0, query="patient")
    assert only_patient and all("patient" in r[1].lower() for r in only_patient)
    assert name not in json.dumps(only_patient)
    shown = header_rows(ds, show_phi=True)
    assert any(r[1] == "PatientName" and r[3] == name for r in shown)


def test_bad_files_give_readable_messages(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("this is not an image")
    truncated = get_testdata_file("MR_truncated.dcm")
    state = cb.load_files([str(junk), truncated, CT])
    text = cb.messages_markdown(state)
    assert "notes.txt" in text and "Traceback" not in text
    assert state.study is not None  # the good file still loads
    empty = cb.load_files([str(junk)])
    assert empty.study is None
    assert "No readable study" in cb.messages_markdown(empty)
    img, caption = cb.render_view(empty, 0)
    assert img is None and caption == "No study loaded."


def test_zip_png_and_two_studies(tmp_path):
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(CT, "a/ct.dcm")
        zf.write(MR, "b/mr.dcm")
    state = cb.load_files([str(archive)])
    assert len(state.studies) == 2
    assert sorted(v.series.modality for v in state.views) == ["CT", "MR"]
    assert all(v.label.startswith("Study ") for v in state.views)
    png = tmp_path / "chest.png"
    buf = io.BytesIO()
    Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (64, 1))).save(buf, "PNG")
    png.write_bytes(buf.getvalue())
    plain = cb.load_files([str(png)])
    img, _ = cb.render_view(plain, 0)
    assert img is not None and img.shape[0] >= 64


def _fake_analysis(state: cb.ViewerState) -> Analysis:
    view = state.views[0]
    n_rows, n_cols = view.stack.array.shape[1:3]
    sal = np.zeros((n_rows, n_cols), np.float32)
    sal[: n_rows // 2, : n_cols // 2] = 1.0  # hot upper-left quadrant
    sa = SeriesAnalysis(
        series_instance_uid=view.series.series_instance_uid, header_modality="CT", n_images=1,
        key_slice=0, observations=(), quality_score=1.0, out_of_distribution=False,
        saliency=(Saliency("finding:test", 0, "gradcam", sal),),
        source_sop_instance_uids=view.stack.sop_instance_uids[:1],
        key_image=np.zeros((n_rows, n_cols), np.uint8),
    )
    return Analysis(state.study.study_instance_uid, (sa,), "test")


def test_saliency_overlay_colours_hot_area_and_adds_bar():
    state = cb.load_files([CT])
    state.analysis = _fake_analysis(state)
    assert cb.finding_choices(state, 0) == ["finding:test"]
    plain, _ = cb.render_view(state, 0, 0, 40, 400)
    over, caption = cb.render_view(state, 0, 0, 40, 400, overlay=True,
                                   finding="finding:test", opacity=0.6)
    assert over.shape[1] == plain.shape[1] + render.BAR_WIDTH  # the colour bar
    assert over.shape[0] == plain.shape[0]
    h, w = plain.shape[:2]
    hot = over[: h // 2 - 4, : w // 2 - 4].astype(int)
    cold = over[h // 2 + 4 :, w // 2 + 4 : w].astype(int)
    # red dominates where the map is hot; the cold area keeps (almost) grey pixels
    assert (hot[..., 0] - hot[..., 2]).mean() > 60
    assert abs(cold[..., 0] - cold[..., 2]).mean() < 40
    assert "saliency: finding:test" in caption
    faint, _ = cb.render_view(state, 0, 0, 40, 400, overlay=True, finding="finding:test",
                              opacity=0.1)
    assert (faint[: h // 2 - 4, : w // 2 - 4, 0].astype(int)
            - faint[: h // 2 - 4, : w // 2 - 4, 2]).mean() < (hot[..., 0] - hot[..., 2]).mean()


def test_colourise_is_monotone_from_blue_to_red():
    ramp = render.colourise(np.array([0.0, 1.0]))
    assert ramp[0, 2] > ramp[0, 0] and ramp[1, 0] > ramp[1, 2]


def test_context_from_inputs():
    ctx = cb.context_from_inputs("63", "female", "  cough  ", "zh")
    assert (ctx.age, ctx.sex, ctx.history, ctx.lang) == (63, "F", "cough", "zh")
    blank = cb.context_from_inputs(None, "unknown", None)
    assert (blank.age, blank.sex, blank.history, blank.lang) == (None, None, "", "en")
    assert cb.context_from_inputs("999", None, "").age is None


def test_audit_record_is_deidentified(tmp_path, ct_state):
    state = cb.load_files([CT])
    assert cb.record_decision(state, "accept", path=tmp_path / "a.jsonl").startswith("Nothing")
    state.analysis = _fake_analysis(state)
    path = tmp_path / "audit" / "audit.jsonl"
    msg = cb.record_decision(state, "edit", "Edited: no acute finding.", path=path)
    assert msg.startswith("Recorded 'edit'")
    cb.record_decision(state, "reject", path=path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["decision"] for r in records] == ["edit", "reject"]
    assert records[0]["edited_note"] == "Edited: no acute finding."
    assert records[0]["timestamp"].endswith("+00:00")
    raw = path.read_text()
    ds = pydicom.dcmread(CT)
    assert str(ds.PatientName) not in raw and ds.StudyInstanceUID not in raw
    assert records[0]["study"] == records[1]["study"]  # a stable one-way pseudonym


# ------------------------------------------------------------------ teaching and quiz


def _case(diagnosis: str, title: str = "") -> TeachingCase:
    return TeachingCase(
        case_id="MPX0", title=title or diagnosis, diagnosis=diagnosis, history="", exam="",
        findings="", differential_text="", discussion="", region="Head", location="", age="",
        sex="", split="val", images=(CaseImage(Path("x.jpg"), "MR", "Axial", "", "val"),),
    )


def test_split_items():
    assert split_items("1. Meningioma\n2) Schwannoma; metastasis, lymphoma") == (
        "Meningioma", "Schwannoma", "metastasis", "lymphoma")


def test_quiz_scoring_hits():
    case = _case("Adenocarcinoma of the Lung")
    first = score_differential("lung adenocarcinoma; pneumonia", case)
    assert (first.rank, first.hit1, first.hit5) == (1, True, True)
    third = score_differential("pneumonia\nlymphoma\nadenocarcinoma of the lung", case)
    assert (third.rank, third.hit1, third.hit5) == (3, False, True)
    late = score_differential("a1; b2; c3; d4; e5; lung adenocarcinoma", case)
    assert (late.rank, late.hit5) == (6, False)
    miss = score_differential("mass", case)
    assert miss.rank is None and not miss.hit5
    tally = Tally().add(first).add(third).add(miss)
    assert (tally.answered, tally.hit1, tally.hit5) == (3, 1, 2)
    assert "hit@1 1/3" in tally.text() and "hit@5 2/3" in tally.text()


def test_simple_match_fallback():
    assert simple_match("lung adenocarcinoma", "Adenocarcinoma of the Lung")
    assert simple_match("meningioma", "Atypical meningioma")
    assert not simple_match("mass", "Left upper lobe collapse from small cell lung carcinoma")
    assert not simple_match("", "Meningioma")


def test_quiz_flow_on_the_library(data_dir):
    library = TeachingLibrary.load(data_dir)
    assert library is not None and len(library) > 100
    order = library.quiz_order()
    assert order == library.quiz_order()  # seeded: same sequence every time
    assert all(library.get(c).split == "val" for c in order)
    quiz, images, question = next_question(QuizState(), library)
    case = library.get(quiz.case_id)
    assert quiz.case_id == order[0] and "History" in question
    assert images.ndim == 3 and images.shape[0] == 360  # the case's images, side by side
    assert case.diagnosis not in question
    quiz, reveal, score, tally = submit_answer(quiz, library, f"foo\n{case.diagnosis}")
    assert case.diagnosis in reveal and "hit@5" in score
    assert quiz.tally.answered == 1 and quiz.tally.hit5 == 1 and quiz.tally.hit1 == 0
    again = submit_answer(quiz, library, "something else")[0]
    assert again.tally == quiz.tally  # one case is scored once
    quiz, *_ = next_question(quiz, library)
    assert quiz.case_id == order[1] and not quiz.answered
    head_mr = library.browse("Head", "MR", "")
    assert head_mr and all(c.region == "Head" and "MR" in c.modalities for c in head_mr)


def test_note_languages_downloads_and_evidence_with_the_real_composer(tmp_path):
    """A hand-made Analysis through the real `compose`, renderers and DICOM writers."""
    from demo import similar
    from imaging.notes import compose

    state = cb.load_files([CT])
    state.analysis = _fake_analysis(state)
    state.context = cb.context_from_inputs(60, "male", "cough")
    state.note = compose(state.analysis, state.context)
    english, chinese = cb.note_markdown(state, "en"), cb.note_markdown(state, "zh")
    assert cb.AI_DRAFT in english and "AI 草稿" in chinese and english != chinese
    files = cb.export_files(state)
    names = sorted(Path(f).name.split(".", 1)[1] for f in files)
    assert names == ["en.md", "json", "sc.dcm", "sr.dcm", "zh.md"], state.messages
    sr = pydicom.dcmread(next(f for f in files if f.endswith(".sr.dcm")))
    assert sr.Modality == "SR" and sr.StudyInstanceUID == state.study.study_instance_uid
    assert str(pydicom.dcmread(CT).PatientName) not in Path(files[0]).read_text()
    choices = similar.differential_choices(state, "en")
    assert choices and choices[0][0].startswith("1. ")
    evidence = similar.evidence_markdown(state, choices[0][1], "en")
    assert "Supporting:" in evidence
    assert similar.differential_choices(state, "zh")[0][0] != choices[0][0]
    # the audit record keeps the note but no UID of the study and no identifier in free text
    state.context = cb.context_from_inputs(95, "male", "Seen by Dr Smith on 03/04/2021")
    state.note = compose(state.analysis, state.context)
    audit = tmp_path / "audit.jsonl"
    cb.record_decision(state, "edit", f"Agree. {state.study.study_instance_uid}", path=audit)
    raw = audit.read_text()
    record = json.loads(raw)
    assert record["note"]["sections"] and "AI draft" in raw
    for uid in (state.study.study_instance_uid, state.views[0].series.series_instance_uid):
        assert uid not in raw
    assert "Smith" not in raw and "03/04/2021" not in raw
    assert "age 95" not in raw and "年龄 95" not in raw and "age 90+" in raw
    # the context section's own wording, and its JSON item, say 90+ too
    assert "Age: 95" not in raw and "年龄：95" not in raw
    assert record["note"]["context"][0] == {
        "key": "age", "value": "90+", "source": "user",
        "text": record["note"]["context"][0]["text"]}
    assert "95" not in json.dumps(record["note"]["context"])


def test_send_to_pacs_by_c_store(tmp_path):
    """SR and SC reach a real DICOM storage SCP (pynetdicom) on 127.0.0.1."""
    import socket

    from pynetdicom import AE, AllStoragePresentationContexts, evt

    from imaging.notes import compose

    received = []

    def on_store(event):
        received.append(event.dataset)
        return 0x0000

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scp = AE(ae_title="TESTPACS")
    scp.supported_contexts = AllStoragePresentationContexts
    server = scp.start_server(("127.0.0.1", port), block=False,
                              evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        state = cb.load_files([CT])
        assert "Nothing to send" in cb.send_to_pacs(state, f"TESTPACS@127.0.0.1:{port}")
        state.analysis = _fake_analysis(state)
        state.note = compose(state.analysis, state.context)
        cb.export_files(state)
        assert cb.send_to_pacs(state, "").startswith("No PACS destination")
        assert "expected AET@host:port" in cb.send_to_pacs(state, "TESTPACS@nowhere")
        message = cb.send_to_pacs(state, f"TESTPACS@127.0.0.1:{port}")
        assert message.startswith("Sent 2 object(s)"), message
    finally:
        server.shutdown()
    sop_classes = sorted(ds.SOPClassUID.name for ds in received)
    assert sop_classes == ["Comprehensive 3D SR Storage", "Secondary Capture Image Storage"]
    assert all(ds.StudyInstanceUID == state.study.study_instance_uid for ds in received)


def test_find_similar_cases_from_a_text_library(data_dir, tmp_path, monkeypatch):
    """A text-only case library built from the real MedPix train split, searched by history."""
    from demo import similar
    from imaging.cases.library import build

    db = tmp_path / "cases.sqlite"
    assert build(data_dir, db) > 100
    monkeypatch.setenv("RADASSIST_LIBRARY", str(db))
    state = cb.load_files([CT])
    state.context = cb.context_from_inputs(None, None, "")
    gallery, text = similar.find_similar(state, str(data_dir))
    assert gallery == [] and "type a clinical history" in text
    state.context = cb.context_from_inputs(70, "male", "sudden left sided weakness and aphasia")
    gallery, text = similar.find_similar(state, str(data_dir))
    library = TeachingLibrary.load(data_dir)
    ids = [line.split("**")[1] for line in text.splitlines()]
    assert len(ids) == 8 and all(library.get(i).split == "train" for i in ids)
    assert gallery and all(img.ndim == 3 for img, _ in gallery)
    # what Gradio gets: the same pictures as lossless PNG files, captions unchanged
    files, same_text = similar.on_find_similar(state, str(data_dir))
    assert same_text == text and [c for _, c in files] == [c for _, c in gallery]
    for (path, _), (img, _) in zip(files, gallery, strict=True):
        assert path.endswith(".png")
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), img)


def test_cli_demo_rejects_a_bad_login(capsys):
    from radassist_cli.main import main

    assert main(["demo", "--auth", "no-colon"]) == 2
    assert "expected USER:PASS" in capsys.readouterr().err


def test_slice_slider_on_a_stack(tmp_path):
    """Five slices of a CT series (CT_small moved along z, each with its own content)."""
    from pydicom.uid import generate_uid

    base = pydicom.dcmread(CT)
    series_uid = generate_uid()
    for k in range(5):
        ds = pydicom.dcmread(CT)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        x, y, z = (float(v) for v in base.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 5.0 * k]
        pixels = base.pixel_array.copy()
        pixels[: 16 * (k + 1), :] = pixels.min()  # a growing dark band marks the slice
        ds.PixelData = pixels.tobytes()
        ds.save_as(tmp_path / f"slice{k}.dcm")
    state = cb.load_files(sorted(str(p) for p in tmp_path.glob("slice*.dcm")))
    assert [v.n_slices for v in state.views] == [5]
    first, caption = cb.render_view(state, 0, 0, 40, 400)
    last, last_caption = cb.render_view(state, 0, 4, 40, 400)
    assert "slice 1/5" in caption and "slice 5/5" in last_caption
    assert not np.array_equal(first, last)
    assert cb.render_view(state, 0, 99, 40, 400)[1].count("slice 5/5") == 1  # clamped
    uids = {r[3] for r in cb.header_table(state, 0, 4) if r[1] == "SOPInstanceUID"}
    assert uids == {state.views[0].stack.sop_instance_uids[4]}  # header follows the slice


def test_a_replaced_uploads_late_chain_does_not_paint_over_the_new_study():
    """Upload A, then B before A's analysis ran: A's queued view and analysis steps change
    nothing (no old picture, no old note over B); B's own steps run."""
    import gradio as gr

    from demo import app

    session = type("Request", (), {"session_hash": "tab-1"})()
    other_tab = type("Request", (), {"session_hash": "tab-2"})()
    state_a = app.on_upload([get_testdata_file("CT_small.dcm")], session)[0]
    state_b = app.on_upload([get_testdata_file("MR_small.dcm")], session)[0]
    assert state_a.upload_id != state_b.upload_id
    skipped = gr.skip()
    assert all(out == skipped for out in app.on_select(state_a, 0, session))
    assert app.on_header(state_a, 0, 1, False, "", session) == skipped
    late = app.on_analyse(state_a, 0, 60, "F", "", "en", "", session,
                          progress=lambda *a, **k: 0)
    assert len(late) == app.ANALYSE_OUTPUTS and all(out == skipped for out in late)
    assert state_a.analysis is None and state_a.note is None  # the model never ran for A
    picture_b = app.on_select(state_b, 0, session)[4]
    assert Path(picture_b).is_file()  # B's picture is drawn
    # another browser tab is a separate session: A is current there
    app.on_upload([get_testdata_file("CT_small.dcm")], other_tab)
    assert app.is_stale(state_a, other_tab)  # an older upload, even in that tab
    assert not app.is_stale(state_b, session)


def test_pictures_are_lossless_files_named_by_content():
    """Same picture, same file (written once, atomically); another picture, another file."""
    from demo.render import picture_file

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    first, again = picture_file(img), picture_file(img.copy())
    assert first == again and first.endswith(".png")
    assert np.array_equal(np.asarray(Image.open(first)), img)  # lossless
    other = img.copy()
    other[0, 0] ^= 1
    assert picture_file(other) != first
    assert picture_file(None) is None
    assert not list(Path(first).parent.glob("*.tmp"))


def test_old_pictures_are_pruned_but_recent_ones_stay():
    import os

    from demo import render

    rng = np.random.default_rng(1)
    old = render.picture_file(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    os.utime(old, (0, 0))  # rendered long ago
    recent = [render.picture_file(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
              for _ in range(50)]  # at least one pruning pass runs
    assert not Path(old).exists()
    assert all(Path(p).exists() for p in recent)
