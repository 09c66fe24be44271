"""Prometheus metrics of the bridge, served as text at GET /metrics on the status endpoint.

One registry per process (not prometheus_client's global one), so a test that starts several
bridges in one interpreter gets no duplicate-registration errors; the counters are
process-wide, like the process they describe. Queue depth and failed studies are read from
the journal at scrape time, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class BridgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("radassist_instances_received", "Instances stored", registry=r)
        self.refused = Counter("radassist_refused", "Associations or instances refused",
                               ["reason"], registry=r)
        self.analysed = Counter("radassist_studies_analysed", "Studies analysed", registry=r)
        self.sent = Counter("radassist_objects_sent", "Result objects delivered", registry=r)
        self.failed = Counter("radassist_studies_failed", "Studies that reached 'failed'",
                              registry=r)
        self.send_errors = Counter("radassist_send_errors", "Failed delivery attempts",
                                   registry=r)
        self.analysis_seconds = Histogram(
            "radassist_analysis_seconds", "Time to analyse one study", registry=r,
            buckets=(1, 2, 5, 10, 20, 40, 80, 160, 320))
        self.latency_seconds = Histogram(
            "radassist_study_latency_seconds", "Last instance received to results delivered",
            registry=r, buckets=(5, 15, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600))
        self.queue_depth = Gauge("radassist_queue_depth", "Studies waiting, by state",
                                 ["state"], registry=r)
        self._states: Callable[[], dict[str, int]] | None = None

    def watch_journal(self, counts: Callable[[], dict[str, int]]) -> None:
        """Read the queue depth from `counts()` (the journal's studies per state) at scrape."""
        self._states = counts

    def render(self) -> bytes:
        if self._states is not None:
            counts = self._states()
            for state in ("receiving", "queued", "analysing", "sending", "failed"):
                self.queue_depth.labels(state=state).set(counts.get(state, 0))
        return generate_latest(self.registry)


METRICS = BridgeMetrics()
