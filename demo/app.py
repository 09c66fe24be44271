"""The Gradio viewer: a radiologist view and a teaching tab, over `demo.callbacks`.

Only widget wiring lives here. Analytics are switched off before Gradio is imported, the
server binds 127.0.0.1 and never opens a share link, and the model is warmed up once at
start-up so a request never pays for imports or weight loading.
"""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import itertools  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from common.catalog import language_name, languages  # noqa: E402
from demo import callbacks as cb  # noqa: E402
from demo import quiz_ui, similar  # noqa: E402
from demo.header_panel import HEADER_COLUMNS  # noqa: E402
from demo.render import gallery_files, picture_file  # noqa: E402
from demo.teaching import TeachingLibrary, load_library  # noqa: E402

TITLE = "RadAssist — offline second read (research and teaching aid, not a medical device)"
LANGS = [(language_name(lang), lang) for lang in languages()]  # every catalogue
WARM_UP_PASSES = 3
# one model, one analysis at a time (its Grad-CAM hooks are shared); display stays parallel
MODEL_QUEUE = {"concurrency_limit": 1, "concurrency_id": "model"}
CSS = """
#main-image img {image-rendering: auto;}
.ai-draft {color: #b45309; font-weight: 600;}
"""


def example_files(library_dir: str | Path | None) -> list[list[list[str]]]:
    """Sample studies: pydicom's own test files always; a radiograph from the data folder."""
    out: list[list[list[str]]] = []
    try:
        from pydicom.data import get_testdata_file

        for name in ("CT_small.dcm", "MR_small.dcm"):
            path = get_testdata_file(name, download=False)
            if path:
                out.append([[str(path)]])
    except Exception:  # examples are a convenience, never a reason to fail start-up
        pass
    if library_dir:
        chest = Path(library_dir) / "dicom/conformance/fo-dicom/CR-MONO1-10-chest"
        if chest.is_file():
            out.append([[str(chest)]])
    return out


def pacs_destination() -> str:
    """Configured write-back destination (`RADASSIST_PACS`: AET@host:port or a DICOMweb URL)."""
    return os.environ.get("RADASSIST_PACS", "").strip()


def _synthetic_radiograph(path: Path) -> Path:
    """A smooth grey test image (no patient, no data file) for the warm-up request."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:256, 0:256].astype(np.float32)
    img = 60 + 120 * np.exp(-(((x - 128) / 70) ** 2 + ((y - 120) / 90) ** 2))
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def warm_up() -> None:
    """Everything a first request would otherwise pay for, once, off the request path:
    imports, the weights, the note's resources (knowledge base, text model, case library),
    and torch's first-run kernel set-up for the forward pass and for Grad-CAM's backward
    pass (see bench/demo_latency.py)."""
    import tempfile

    cb._parts()
    try:
        from imaging.model import get_model

        model = get_model()
    except Exception:  # no weights: the viewer says so when asked to analyse
        return
    try:
        import numpy as np
        import torch

        from imaging.model.preprocess import to_input
        from imaging.notes.compose import default_resources

        default_resources()
        with tempfile.TemporaryDirectory(prefix="radassist-warm-") as tmp:
            path = str(_synthetic_radiograph(Path(tmp) / "warm-up.png"))
            # several passes: one left the next few real requests at 2-10 s (measured)
            for _ in range(WARM_UP_PASSES):
                state = cb.load_files([path])
                cb.analyse(state, cb.context_from_inputs(None, None, ""))
                model.gradcam(torch.stack([to_input(np.full((256, 256), 0.5, np.float32))]), 0)
    except Exception:  # warming is an optimisation; a failure shows up on first use
        pass


# ------------------------------------------------------------------ radiologist view handlers


def _view_updates(state: cb.ViewerState, index: int | None):
    """Slider ranges, presets and the first picture for a newly selected stack."""
    view = state.view(index)
    presets = [w.name for w in cb.window_options(view)]
    w = cb.default_window_for(view)
    lo, hi, max_width = cb.window_range(view)
    n = view.n_slices if view else 0
    k = n // 2
    center = round(w.center, 2) if w else 0.0
    width = round(w.width, 2) if w else 1.0
    img, caption = cb.render_view(state, index, k, center, width)
    findings = cb.finding_choices(state, index)
    return (
        gr.Slider(minimum=1, maximum=max(n, 2), value=k + 1, step=1, interactive=n > 1),
        gr.Dropdown(choices=presets, value=w.name if w else None),
        gr.Slider(minimum=lo, maximum=hi, value=center),
        gr.Slider(minimum=1, maximum=max_width, value=width),
        picture_file(img),
        caption,
        gr.Dropdown(choices=findings, value=findings[0] if findings else None),
    )


# Each upload (or Clear) starts a chain of events: ingest, view, header, analysis. A chain
# started for an older upload can still be queued behind the model when the next study
# arrives; its late steps must not paint the old study's picture or note over the new one.
_UPLOADS = itertools.count(1)
_ON_SCREEN: dict[str, int] = {}  # browser session -> upload_id of the study it shows


def _session(request) -> str:
    return str(getattr(request, "session_hash", "") or "")


def is_stale(state, request) -> bool:
    """This event belongs to an upload that is no longer the one on screen."""
    current = _ON_SCREEN.get(_session(request))
    return current is not None and getattr(state, "upload_id", 0) != current


def on_upload(files, request: gr.Request = None, progress=gr.Progress()):  # noqa: B008
    """Ingest the upload; the previous study's note and downloads are cleared at once."""
    upload_id = next(_UPLOADS)
    _ON_SCREEN[_session(request)] = upload_id
    paths = [getattr(f, "name", f) for f in (files or [])]
    cleared = ("", [], None, gr.Dropdown(choices=[], value=None), "")
    if not paths:
        return (cb.ViewerState(upload_id=upload_id), gr.Dropdown(choices=[], value=None), [],
                "", *cleared)
    state = cb.load_files(paths, progress=progress)
    state.upload_id = upload_id
    first = cb.first_image_index(state)
    choices = cb.view_choices(state)
    waiting = "_Analysing…_" if state.study is not None else ""
    return (
        state,
        gr.Dropdown(choices=choices, value=first if first is not None else None),
        gallery_files(cb.thumbnails(state)),
        cb.messages_markdown(state),
        waiting, [], None, gr.Dropdown(choices=[], value=None), "",
    )


