"""One study's analysis: read it from the spool, route it, run the analyzer — in a child
process by default, so that nothing the analysis does can take the bridge down.

A decoder that aborts (GDCM throws a C++ exception nobody catches: SIGABRT), a segfault in
a native library, the kernel's OOM killer or an analysis that never ends kills only the
child (`common.isolation.Isolated`: a one-worker ProcessPoolExecutor, 'spawn', a new child
after `tasks_per_child` studies, the analyzer and its model loaded once per child by the
initializer, `study_seconds` as the time budget). The worker sees a `WorkerCrashError` for
that one study, counts it, and goes on with the next; the listener never notices.

When a child dies on a study, a screening child decodes the study's spooled images one by
one with `[analysis] screen_decoder` (`common.isolation.crashing_items`) to find the
instance(s) that kill it. If other instances remain, those are set aside in the spool (kept,
never read again) and the rest of the study is analysed: one bad file does not cost a
study its second read. A study with nothing left, or a death no file explains (out of
memory, time budget), fails that attempt as before, and quarantine follows.

`[analysis] isolate = false` runs the same function in the bridge's own process (the
bridge's own tests, which replace the analyzer with stand-ins).
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from common.errors import RadAssistError, WorkerCrashError
from common.isolation import Isolated, crashing_items
from pacs_bridge.ingest import group, read_instance
from pacs_bridge.service.config import AnalysisConfig
from pacs_bridge.service.receive import short_uid
from pacs_bridge.service.routing import Router
from pacs_bridge.service.spool import Spool
from pacs_bridge.study import IngestWarning, InstanceKind, Study
from pacs_bridge.transfer_syntaxes import has_pixel_data

log = logging.getLogger("radassist.bridge.analysis")

Analyzer = Callable[..., Sequence[Dataset]]


class AnalyzerError(RadAssistError):
    """The configured analyzer could not be imported or returned unusable objects."""

    reason = "analyzer"


def load_analyzer(dotted: str, what: str = "analyzer") -> Analyzer:
    """Import `package.module:function` (lazily: importing imaging loads torch); `what`
    names it in the error (the analyzer, the screening decoder)."""
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise AnalyzerError(dotted, f"cannot import {what} ({exc})") from exc
    if not callable(fn):
        raise AnalyzerError(dotted, f"{what} is not callable")
    return fn


@dataclass(frozen=True)
class AnalysisOutcome:
    route: str  # the routing decision's reason
    analysed: bool  # False: routing said skip
    objects: tuple[Dataset, ...] = ()
    unreadable: int = 0  # spooled files that could not be read
    set_aside: tuple[str, ...] = ()  # spooled files whose decoding killed the analysis


def load_study(spool: Spool, uid: str) -> tuple[Study, int]:
    """The study as spooled, and how many of its files could not be read."""
    instances, unreadable = [], 0
    for path in spool.instance_files(uid):
        try:
            instances.append(read_instance(str(path), spool.read(path)))
        except RadAssistError:
            unreadable += 1
    aside = len(spool.set_aside_files(uid))
    for study in group(instances):
        if study.study_instance_uid == uid:
            if aside:  # the note must say it does not cover them
                study = dataclasses.replace(study, warnings=(*study.warnings, IngestWarning(
                    "instances_set_aside", f"{aside} instance(s) set aside: decoding them "
                    "killed the analysis process; not analysed")))
            return study, unreadable
    raise AnalyzerError(str(spool.study_dir(uid)), "no readable instance in the spool")


def analyse_study(spool_root: str, key: bytes | None, uid: str, router: Router,
                  analyzer: Analyzer | None = None) -> AnalysisOutcome:
    """Read, route and analyse one spooled study (in the child, or in-process with
    `analyzer` given); the result objects come back to the caller, which spools them."""
    spool = Spool(Path(spool_root), use_slots=False, key=key)
    study, unreadable = load_study(spool, uid)
    decision = router.decide(study)
    if not decision.analyse:
        return AnalysisOutcome(decision.reason, False, unreadable=unreadable)
    fn = analyzer or _child_analyzer()
    return AnalysisOutcome(decision.reason, True, tuple(fn(study, None)), unreadable)


MAX_SET_ASIDE = 20  # a study whose every file kills a decoder is not worth more screening


def screen_study(spool_root: str, key: bytes | None, uid: str, decoder: str,
                 exclude: frozenset[str], marker: str) -> None:
    """In a screening child: decode each spooled image of the study with `decoder`, its
    file name written to `marker` first (`common.isolation.crashing_items` reads it when
    the child dies). Typed refusals are the analysis' business, not a crash: ignored."""
    decode = load_analyzer(decoder, "screening decoder")
    spool = Spool(Path(spool_root), use_slots=False, key=key)
    for path in spool.instance_files(uid):
        if path.name in exclude:
            continue
        try:
            inst = read_instance(str(path), spool.read(path))
        except RadAssistError:
            continue
        if inst.kind is not InstanceKind.IMAGE or not has_pixel_data(inst.dataset):
            continue
        Path(marker).write_text(path.name)
        try:
            decode(inst)
        except RadAssistError:
            pass
    Path(marker).write_text("")


