"""`analyze(study, context) -> Analysis`: every diagnostic series through the model.

Before any model runs, each series gets a role from its header (`pacs_bridge.series_role`):
localizers, exam-summary and dose screens and non-image objects are listed with the reason
and never diagnosed. Per diagnostic stack (`slices`): skip empty edge slices, choose at most
the bundle's `max_slices_per_stack` evenly spaced slices, window them as a reader would (the
header window unless it saturates the image), run the network once on the batch; then
(`reading`) aggregate slice probabilities to the series (mean for modality, region and
plane; max for findings, naming the slices that drive them), and combine them with what the
header already says (`priors`: modality, BodyPartExamined, the plane of
ImageOrientationPatient). CT and MR series also get the bundle's CT/MR finding heads
(`model.findings_ctmr`), max-pooled over slices with their driving slices. Quality comes
before anything clinical (`quality`): an unsupported modality, a blank image, a colour
photograph, a test object (phantom) or an embedding far from every training image is out of
distribution and gets no region, plane or finding statements.

Labels, thresholds and the input size are the weights bundle's (`imaging.model.bundle`), read
once with the model. The clinical context never changes the pixels' analysis; it is accepted
for the composer.
"""

from __future__ import annotations

import sys
import types

from common.errors import RadAssistError
from imaging.analyze.reading import interpret
from imaging.analyze.slices import PreparedStack, content_slices, prepare_stack, select_slices
from imaging.series_header import SeriesHeader, series_header
from imaging.types import Analysis, ClinicalContext, ImageStack, ListedSeries, SeriesAnalysis
from pacs_bridge.series_role import Role, series_role


def analyze(study, context: ClinicalContext | None = None) -> Analysis:
    """Analyse every diagnostic series of a `pacs_bridge.study.Study`; list the others."""
    from imaging.model import get_model

    model = get_model()
    results: list[SeriesAnalysis] = []
    listed: list[ListedSeries] = []
    # what ingest (or the bridge's spool) found wrong with the study as a whole
    warnings: list[str] = [f"{w.code}: {w.message}" for w in study.warnings]
    for series in study.series:
        uid = series.series_instance_uid
        role = series_role(series)
        n_objects = len(series.instances)
        if role.role is not Role.DIAGNOSTIC:
            listed.append(ListedSeries(uid, role.role.value, series.modality or "",
                                       series.description, n_objects, role.reason, role.code))
            continue
        try:
            stacks = _series_stacks(series)
        except RadAssistError as exc:
            listed.append(ListedSeries(uid, "unreadable", series.modality or "",
                                       series.description, n_objects, str(exc), "unreadable"))
            continue
        if not stacks:
            listed.append(ListedSeries(uid, "unreadable", series.modality or "",
                                       series.description, n_objects, "no decodable image",
                                       "no_pixels"))
            continue
        header = series_header(series)
        for stack in stacks:
            try:
                results.append(analyze_stack(model, stack, header))
            except RadAssistError as exc:
                warnings.append(f"stack_failed: {uid}: {exc}")
    return Analysis(study_instance_uid=str(study.study_instance_uid), series=tuple(results),
                    model_version=model.version, warnings=tuple(warnings),
                    listed=tuple(listed))


def _series_stacks(series) -> tuple[ImageStack, ...]:
    from imaging.pixels import series_stacks

    return tuple(series_stacks(series))


def analyze_stack(model, stack: ImageStack, context: SeriesHeader | None = None
                  ) -> SeriesAnalysis:
    prepared = prepare_stack(stack, model.spec)
    batch = prepared.batch()
    return interpret(model, prepared, model.predict(batch), context, batch)


class _CallableModule(types.ModuleType):
    """`imaging.analyze` names both this package and the function: importing the package
    first would otherwise shadow the function on `imaging`, so the package is callable."""

    def __call__(self, study, context: ClinicalContext | None = None) -> Analysis:
        return analyze(study, context)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["PreparedStack", "analyze", "analyze_stack", "content_slices", "interpret",
           "prepare_stack", "select_slices"]
