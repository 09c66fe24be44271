"""Routing: which complete studies are analysed, by modality, body part and SOP class.

Rules are checked in order against each image instance; the first rule that matches
decides for that instance, otherwise the default does. A study is analysed when at least
one of its images is routed to analysis (a chest CT with a scout is still a chest CT).
"""

from __future__ import annotations

from dataclasses import dataclass

from pacs_bridge.service.config import RoutingConfig, RoutingRule
from pacs_bridge.study import InstanceKind, Study


@dataclass(frozen=True)
class RouteDecision:
    analyse: bool
    reason: str


def _matches(rule: RoutingRule, modality: str, body_part: str, sop_class: str) -> bool:
    return (
        (not rule.modality or modality in rule.modality)
        and (not rule.body_part or body_part in rule.body_part)
        and (not rule.sop_class or sop_class in rule.sop_class)
    )


class Router:
    def __init__(self, cfg: RoutingConfig) -> None:
        self.cfg = cfg

    def decide_instance(self, modality: str, body_part: str, sop_class: str) -> tuple[str, str]:
        modality, body_part = modality.strip().upper(), body_part.strip().upper()
        for i, rule in enumerate(self.cfg.rules):
            if _matches(rule, modality, body_part, sop_class):
                return rule.action, f"rule {i + 1}"
        return self.cfg.default, "default"

    def decide(self, study: Study) -> RouteDecision:
        seen = []
        for series in study.series:
            for inst in series.instances:
                if inst.kind is not InstanceKind.IMAGE:
                    continue
                body_part = str(inst.dataset.get("BodyPartExamined", "") or "")
                action, why = self.decide_instance(
                    inst.modality or series.modality, body_part, inst.sop_class_uid
                )
                label = f"{inst.modality or series.modality}/{body_part.upper() or '-'}"
                if action == "analyse":
                    return RouteDecision(True, f"{why} matched {label}")
                seen.append(f"{label} ({why})")
        if not seen:
            return RouteDecision(False, "no image instances")
        return RouteDecision(False, "skipped: " + ", ".join(sorted(set(seen))[:5]))