# -- the child ---------------------------------------------------------------------------------

_ANALYZER: Analyzer | None = None


def _child_analyzer() -> Analyzer:
    if _ANALYZER is None:
        raise AnalyzerError(None, "the analysis process has no analyzer (not initialised)")
    return _ANALYZER


def init_child(dotted: str, log_level: int) -> None:
    """Once per child: logging like the bridge's, the analyzer imported, its module's
    `warm_up()` (if any: imaging.pipeline loads the model) run before the first study."""
    global _ANALYZER
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pacs_bridge.service import log_privacy

    log_privacy.install()
    _ANALYZER = load_analyzer(dotted)
    warm_up = getattr(sys.modules.get(dotted.partition(":")[0]), "warm_up", None)
    if callable(warm_up):
        warm_up()
    # the model and knowledge base live as long as the child: keep them out of every GC pass
    gc.freeze()


# -- the two ways to run it ----------------------------------------------------------------------

class IsolatedAnalysis:
    """Each study analysed in a child process (the default)."""

    mode = "isolated"

    def __init__(self, cfg: AnalysisConfig, spool: Spool, router: Router) -> None:
        self.spool = spool
        self.router = router
        self.screen_decoder = cfg.screen_decoder
        self.child = Isolated(
            "analysis",
            initializer=init_child,
            initargs=(cfg.analyzer, logging.getLogger().getEffectiveLevel()),
            max_tasks_per_child=cfg.tasks_per_child,
            seconds=cfg.study_seconds,
        )

    def run(self, uid: str) -> AnalysisOutcome:
        self.spool.flush()  # every acknowledged instance in its folder before the child reads
        try:
            return self._call(uid)
        except WorkerCrashError as exc:
            if exc.reason == "start_failed" or not self.screen_decoder:
                raise
            try:
                culprits = self._set_aside_culprits(uid)
            except Exception as screening:  # noqa: BLE001 - the crash is what happened
                log.error("study %s: the search for the file that killed the analysis "
                          "failed (%s)", short_uid(uid), screening)
                raise exc from None
            if not culprits:
                raise
        # the rest of the study; a second death is an ordinary crash of this attempt
        return dataclasses.replace(self._call(uid), set_aside=culprits)

    def _call(self, uid: str) -> AnalysisOutcome:
        return self.child.call(analyse_study, str(self.spool.root), self.spool.key, uid,
                               self.router)

    def _set_aside_culprits(self, uid: str) -> tuple[str, ...]:
        """The files a screening child dies on, moved aside when others remain."""
        found, _ = crashing_items(screen_study, str(self.spool.root), self.spool.key, uid,
                                  self.screen_decoder, limit=MAX_SET_ASIDE)
        remaining = [p for p in self.spool.instance_files(uid) if p.name not in found]
        if not found or not remaining:
            return ()
        for name in sorted(found):
            self.spool.set_aside(uid, name)
        log.error("study %s: %d of its instance(s) killed the decoder (%s); set aside in the "
                  "spool, the other %d analysed", short_uid(uid), len(found),
                  "; ".join(sorted(set(found.values()))), len(remaining))
        return tuple(sorted(found))

    def describe(self) -> dict:
        return {"mode": self.mode, "child_pids": self.child.pids(),
                "analysing_since": self.child.busy_since or None,
                "children_lost": self.child.deaths}

    def abort(self) -> None:
        self.child.terminate()

    def close(self) -> None:
        self.child.close()


class InProcessAnalysis:
    """The analyzer run in this process (`[analysis] isolate = false`)."""

    mode = "in-process"

    def __init__(self, cfg: AnalysisConfig, spool: Spool, router: Router) -> None:
        self.cfg = cfg
        self.spool = spool
        self.router = router
        self._analyzer: Analyzer | None = None
        self._frozen = False

    def run(self, uid: str) -> AnalysisOutcome:
        if self._analyzer is None:
            self._analyzer = load_analyzer(self.cfg.analyzer)
        outcome = analyse_study(str(self.spool.root), self.spool.key, uid, self.router,
                                self._analyzer)
        if outcome.analysed and not self._frozen:
            # The first analysis loads the model, text encoder and knowledge base: close
            # to a million long-lived objects that every full garbage collection would
            # walk again while instances arrive (measured: ~20 % more CPU per C-STORE).
            gc.freeze()
            self._frozen = True
        return outcome

    def describe(self) -> dict:
        return {"mode": self.mode}

    def abort(self) -> None:
        pass  # nothing to kill: the analysis runs on the worker's own thread

    def close(self) -> None:
        pass


def make_analysis(cfg: AnalysisConfig, spool: Spool,
                  router: Router) -> IsolatedAnalysis | InProcessAnalysis:
    return (IsolatedAnalysis if cfg.isolate else InProcessAnalysis)(cfg, spool, router)