def on_select(state, index, request: gr.Request = None):
    if is_stale(state, request):
        return tuple(gr.skip() for _ in range(7))
    return _view_updates(state, index)


def on_gallery_select(state, evt: gr.SelectData):
    images = [i for i, v in enumerate(state.views) if v.stack is not None]
    if evt is None or evt.index is None or evt.index >= len(images):
        return gr.Dropdown()
    return gr.Dropdown(value=images[evt.index])


def on_render(state, index, slice_no, center, width, invert, zoom, overlay, finding, opacity):
    k = int(slice_no or 1) - 1
    img, caption = cb.render_view(state, index, k, center, width, invert, zoom, overlay, finding,
                                  opacity)
    return picture_file(img), caption


def on_preset(state, index, name):
    cw = cb.preset_window(state, index, name)
    if cw is None:
        return gr.Slider(), gr.Slider()
    return gr.Slider(value=cw[0]), gr.Slider(value=cw[1])


def on_header(state, index, slice_no, show_phi, query, request: gr.Request = None):
    if is_stale(state, request):
        return gr.skip()
    return cb.header_table(state, index, int(slice_no or 1) - 1, bool(show_phi), query or "")


ANALYSE_OUTPUTS = 9


def on_analyse(state, index, age, sex, history, lang, library_dir,
               request: gr.Request = None, progress=gr.Progress()):  # noqa: B008
    if is_stale(state, request):  # queued for a study that has since been replaced
        return tuple(gr.skip() for _ in range(ANALYSE_OUTPUTS))
    context = cb.context_from_inputs(age, sex, history, lang)
    progress(0.05, desc="preparing")
    state = cb.analyse(state, context, progress=progress, index=index)
    if is_stale(state, request):  # replaced while the model ran: keep the new study's view
        return tuple(gr.skip() for _ in range(ANALYSE_OUTPUTS))
    progress(0.95, desc="rendering the note")
    files = cb.export_files(state)
    note_md = cb.note_markdown(state, lang)
    items = similar.differential_choices(state, lang)
    findings = cb.finding_choices(state, index)
    return (
        state,
        note_md,
        cb.observations_rows(state),
        gr.Dropdown(choices=items, value=items[0][1] if items else None),
        files or None,
        note_md,
        gr.Dropdown(choices=findings, value=findings[0] if findings else None),
        gr.Checkbox(interactive=bool(findings)),
        cb.messages_markdown(state),
    )


def on_language(state, lang):
    md = cb.note_markdown(state, lang)
    items = similar.differential_choices(state, lang)
    value = items[0][1] if items else None
    return md, gr.Dropdown(choices=items, value=value), md


