"""What the viewer shows of a view: windows (header, presets, automatic), the rendered
picture with its overlay, thumbnails, the header table and the messages."""

from __future__ import annotations

import numpy as np

from demo import render
from demo.header_panel import header_rows
from demo.state import StackView, ViewerState
from imaging.types import SeriesAnalysis, Window

# ------------------------------------------------------------------ windows and rendering


def _full_range(array: np.ndarray) -> Window:
    lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
    return Window("full range", (lo + hi) / 2.0, max(hi - lo, 1.0))


RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "XR", "MG", "RF", "XA", "PX", "IO"})


def auto_window_name(modality: str) -> str:
    """The data-driven preset, named for what it is used as: MR and radiographs have no
    fixed physical scale, so their preset is the robust range of the image itself."""
    modality = (modality or "").upper()
    if modality == "MR":
        return "MR (auto)"
    if modality in RADIOGRAPH_MODALITIES:
        return "radiograph (auto)"
    return "auto"


def _auto(array: np.ndarray, name: str = "auto") -> Window:
    """The pixel package's 0.5-99.5 % window, at least one unit wide for the slider."""
    from imaging.pixels import auto_window

    win = auto_window(array, name)
    return Window(name, 0.5, 1.0) if win is None else Window(name, win.center, max(win.width, 1.0))


