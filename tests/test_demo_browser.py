"""End-to-end: the viewer in headless Debian Chromium, driven by Playwright.

The app runs in its own process on 127.0.0.1 (a free port), exactly as `radassist demo`
starts it; screenshots go to artifacts/screenshots/ for a human to look at.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "artifacts" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing "
                       "(apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _analysis_available() -> bool:
    """The model's entry point and a complete weights bundle are both present."""
    try:
        import imaging
        from imaging.model.loaded import BUNDLE_FILES, default_weights_dir

        weights = default_weights_dir()
        return callable(imaging.analyze) and all((weights / f).is_file() for f in BUNDLE_FILES)
    except Exception:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    port = _free_port()
    root = Path(os.environ.get("RADASSIST_DATA", REPO.parent / "shared" / "data" / "dev"))
    library = root.resolve() if (root / "medpix").is_dir() else None
    env = {**os.environ, "RADASSIST_AUDIT": str(tmp / "audit.jsonl"),
           "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp / "gradio"),
           "PYTHONPATH": str(REPO)}
    code = (f"from demo.app import launch; launch(port={port}, "
            f"library_dir={str(library) if library else None!r})")
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("viewer did not start:\n" + (tmp / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    yield {"url": url, "library": library, "audit": tmp / "audit.jsonl"}
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    log.close()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            args=ARGS, viewport={"width": 1600, "height": 1150},
        )
        ctx.set_default_timeout(30_000)
        yield ctx
        ctx.close()


@pytest.fixture()
def page(browser_context, server):
    page = browser_context.new_page()
    page.goto(server["url"])
    page.wait_for_selector("#upload", timeout=60_000)
    yield page
    page.close()


def _wait_text(page, selector: str, pattern: str, timeout: float = 60.0) -> str:
    """Poll the text of `selector` until it matches the regex (Gradio updates async)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        loc = page.locator(selector)
        text = loc.first.inner_text() if loc.count() else ""
        if re.search(pattern, text):
            return text
        time.sleep(0.25)
    raise AssertionError(f"{selector} never matched {pattern!r}; last text: {text[:400]!r}")


def _image_src(page, component: str = "#main-image") -> str:
    return page.get_attribute(f"{component} img", "src") or ""


def _wait_image_loaded(page, other_than: str = "", timeout: float = 30.0,
                       component: str = "#main-image") -> None:
    """The component shows a new picture, fully decoded by the browser."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        src = _image_src(page, component)
        if src and src != other_than and page.evaluate(
            "(sel) => { const i = document.querySelector(sel + ' img');"
            " return !!i && i.complete && i.naturalWidth > 0; }", component
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"the picture in {component} never finished loading")


def _upload(page, *paths: str) -> None:
    """Replace the upload (the file widget otherwise adds to the files already there)."""
    clear = page.locator("#upload button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
        # the clear runs its own upload chain, which empties the view; let it finish first, or
        # its late steps can overwrite the new study's picture
        page.wait_for_selector("#main-image img", state="detached", timeout=120_000)
        page.wait_for_selector("#upload input[type=file]", state="attached")
    page.set_input_files("#upload input[type=file]", list(paths))
    page.wait_for_selector("#main-image img", timeout=60_000)


def test_upload_window_level_and_invert(page):
    _upload(page, get_testdata_file("CT_small.dcm"))
    _wait_text(page, "#caption", r"S1 CT .*W 400 / L 40")  # soft-tissue window first
    _wait_text(page, "#messages", r"Loaded: 1 series, 1 image")
    first = _image_src(page)
    # a preset from the dropdown
    page.click("#preset input")
    page.get_by_role("option", name="lung", exact=True).click()
    _wait_text(page, "#caption", r"W 1500 / L -600")
    lung = _image_src(page)
    assert lung != first
    # manual level typed into the slider's box
    level = page.locator("#level input[type=number]")
    level.fill("-300")
    level.press("Enter")
    _wait_text(page, "#caption", r"W 1500 / L -300")
    assert _image_src(page) != lung
    typed = _image_src(page)
    page.click("#invert input[type=checkbox]")
    _wait_text(page, "#caption", r"inverted")
    _wait_image_loaded(page, other_than=typed)
    page.screenshot(path=str(SHOTS / "viewer-window-level.png"), full_page=True)
    # the DICOM header hides the patient's name until asked
    page.get_by_text("DICOM header", exact=True).click()
    _wait_text(page, "#header", r"TransferSyntaxUID")
    page.fill("#header-filter textarea, #header-filter input", "Patient")
    masked = _wait_text(page, "#header", r"PatientName\s+PN\s+••• masked \(PHI\)")
    assert "CompressedSamples" not in masked and "TransferSyntaxUID" not in masked
    page.click("#show-phi input[type=checkbox]")
    _wait_text(page, "#header", r"PatientName\s+PN\s+CompressedSamples\^CT1")


def test_sample_study_from_pydicom_opens(page):
    """A fresh machine offers pydicom's own test files as example studies."""
    page.get_by_text("MR_small.dcm", exact=True).click()
    _wait_text(page, "#caption", r"S1 MR \(1 image\)")
    _wait_text(page, "#messages", r"Loaded: 1 series, 1 image")


def test_bad_upload_shows_a_readable_message(page, tmp_path):
    junk = tmp_path / "report.txt"
    junk.write_text("not an image")
    page.set_input_files("#upload input[type=file]", [str(junk)])
    text = _wait_text(page, "#messages", r"report\.txt")
    assert "not_dicom" in text and "Traceback" not in page.content()


def _overlay_candidates(library: Path | None) -> list[str]:
    """Radiographs likely to carry a finding the model maps (saliency is computed only for
    findings it reports): the CR chest of the corpus, then labelled validation images."""
    if library is None:
        return []
    out = [str(library / "dicom/conformance/fo-dicom/CR-MONO1-10-chest")]
    labels = library / "nih_cxr14/labels.csv"
    if labels.is_file():
        with labels.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["split"] == "val"
                    and re.search(r"Effusion|Pneumonia|Infiltration|Edema", r["finding_labels"])]
        out += [str(library / "nih_cxr14" / r["image"]) for r in rows[:4]]
    meta = library / "covid_cxr/metadata.csv"
    if meta.is_file():
        with meta.open(newline="", encoding="utf-8", errors="replace") as fh:
            rows = [r for r in csv.DictReader(fh) if r["split"] == "val"
                    and "COVID" in r["finding"] and r["modality"].strip().upper() != "CT"]
        out += [str(library / "covid_cxr" / r["image"]) for r in rows[:3]]
    return [p for p in out if Path(p).is_file()]


@pytest.mark.skipif(not _analysis_available(),
                    reason="no model: imaging.analyze or the weights bundle is missing")
def test_note_language_review_and_overlay(page, server):
    _upload(page, get_testdata_file("CT_small.dcm"))
    english = _wait_text(page, "#note", r"Draft imaging note", timeout=120)
    assert "AI draft — not reviewed by a physician" in english
    _wait_text(page, "#observations", r"modality")
    _wait_text(page, "#downloads", r"\.sr\s*\.dcm")
    page.locator("#lang label", has_text="中文").click()
    chinese = _wait_text(page, "#note", r"影像报告草稿")
    assert "AI 草稿" in chinese
    page.screenshot(path=str(SHOTS / "viewer-note-zh.png"), full_page=True)
    page.locator("#lang label", has_text="English").click()
    _wait_text(page, "#note", r"Draft imaging note")
    # accept: one de-identified line in the audit file
    page.get_by_text("Review: accept, edit or reject", exact=True).click()
    page.get_by_role("button", name="Accept", exact=True).click()
    _wait_text(page, "#review-status", r"Recorded 'accept'")
    record = json.loads(server["audit"].read_text().splitlines()[-1])
    assert record["decision"] == "accept" and "CompressedSamples" not in json.dumps(record)

    # saliency overlay with its colour bar, on the first radiograph the model maps
    for path in _overlay_candidates(server["library"]):
        before = _image_src(page)
        _upload(page, path)
        # one model queue: the picture may wait behind the previous study's analysis
        _wait_image_loaded(page, other_than=before, timeout=120)
        _wait_text(page, "#note", r"Draft imaging note", timeout=120)
        if not page.locator("#overlay input[type=checkbox]").is_enabled():
            continue
        width_before = page.evaluate(
            "() => document.querySelector('#main-image img').naturalWidth")
        shown = _image_src(page)
        page.locator("#overlay input[type=checkbox]").check()
        caption = _wait_text(page, "#caption", r"saliency: finding:")
        _wait_image_loaded(page, other_than=shown)
        width_after = page.evaluate(
            "() => document.querySelector('#main-image img').naturalWidth")
        assert width_after > width_before  # the colour bar is appended beside the image
        page.screenshot(path=str(SHOTS / "viewer-overlay.png"), full_page=True)
        page.locator("#overlay input[type=checkbox]").uncheck()
        _wait_text(page, "#caption", r"^(?!.*saliency)")
        assert "gradcam" in caption or "occlusion" in caption
        return
    pytest.skip("the model reported no finding (so no saliency map) on any candidate radiograph")


def test_quiz_question_scored_and_library_browsed(page, server):
    if server["library"] is None:
        pytest.skip("teaching library (RADASSIST_DATA with medpix/) not present")
    page.get_by_role("tab", name="Teaching").click()
    page.click("#quiz-next")
    _wait_text(page, "#quiz-question", r"History")
    _wait_image_loaded(page, component="#quiz-images")
    page.fill("#quiz-answer textarea", "pneumonia\nmeningioma\nlymphoma")
    page.click("#quiz-submit")
    _wait_text(page, "#quiz-reveal", r"Diagnosis:")
    _wait_text(page, "#quiz-score", r"hit@1|hit@5|not in your differential")
    _wait_text(page, "#quiz-tally", r"Session: 1 answered")
    model_note = _wait_text(page, "#quiz-model-note", r"model's draft", timeout=120)
    if _analysis_available():  # with weights the model's own note sits beside the case
        _wait_text(page, "#quiz-model-note", r"Draft imaging note", timeout=120)
    else:
        assert "Analysis" in model_note  # says plainly why there is no note
    page.screenshot(path=str(SHOTS / "teaching-quiz.png"), full_page=True)
    # browse the library by diagnosis and open a case
    page.get_by_role("tab", name="Browse library").click()
    page.fill("#browse-text textarea, #browse-text input", "glioblastoma")
    page.click("#browse-search")
    _wait_text(page, "#browse-table", r"(?i)glioblastoma")
    page.click("#browse-case input")
    page.get_by_role("option").first.click()
    _wait_text(page, "#browse-case-text", r"(?i)Diagnosis: .*glioblastoma")
    _wait_image_loaded(page, component="#browse-images")


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing address
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_viewer_listens_on_loopback_only(server):
    port = int(server["url"].rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(OSError), socket.create_connection((address, port), timeout=5):
        pass