def build_app(library_dir: str | Path | None = None, weights_dir: str | Path | None = None):
    """The whole UI. `library_dir` is the data folder holding `medpix/` (teaching library);
    `weights_dir` overrides where the model loads from (`RADASSIST_WEIGHTS`)."""
    if weights_dir:
        os.environ["RADASSIST_WEIGHTS"] = str(weights_dir)
    library: TeachingLibrary | None = load_library(str(library_dir)) if library_dir else None
    lib_dir = str(library_dir or "")
    destination = pacs_destination()

    with gr.Blocks(title="RadAssist", analytics_enabled=False) as app:
        gr.Markdown(f"## {TITLE}\n<span class='ai-draft'>Every note here is an "
                    f"{cb.AI_DRAFT}.</span>")
        lib_state = gr.State(lib_dir)
        with gr.Tabs():
            with gr.Tab("Radiologist view", id="viewer"):
                state = gr.State(cb.ViewerState())
                with gr.Row():
                    with gr.Column(scale=3, min_width=260):
                        files = gr.File(
                            label="DICOM files, a .zip (with or without DICOMDIR), or PNG/JPEG",
                            file_count="multiple",
                            elem_id="upload",
                        )
                        examples = example_files(library_dir)
                        if examples:
                            gr.Examples(examples, inputs=[files], label="Sample studies")
                        with gr.Accordion("Clinical context (optional)", open=False):
                            age = gr.Number(label="Age (years)", precision=0, elem_id="age")
                            sex = gr.Radio(["unknown", "female", "male"], value="unknown",
                                           label="Sex")
                            history = gr.Textbox(label="Indication / history", lines=2,
                                                 elem_id="history")
                        analyse_btn = gr.Button("Analyse again", variant="secondary")
                        messages = gr.Markdown(elem_id="messages")
                        series = gr.Dropdown(label="Series", choices=[], elem_id="series")
                        gallery = gr.Gallery(
                            object_fit="contain", label="Series browser", columns=3,
                            height=200, allow_preview=False, elem_id="thumbs")
                    with gr.Column(scale=5, min_width=360):
                        image = gr.Image(label="Image", type="numpy", interactive=False,
                                         buttons=["download", "fullscreen"],
                                         height=460, elem_id="main-image")
                        caption = gr.Markdown(elem_id="caption")
                        slice_no = gr.Slider(1, 2, value=1, step=1, label="Slice",
                                             elem_id="slice")
                        with gr.Row():
                            preset = gr.Dropdown(label="Window preset", choices=[],
                                                 elem_id="preset", scale=2)
                            invert = gr.Checkbox(label="Invert", elem_id="invert", scale=1)
                            zoom = gr.Slider(1, 4, value=1, step=0.25, label="Zoom",
                                             elem_id="zoom", scale=2)
                        with gr.Row():
                            center = gr.Slider(-1024, 3000, value=40, step=1, label="Window level",
                                               elem_id="level")
                            width = gr.Slider(1, 4000, value=400, step=1, label="Window width",
                                              elem_id="width")
                        with gr.Row():
                            overlay = gr.Checkbox(label="Saliency overlay", elem_id="overlay",
                                                  interactive=False)
                            finding = gr.Dropdown(label="Finding", choices=[],
                                                  elem_id="finding")
                            opacity = gr.Slider(0, 1, value=0.45, step=0.05, label="Opacity",
                                                elem_id="opacity")
                        with gr.Accordion("DICOM header", open=False):
                            with gr.Row():
                                show_phi = gr.Checkbox(label="Show patient-identifying fields",
                                                       value=False, elem_id="show-phi")
                                header_query = gr.Textbox(label="Filter (tag or attribute)",
                                                          elem_id="header-filter")
                            header = gr.Dataframe(headers=HEADER_COLUMNS, interactive=False,
                                                  elem_id="header", max_height=360)
                    with gr.Column(scale=5, min_width=360):
                        lang = gr.Radio(LANGS, value="en", label="Note language",
                                        elem_id="lang")
                        note = gr.Markdown(elem_id="note", container=True, min_height=120)
                        observations = gr.Dataframe(
                            headers=["modality", "kind", "observation", "probability"],
                            interactive=False, label="Observations (calibrated)",
                            elem_id="observations",
                        )
                        with gr.Column(variant="panel"):
                            ddx_item = gr.Dropdown(label="Differential item: evidence and a "
                                                   "similar teaching case", choices=[],
                                                   elem_id="ddx-item")
                            with gr.Row():
                                evidence = gr.Markdown(elem_id="evidence")
                                case_img = gr.Image(label="Similar teaching case",
                                                    interactive=False, height=220,
                                                    elem_id="similar-case")
                        downloads = gr.File(label="Downloads (JSON, Markdown, DICOM SR, "
                                            "secondary capture)", interactive=False,
                                            file_count="multiple", elem_id="downloads")
                        with gr.Row(visible=bool(destination)):
                            send_btn = gr.Button(f"Send to PACS ({destination})")
                            send_status = gr.Markdown()
                        with gr.Accordion("Review: accept, edit or reject", open=False):
                            edited = gr.Textbox(label="Edited note", lines=6,
                                                elem_id="edited")
                            with gr.Row():
                                accept_btn = gr.Button("Accept", variant="primary")
                                edit_btn = gr.Button("Save edit")
                                reject_btn = gr.Button("Reject", variant="stop")
                            review_status = gr.Markdown(elem_id="review-status")
                        similar_btn = gr.Button("Find similar cases", elem_id="find-similar")
                        similar_gallery = gr.Gallery(
                            object_fit="contain", label="Similar teaching cases", columns=4,
                            height=180, visible=library is not None)
                        similar_md = gr.Markdown()

            with gr.Tab("Teaching", id="teaching"):
                quiz_ui.build_teaching_tab(library, lib_dir)

        # ---- wiring: upload → select first stack → analyse (with progress)
        view_outputs = [slice_no, preset, center, width, image, caption, finding]
        render_inputs = [state, series, slice_no, center, width, invert, zoom, overlay,
                         finding, opacity]
        analyse_inputs = [state, series, age, sex, history, lang, lib_state]
        analyse_outputs = [state, note, observations, ddx_item, downloads, edited, finding,
                           overlay, messages]
        upload_outputs = [state, series, gallery, messages, note, observations, downloads,
                          ddx_item, review_status]
        files.change(on_upload, [files], upload_outputs).then(
            on_select, [state, series], view_outputs
        ).then(on_header, [state, series, slice_no, show_phi, header_query], [header]).then(
            on_analyse, analyse_inputs, analyse_outputs, **MODEL_QUEUE
        )
        analyse_btn.click(on_analyse, analyse_inputs, analyse_outputs, **MODEL_QUEUE)
        series.input(on_select, [state, series], view_outputs).then(
            on_header, [state, series, slice_no, show_phi, header_query], [header]
        )
        gallery.select(on_gallery_select, [state], [series]).then(
            on_select, [state, series], view_outputs
        ).then(on_header, [state, series, slice_no, show_phi, header_query], [header])
        preset.input(on_preset, [state, series, preset], [center, width])
        # .change also fires for typed numbers and programmatic updates (presets)
        for control in (slice_no, center, width, zoom, opacity):
            control.change(on_render, render_inputs, [image, caption],
                           trigger_mode="always_last", show_progress="hidden")
        for control in (invert, overlay, finding):
            control.input(on_render, render_inputs, [image, caption], show_progress="hidden")
        slice_no.change(on_header, [state, series, slice_no, show_phi, header_query], [header])
        show_phi.input(on_header, [state, series, slice_no, show_phi, header_query], [header])
        header_query.change(on_header, [state, series, slice_no, show_phi, header_query],
                            [header], trigger_mode="always_last", show_progress="hidden")
        lang.input(on_language, [state, lang], [note, ddx_item, edited])
        ddx_item.change(similar.on_ddx_item, [state, ddx_item, lang, lib_state],
                        [evidence, case_img])
        accept_btn.click(lambda s: cb.record_decision(s, "accept"), [state], [review_status])
        edit_btn.click(lambda s, t: cb.record_decision(s, "edit", t), [state, edited],
                       [review_status])
        reject_btn.click(lambda s: cb.record_decision(s, "reject"), [state], [review_status])
        send_btn.click(lambda s: cb.send_to_pacs(s, pacs_destination()), [state],
                       [send_status])
        similar_btn.click(similar.on_find_similar, [state, lib_state],
                          [similar_gallery, similar_md])
    return app


def launch(
    port: int = 7860,
    auth: tuple[str, str] | Callable[[str, str], bool] | None = None,
    library_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    prevent_thread_lock: bool = False,
):
    """Start the viewer on `host` (127.0.0.1 by default), never with a share link."""
    app = build_app(library_dir=library_dir)
    threading.Thread(target=warm_up, name="radassist-warm-up", daemon=True).start()
    app.queue(default_concurrency_limit=2)
    app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        share=False,
        inbrowser=False,
        show_error=False,
        ssr_mode=False,
        quiet=True,
        prevent_thread_lock=prevent_thread_lock,
        css=CSS,
        theme=gr.themes.Default(
            font=["system-ui", "Noto Sans CJK SC", "sans-serif"],
            font_mono=["DejaVu Sans Mono", "monospace"],
        ),
        footer_links=[],
    )
    return app
