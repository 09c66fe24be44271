"""The evaluation's Markdown table: every metric, the model beside each baseline, with
intervals and the number of images and cases behind it."""

from __future__ import annotations

import re


def _fmt(m) -> str:
    if isinstance(m, dict) and "value" in m:
        if m["value"] is None:
            return "n/a"
        lo, hi = m["ci95"]
        return f"{m['value']:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{m['value']:.3f}"
    return "n/a"


TABLE_KEYS = ("medpix.modality_acc", "medpix.region_acc", "medpix.plane_acc",
              "medpix.caption_recall@10", "nih_cxr14.pneumonia_auroc", "nih_cxr14.ece",
              "covid_cxr.covid_auroc")


BASELINES = ("majority", "pixels32_logreg", "effnet_linear_probe")
_DDX_BASELINE_KEY = re.compile(r"^baselines\.medpix\.ddx_(.+?)_((?:hit@\d+|overlap).*)$")


def _is_metric(m) -> bool:
    return isinstance(m, dict) and "value" in m


def _units(m) -> str:
    """'images / cases' behind a metric: what its interval resamples."""
    if not _is_metric(m) or not m.get("n"):
        return ""
    return f"{m['n']} / {m['groups']}" if "groups" in m else str(m["n"])


def _natural(key: str) -> list:
    """Sort key putting hit@5 before hit@10."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", key)]


def _ddx_table(result: dict) -> list[str]:
    """The differential task: one row a metric, its baselines beside the model (a baseline
    key `baselines.medpix.ddx_<name>_<metric>` goes in column <name> of `medpix.ddx_<metric>`)."""
    rows: dict[str, dict[str, object]] = {}
    names: list[str] = []
    for key in sorted(result):
        if not _is_metric(result[key]) or "ddx_" not in key:
            continue
        match = _DDX_BASELINE_KEY.match(key)
        if match:
            name, metric = match.groups()
            names += [name] if name not in names else []
            rows.setdefault(f"medpix.ddx_{metric}", {})[name] = result[key]
        elif key.startswith("medpix.ddx_"):
            rows.setdefault(key, {})["model"] = result[key]
    if not rows:
        return []
    cols = ["model", *names]
    lines = ["", "| differential metric | " + " | ".join(cols) + " | cases |",
             "|" + "---|" * (len(cols) + 2)]
    for key, cells in sorted(rows.items(), key=lambda kv: _natural(kv[0])):
        unit = next((str(cells[c].get("n", "")) for c in cols if c in cells), "")
        lines.append(f"| {key} | " + " | ".join(_fmt(cells.get(c)) for c in cols) + f" | {unit} |")
    return lines


def markdown_table(result: dict) -> str:
    """The model and every baseline side by side, one row a metric, each with its interval."""
    base = result.get("baselines") or {}
    names = [n for n in BASELINES if n in base]
    header = "| metric | model | " + " | ".join(names) + (" | " if names else "") + \
        "images / cases |"
    lines = [header, "|" + "---|" * (3 + len(names))]
    if not any(key in result for key in TABLE_KEYS):  # the differential task alone
        lines = []
    for key in TABLE_KEYS:
        if key not in result:
            continue
        cells = [_fmt(result[key])] + [_fmt(base[n].get(key)) for n in names]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {_units(result[key])} |")
    by_view = result.get("nih_cxr14.pneumonia_auroc_by_view") or {}
    for view, m in by_view.items():
        cells = [_fmt(m)] + [_fmt((base[n].get("nih_cxr14.pneumonia_auroc_by_view") or {})
                                  .get(view)) for n in names]
        lines.append(f"| nih_cxr14.pneumonia_auroc ({view} only) | " + " | ".join(cells)
                     + f" | {_units(m)} |")
    lines += _ddx_table(result)[0 if lines else 1:]
    lines.append("")
    if "medpix.caption_recall@10" in result:
        lines.append(f"caption recall@10 chance: {result['medpix.caption_recall@10']['chance']}")
    floor = result.get("nih_cxr14.ece_perfect_calibration")
    if isinstance(floor, dict) and "median" in floor:
        lines.append(f"ECE a perfectly calibrated model would show with these probabilities on "
                     f"{floor['n']} images: median {floor['median']:.3f} (90% of draws "
                     f"{floor['p05']:.3f}-{floor['p95']:.3f}; <= 0.05 in "
                     f"{floor['share_at_or_below_0.05']:.0%})")
    if "medpix.plane_excluded" in result:
        lines.append(f"plane: {result['medpix.plane_excluded']['count']} images excluded "
                     f"(montage/other/not specified/3D/photograph...)")
    trained = result.get("baselines_trained_on")
    if names and isinstance(trained, dict):
        lines.append(f"baselines trained on the {trained['split']} split of "
                     f"{trained['data_dir']} ({trained['images']} images), scored on the "
                     f"{result.get('split')} split of {result.get('data_dir')}")
    if isinstance(base, dict) and "skipped" in base:
        lines.append(f"baselines skipped: {base['skipped']}")
    if "intervals" in result:
        lines.append(f"intervals: {result['intervals']}")
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines)
