"""Prometheus metrics of one node, in a registry of its own (no process-wide globals).

`Metrics` is an output like the others (`tocsin.outputs.base`): fed every committed batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tocsin.model import ALERT_TYPES, SEVERITIES

if TYPE_CHECKING:
    from tocsin.service import Service

__all__ = ["Metrics", "StreamMetrics"]

SIREN_STATES = ("ok", "fault", "offline", "unknown")


class StreamMetrics:
    """What every process serving streams reports, the main one and each stream edge."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = self.registry = registry
        self.open = Gauge("tocsin_stream_clients", "Open SSE connections", registry=r)
        self.dropped = Counter("tocsin_streams_dropped",
                               "SSE connections closed by the server, by reason (lagging: more "
                               "than stream_buffer_bytes behind; write-timeout: a write blocked "
                               "over stream_write_timeout_s)", ["reason"], registry=r)
        self.responses = Counter("tocsin_http_responses", "HTTP responses by status",
                                 ["status"], registry=r)
        ProcessCollector(registry=r)  # process_* (CPU, RSS, open files) of this process

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


class Metrics:
    """The `metrics` output: counters the API, stream and webhooks update, and what a duty
    engineer watches — alerts in force, webhook backlogs, sirens, MQTT; `render()` is the body.

    Alerts in force are folded from the transitions (live and, on start, from the log), so
    they are the engine's view without asking the engine.
    """

    name = "metrics"
    SNAPSHOT_FIELDS = ("in_force", "last_seq")  # kept by snapshots (the counters are per start)

    def __init__(self, service: Service) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("tocsin_events_accepted", "Events accepted", registry=r)
        self.duplicates = Counter("tocsin_events_duplicate", "Events already logged", registry=r)
        self.transitions = Counter("tocsin_transitions", "Transitions decided", ["type"],
                                   registry=r)
        self.decision = Histogram(
            "tocsin_decision_seconds", "Request received to transitions durable and published",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.streams = StreamMetrics(r)
        self.stream_clients = self.streams.open
        self.webhook = Counter("tocsin_webhook_deliveries", "Webhook delivery attempts",
                               ["outcome"], registry=r)
        self.log_seq = Gauge("tocsin_log_seq", "Last seq in the log", registry=r)
        self.log_seq.set_function(lambda: float(service.ledger.next_seq - 1))
        self.in_force: dict[tuple[str, str], str] = {}  # (leaf region, alert type) -> severity
        self.last_seq = 0
        self._backlog: list[tuple[str, int]] = []  # (subscription, cursor), read by `refresh`
        r.register(_State(self))

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def apply(self, batch: Sequence[Mapping[str, Any]]) -> None:
        """Count the transitions decided, and fold the alerts in force."""
        for env in batch:
            self.transitions.labels(env["type"]).inc()
        self._fold(batch)

    def rebuild(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Fold the alerts in force (the counters count from this start)."""
        self._fold(entries)

    def _fold(self, envelopes: Iterable[Mapping[str, Any]]) -> None:
        for env in envelopes:
            seq = int(env["seq"])
            if seq <= self.last_seq:
                continue
            self.last_seq = seq
            kind = env["type"]
            if kind in ("alert_started", "alert_updated"):
                self.in_force[(env["region"], env["alert_type"])] = env["severity"]
            elif kind == "alert_ended":
                self.in_force.pop((env["region"], env["alert_type"]), None)

    def alerts_in_force(self) -> dict[tuple[str, str], int]:
        """Leaf regions under alert, by (alert type, severity)."""
        out: dict[tuple[str, str], int] = {}
        for (_, alert_type), severity in self.in_force.items():
            out[(alert_type, severity)] = out.get((alert_type, severity), 0) + 1
        return out

    async def refresh(self) -> None:
        """Read what lives in the admin store (webhook cursors), off the event loop."""
        subs = await asyncio.to_thread(self.service.admin.subscriptions, active_only=True)
        self._backlog = [(s.id, s.cursor) for s in subs]

    async def render_async(self) -> bytes:
        """`refresh`, then `render`."""
        await self.refresh()
        return self.render()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


class _State(Collector):
    """The gauges read at scrape time from the node's state (no copy kept up to date)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        svc = m.service
        yield CounterMetricFamily("tocsin_events_rejected", "Events refused (4xx)",
                                  value=svc.refused)
        force = GaugeMetricFamily("tocsin_alerts_in_force",
                                  "Leaf regions under alert now, by alert type and severity",
                                  labels=["alert_type", "severity"])
        counts = m.alerts_in_force()
        for alert_type in ALERT_TYPES:
            for severity in SEVERITIES:
                force.add_metric([alert_type, severity], counts.get((alert_type, severity), 0))
        yield force
        last = svc.ledger.next_seq - 1
        backlog = GaugeMetricFamily("tocsin_webhook_backlog",
                                    "Log entries past an active subscription's cursor (not yet "
                                    "looked at for delivery)", labels=["subscription"])
        for sub_id, cursor in m._backlog:
            backlog.add_metric([sub_id], max(0, last - cursor))
        yield backlog
        sirens = svc.outputs.get("sirens")
        gateway = None if sirens is None else sirens.current
        if gateway is not None:  # on the node that runs the siren gateway
            yield GaugeMetricFamily("tocsin_mqtt_connected",
                                    "1 while the siren gateway is connected to its MQTT broker",
                                    value=1.0 if gateway.connected.is_set() else 0.0)
            states = GaugeMetricFamily("tocsin_sirens",
                                       "Registered sirens by status (fault: reported a fault or "
                                       "missed an acknowledgement; offline: its broker session "
                                       "ended)", labels=["status"])
            by: dict[str, int] = dict.fromkeys(SIREN_STATES, 0)
            for view in gateway.views():
                by[view.status] = by.get(view.status, 0) + 1
            for status, n in by.items():
                states.add_metric([status], n)
            yield states
