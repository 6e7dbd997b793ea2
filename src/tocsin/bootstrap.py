"""The composition root: which node the settings describe, put together in one place.

`make_service` picks the node (embedded or a cluster member); `compose` registers its outputs,
in the order each committed batch reaches them: the read models first (so a client told of a
transition by a stream finds it in the read API), then the metrics, webhooks and sirens, and the
streams last. A new output is a module and one line in `compose` (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from tocsin.api.metrics import Metrics
from tocsin.config import Settings
from tocsin.modes import notice
from tocsin.outputs.alertsinua import AlertsInUaView
from tocsin.outputs.base import LeaderOnly, ReadModel
from tocsin.outputs.capfeed import CapFeed, default_sender, load_signing_key, public_url
from tocsin.outputs.doorbell import Doorbell
from tocsin.outputs.incidents import IncidentLog
from tocsin.outputs.oref import OrefView
from tocsin.outputs.sirens import SirenGateway
from tocsin.outputs.stream import StreamOutput
from tocsin.outputs.webhooks import WebhookDispatcher
from tocsin.service import Service

__all__ = ["compose", "make_service"]


def make_service(settings: Settings, doorbells: Sequence[int] = ()) -> Service:
    """The service the settings describe, with its outputs: a cluster node when they name a
    bus, else embedded."""
    if settings.bus:
        from tocsin.cluster import cluster_service

        return compose(cluster_service(settings), doorbells=doorbells)
    return compose(Service(settings), doorbells=doorbells)


def compose(service: Service, doorbells: Sequence[int] = ()) -> Service:
    """Register every output of `service` (once: a composed service is returned as it is);
    `doorbells` are the pipes of the stream workers this process started."""
    outputs = service.outputs
    if len(outputs):
        return service
    settings = service.settings
    mode_note = notice(settings.mode)
    base = public_url(settings)
    outputs.add(ReadModel("history", service.history))
    outputs.add(ReadModel("cap", CapFeed(
        service.regions, service.log,
        sender=settings.cap_sender or default_sender(service.log_key.public_key(), base),
        mode=settings.mode, signing_key=load_signing_key(settings.data_dir),
        expires_s=service.policy.cap_expires_s, base_url=base, embed=settings.cap_embed)))
    outputs.add(ReadModel("alertsinua", AlertsInUaView(service.regions, clock=service.clock,
                                                       notes=mode_note)))
    outputs.add(ReadModel("oref", OrefView(service.regions, notes=mode_note)))
    outputs.add(ReadModel("incidents", IncidentLog()))
    metrics = Metrics(service)
    outputs.add(metrics)
    # one deliverer per log, one gateway per broker: in a cluster, whichever node leads
    outputs.add(LeaderOnly("webhooks", lambda: WebhookDispatcher(service, metrics)))
    if settings.mqtt_url:
        url = settings.mqtt_url
        outputs.add(LeaderOnly("sirens", lambda: SirenGateway(service, url)))
    outputs.add(StreamOutput(service.bus))
    if doorbells:  # the stream workers read the committed log: ring them once it is
        outputs.add(Doorbell(doorbells))
    return service

