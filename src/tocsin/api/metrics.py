"""Prometheus metrics of one node, in a registry of its own (no process-wide globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

if TYPE_CHECKING:
    from tocsin.service import Service

__all__ = ["Metrics", "StreamMetrics"]


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
    """Counters the API, stream and webhooks update; `render()` is the /metrics body."""

    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("tocsin_events_accepted", "Events accepted", registry=r)
        self.duplicates = Counter("tocsin_events_duplicate", "Events already logged", registry=r)
        self.rejected = Counter("tocsin_events_rejected", "Events refused (4xx)", registry=r)
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
        service.on_publish.append(self._count)
        service.on_reject.append(lambda n: self.rejected.inc(n))

    def _count(self, envelopes: list[dict[str, Any]]) -> None:
        for env in envelopes:
            self.transitions.labels(env["type"]).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