def _middle_header_windows(view: StackView) -> tuple[Window, ...]:
    """Header windows of the middle slice: a stack's own windows come from its first slice,
    which at the edge of a volume is often nearly empty (an MPRAGE's first slice says
    W 22 / L 11). MONOCHROME1 is left to the stack (its windows need the inversion pivot)."""
    uids = view.stack.sop_instance_uids
    if not uids:
        return ()
    uid = uids[len(uids) // 2]
    ds = next((i.dataset for i in view.series.instances if i.sop_instance_uid == uid), None)
    if ds is None or ds.get("PhotometricInterpretation") != "MONOCHROME2":
        return ()
    try:
        from imaging.pixels import header_windows

        return header_windows(ds)
    except Exception:
        return ()


def window_options(view: StackView | None) -> list[Window]:
    """Presets for a stack: the header's windows and the modality presets the pixel module
    attached (CT lung / mediastinum / bone / brain), then 'auto' and 'full range'."""
    if view is None or view.stack is None:
        return []
    seen: dict[str, Window] = {}
    for w in _middle_header_windows(view):
        seen.setdefault(w.name, w)
    for w in view.stack.windows:
        seen.setdefault(w.name, w)
    middle = view.stack.array[view.n_slices // 2]
    auto = _auto(middle, auto_window_name(view.stack.modality))
    for w in (auto, _full_range(view.stack.array)):
        seen.setdefault(w.name, w)
    return [w for w in seen.values() if w.name != "auto" or auto.name == "auto"]


def default_window_for(view: StackView | None) -> Window | None:
    """What is shown first: the header's own window, else soft tissue for CT, else auto."""
    options = {w.name: w for w in window_options(view)}
    header = [w for name, w in options.items() if name.startswith("header")]
    if header:
        return header[0]
    for name in ("mediastinum", "MR (auto)", "radiograph (auto)", "auto"):
        if name in options:
            return options[name]
    return next(iter(options.values()), None)


def preset_window(state: ViewerState, index: int | None, name: str) -> tuple[float, float] | None:
    """(center, width) of a named preset of the selected stack."""
    for w in window_options(state.view(index)):
        if w.name == name:
            return round(w.center, 2), round(w.width, 2)
    return None


def window_range(view: StackView | None) -> tuple[float, float, float]:
    """Slider limits (min, max, max width) in the stack's physical units."""
    if view is None or view.stack is None:
        return 0.0, 255.0, 512.0
    lo, hi = float(np.nanmin(view.stack.array)), float(np.nanmax(view.stack.array))
    span = max(hi - lo, 1.0)
    lo, hi, max_width = lo - 0.25 * span, hi + 0.25 * span, 2.0 * span
    for w in window_options(view):  # every preset must fit on the sliders
        lo, hi, max_width = min(lo, w.center), max(hi, w.center), max(max_width, w.width)
    return float(np.floor(lo)), float(np.ceil(hi)), float(np.ceil(max_width))


def series_analysis_for(state: ViewerState, view: StackView | None) -> SeriesAnalysis | None:
    if state.analysis is None or view is None:
        return None
    uid = view.series.series_instance_uid
    return next((s for s in state.analysis.series if s.series_instance_uid == uid), None)


def finding_choices(state: ViewerState, index: int | None) -> list[str]:
    """Findings of the selected stack that have a saliency map (overlay choices)."""
    sa = series_analysis_for(state, state.view(index))
    if sa is None:
        return []
    return list(dict.fromkeys(s.finding_code for s in sa.saliency))


def render_view(
    state: ViewerState,
    index: int | None,
    slice_index: int | None = None,
    center: float | None = None,
    width: float | None = None,
    invert: bool = False,
    zoom: float = 1.0,
    overlay: bool = False,
    finding: str | None = None,
    opacity: float = 0.45,
) -> tuple[np.ndarray | None, str]:
    """The image to show (RGB uint8) and a one-line caption.

    The saliency map belongs to the key slice it was computed on; on other slices the
    caption says so rather than showing a map in the wrong place.
    """
    view = state.view(index)
    if view is None:
        return None, "No study loaded."
    if view.stack is None:
        return None, f"{view.label}: no image to show. {view.note}".strip()
    n = view.n_slices
    k = n // 2 if slice_index is None else int(np.clip(int(slice_index), 0, n - 1))
    if center is None or width is None:
        w = default_window_for(view)
        center, width = (w.center, w.width) if w else (None, None)
    img = render.window_image(view.stack.array[k], center, width, invert)
    caption = f"{view.label} · slice {k + 1}/{n}"
    if center is not None and width is not None:
        caption += f" · W {width:g} / L {center:g}"
    bar = False
    if overlay:
        sa = series_analysis_for(state, view)
        maps = [s for s in (sa.saliency if sa else ()) if finding in (None, "", s.finding_code)]
        if not maps:
            caption += " · no saliency map for this series"
        elif maps[0].slice_index != k and n > 1:
            caption += f" · saliency is on slice {maps[0].slice_index + 1}"
        else:
            img = render.blend_saliency(img, maps[0].array, opacity)
            caption += f" · saliency: {maps[0].finding_code} ({maps[0].method})"
            if not np.nanmax(maps[0].array) > 0:
                caption += " — the map is empty (no attention above zero)"
            bar = True
    img = render.zoom_crop(render.to_rgb(img), zoom)
    img = render.upscale_for_display(img)
    if bar:
        img = render.with_colour_bar(img)
    if invert:
        caption += " · inverted"
    if zoom and zoom > 1:
        caption += f" · zoom {zoom:g}×"
    return img, caption


def thumbnails(state: ViewerState, size: int = 128) -> list[tuple[np.ndarray, str]]:
    """Middle slice of every stack, with its default window, for the series browser."""
    out = []
    for view in state.views:
        if view.stack is None:
            continue
        w = default_window_for(view)
        img = render.window_image(
            view.stack.array[view.n_slices // 2], w.center if w else None, w.width if w else None
        )
        out.append((render.thumbnail(img, size), view.label))
    return out


def view_choices(state: ViewerState) -> list[tuple[str, int]]:
    return [(v.label, i) for i, v in enumerate(state.views)]


def header_table(
    state: ViewerState,
    index: int | None,
    slice_index: int | None,
    show_phi: bool = False,
    query: str = "",
) -> list[list[str]]:
    """Header of the instance behind the shown slice; PHI masked unless asked."""
    view = state.view(index)
    if view is None:
        return []
    ds = None
    if view.stack is not None and view.stack.sop_instance_uids:
        k = int(np.clip(int(slice_index or 0), 0, len(view.stack.sop_instance_uids) - 1))
        uid = view.stack.sop_instance_uids[k]
        ds = next((i.dataset for i in view.series.instances if i.sop_instance_uid == uid), None)
    if ds is None and view.series.instances:
        ds = view.series.instances[0].dataset
    return header_rows(ds, show_phi=show_phi, query=query)


def messages_markdown(state: ViewerState) -> str:
    if not state.studies and not state.messages:
        return ""
    lines = []
    if state.studies:
        n_img = sum(v.n_slices for v in state.views)
        n_series = sum(len(s.series) for s in state.studies)
        what = f"{len(state.studies)} studies, " if len(state.studies) > 1 else ""
        lines.append(f"**Loaded:** {what}{n_series} series, {n_img} image(s)")
    lines += [f"- {m}" for m in state.messages]
    return "\n".join(lines)
