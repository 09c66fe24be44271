"""Series-level wording: warnings in the note's language and the one-line study summary.

Warnings are produced deep in pixels and analysis as "code: English detail". The English
note keeps the detail; the Chinese note says what the code means in Chinese, with the
numbers of the detail kept in brackets, so a Chinese reader is never handed English.
"""

from __future__ import annotations

import re
from collections import Counter

from ..types import Analysis, SeriesAnalysis
from .note import SeriesItem, Text
from .strings import observation_label, t, tt

WARNING_ZH: dict[str, str] = {
    "skipped_instance": "有实例无法解码，已跳过",
    "mixed_orientation": "序列包含多个层面方向，已拆分为多个图像堆栈",
    "mixed_size": "序列包含不同尺寸的图像，已拆分",
    "mixed_pixel_spacing": "序列包含不同的像素间距，已拆分",
    "mixed_geometry": "部分层面缺少位置信息，已拆分",
    "duplicate_positions": "有层面重复同一位置",
    "not_a_volume": "所有层面位于同一位置，是重复采集（时间点或回波），不构成容积",
    "uneven_spacing": "层间距不均匀，容积层间距取中位数",
    "missing_slices": "可能缺失层面",
    "gantry_tilt": "机架倾斜（或容积剪切），层间距沿层面法线测量",
    "too_few_slices": "层面过少，不足以构成容积（定位像或不完整序列？）",
    "missing_pixel_spacing": "缺少像素间距，按 1.0 mm 处理",
    "mosaic": "西门子 MOSAIC 拼图图像，已拆分为单独层面",
    "four_d": "四维序列（弥散方向、时间点或回波）按一个序列读取，仅分析一个代表容积",
    "empty_slices": "已跳过容积边缘的空白层面",
    "subsampled": "层面较多，已等间距抽取部分层面分析",
    "header_window_saturates": "头文件窗宽窗位使图像饱和（大片发白），已改用 0.5–99.5 % 百分位窗",
    "out_of_distribution": "超出模型适用范围，不作诊断",
    "modality_mismatch": "头文件的检查方式与图像本身的表现不一致",
    "plane_mismatch": "头文件方向（ImageOrientationPatient）与图像本身判断的层面不一致",
    "stack_failed": "图像堆栈分析失败",
    "bad_modality_lut": "模态 LUT（重标定）异常",
}
_NUMBERS = re.compile(r"-?\d+(?:\.\d+)?(?:\s?(?:mm|°|%|s/mm²))?")


def warning_text(warning: str) -> Text:
    """A "code: detail" warning in both languages."""
    code, _, detail = warning.partition(":")
    zh = WARNING_ZH.get(code.strip())
    if code == "out_of_distribution" and "phantom" in detail:
        zh = "测试体模（质控模体），并非人体解剖：超出模型适用范围，不作诊断"
    if zh is None:
        return Text(warning, f"警告（英文原文）：{warning}")
    numbers = "，".join(dict.fromkeys(_NUMBERS.findall(detail)))
    return Text(warning, f"{zh}（{numbers}）" if numbers else zh)


ROLE_KEYS = {"localizer": "role.localizer", "derived": "role.derived",
             "non_image": "role.non_image", "unreadable": "role.unreadable"}


def _top_code(s: SeriesAnalysis, kind: str) -> str | None:
    top = s.top(kind)
    return top.code.split(":", 1)[1] if top is not None else None


def series_items(analysis: Analysis) -> tuple[SeriesItem, ...]:
    """The machine-readable per-series list (`series` in the JSON), analysed ones first."""
    items = []
    for s in analysis.series:
        ood = s.out_of_distribution
        items.append(SeriesItem(
            series_instance_uid=s.series_instance_uid, role="diagnostic",
            modality=_top_code(s, "modality") or s.header_modality,
            region=None if ood else _top_code(s, "region"),
            plane=None if ood else _top_code(s, "plane"),
            out_of_distribution=ood, description=s.description, n_images=s.n_images,
            n_volumes=s.n_volumes, reason="", warnings=s.warnings))
    for listed in analysis.listed:
        items.append(SeriesItem(
            series_instance_uid=listed.series_instance_uid, role=listed.role,
            modality=listed.modality, region=None, plane=None, out_of_distribution=False,
            description=listed.description, n_images=listed.n_objects, n_volumes=1,
            reason=listed.reason, warnings=()))
    return tuple(items)


def study_summary(analysis: Analysis) -> Text:
    """One line first: "MR head, 3 series: 2 diagnostic axial, 1 localizer"."""
    usable = [s for s in analysis.series if not s.out_of_distribution]
    modalities = Counter(_top_code(s, "modality") or s.header_modality for s in analysis.series)
    modalities.update(item.modality for item in analysis.listed if item.modality)
    modality = modalities.most_common(1)[0][0] if modalities else ""
    regions = Counter(_top_code(s, "region") for s in usable)
    region = regions.most_common(1)[0][0] if regions else None
    head = Text(modality, modality)
    if modality:
        head = observation_label(f"modality:{modality}", modality)
    if region:
        label = observation_label(f"region:{region}", region)
        head = Text(f"{head.en} {label.en}", f"{head.zh}{label.zh}")
    parts: list[Text] = []
    planes = Counter(_top_code(s, "plane") for s in usable)
    for plane, n in sorted(planes.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        if plane:
            parts.append(tt("summary.diagnostic_plane", n=n,
                            plane=observation_label(f"plane:{plane}", plane)))
        else:
            parts.append(t("summary.diagnostic", n=n))
    n_ood = len(analysis.series) - len(usable)
    if n_ood:
        parts.append(t("summary.ood", n=n_ood))
    for role, n in sorted(Counter(item.role for item in analysis.listed).items()):
        parts.append(t(f"summary.{role}", n=n))
    n_series = len({s.series_instance_uid for s in analysis.series}) + len(analysis.listed)
    return tt("summary.line", head=head, n=n_series,
              parts=Text("; ".join(p.en for p in parts), "；".join(p.zh for p in parts)))
