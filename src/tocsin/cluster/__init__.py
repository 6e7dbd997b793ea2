"""A cluster: every node ingests and serves; one leader, elected in PostgreSQL, decides.

`tocsin serve --store postgresql://… --bus nats://…` runs a `Service` composed by
`cluster_service`: its ingest is a `StreamIngest` (`tocsin.cluster.ingest`), its role a
`ClusterNode` (`tocsin.cluster.node`), its leader lock a `LeaderLease` (`tocsin.cluster.lease`).
Theory of operation:

**Ingest (any node).** `submit` parses and checks a batch at the edge as the embedded server does
(schema, known regions, I-JSON; the key and its role were checked by the API), answers
events already in the log from the log, and publishes the others to the JetStream events stream
(`tocsin.bus.nats`). The `202` goes out once JetStream has stored them, with each event's
`stream_seq`; its log `seq` is not known yet. Whether an event is too far ahead of the clock is
the leader's call, since only the leader has the clock: an event it refuses is recorded in the
table `rejected`, with the reason, and served at `GET /api/v1/cluster/rejected` and
`GET /api/v1/cluster/event` — its sender already had a `202`.

**Leader (one node).** The node that holds the `LeaderLease` starts an epoch, applies whatever
the log has that it has not applied yet, and reads the events stream from the position that was
committed with the log. For each batch of messages it ticks the engine up to its wall clock
(when that moved a second, as the embedded server does), applies each event through the same
`Ledger` — so the log is exactly what `tocsin simulate` makes of the same events — and commits
entries, their leaf hashes, the stream position and the refused events in one fenced
transaction (`EventLog.append(..., epoch=, position=, rejections=)`).

**Fencing.** The store's fencing row holds `epoch`, `leader`, `stream_seq`. A node that wins the
leader lock bumps the epoch (`EventLog.start_epoch`). Every append of a leader first locks that
row (`SELECT … FOR UPDATE`) and refuses with `Fenced` unless the epoch is still its own. The row
lock orders a deposed leader's last commit and the takeover: the commit either lands before the
epoch moves, and the new leader starts after it, or it fails.

After each commit the leader publishes: to this node's own streams (SSE, webhooks, CAP, …) and
to the JetStream transitions stream. Due timers fire from ticks it logs the same way. Webhook
delivery (and any other output made with `Service.leading`) runs on the leader only.

**Followers (every other node).** Woken by the `NOTIFY` of each commit (and every
`lease_poll_s` anyway), a follower reads the new entries from the log, applies them to its own
engine — checking that it decides exactly what the leader logged, byte for byte — extends its
Merkle tree from the stored leaf hashes, and publishes the transitions to its own streams. Its
reads, SSE streams (which resume from the shared log), CAP feed, alerts.in.ua API and dashboard
are those of the leader, milliseconds later. It serves signed tree heads the leader signed.

**Failover.** The lock is a session lock: the leader's death ends its session and frees it. A
standby (trying every `lease_poll_s`) takes it, bumps the epoch — waiting for a commit of the
old leader still in flight, which lands first — applies the few entries its warm engine lacks,
and resumes reading at the committed position. Events the old leader consumed but did not commit
are read again; those it committed are not (position and entries are one transaction). A deposed
leader that comes back cannot commit: its epoch is stale (`Fenced`), and it steps down.

**Why a PostgreSQL advisory lock, not a NATS KV lease.** The fence has to be checked where the
commit happens, and the commit happens in PostgreSQL: with the lock, the epoch and the log in
one database there is no window in which a lease expired in one system while a commit still
lands in the other. A session lock also needs no renewal: it lasts exactly as long as the
leader's connection, and is released the moment the leader's process dies (its socket closes),
which is what makes a takeover take a fraction of a second instead of a lease's TTL. NATS KV
would add a second clock (the TTL) to reason about, and a paused leader could still commit after
its lease lapsed unless the store checked a fence anyway — which is the part doing the work.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tocsin.bus.nats import NatsBus
from tocsin.cluster.ingest import StreamIngest
from tocsin.cluster.lease import LeaderLease
from tocsin.cluster.node import ClusterNode
from tocsin.config import Settings
from tocsin.errors import TocsinError
from tocsin.service import Ingest, Role, Service, wall_now
from tocsin.store import is_postgres_url
from tocsin.store.postgres import PostgresLog

__all__ = ["ClusterNode", "LeaderLease", "StreamIngest", "cluster_service"]


def cluster_service(
    settings: Settings, *, clock: Callable[[], datetime] = wall_now
) -> Service:
    """A node of a cluster: the embedded service's API over a shared store and a NATS bus."""
    if settings.store is None or not is_postgres_url(settings.store) or settings.bus is None:
        raise TocsinError("a cluster (--bus) needs a shared store: --store postgresql://...")
    bus_url = settings.bus
    store = PostgresLog(settings.store)  # the service's log, opened once, shared

    def strategies(service: Service) -> tuple[Ingest, Role]:
        _check_cluster_meta(service)
        node_id = ClusterNode.node_name(settings)
        nats = NatsBus(
            bus_url, name=settings.cluster_name, node=node_id,
            replicas=settings.stream_replicas, max_age_s=settings.stream_max_age_s,
            dedup_s=settings.stream_dedup_s,
        )
        return StreamIngest(service, nats), ClusterNode(service, store, nats)

    return Service(settings, clock=clock, log=store, strategies=strategies)


def _check_cluster_meta(service: Service) -> None:
    import json

    settings = service.settings
    mine = json.dumps(service.policy.to_dict(), sort_keys=True)
    if service.log.get_meta("policy") != mine:
        raise TocsinError(
            f"{service.log.where} holds a log decided with another policy; every node of a "
            "cluster must run the same --policy")
    stored = service.log.get_meta("cluster_name")
    if stored is None:
        service.log.set_meta("cluster_name", settings.cluster_name)
    elif stored != settings.cluster_name:
        raise TocsinError(f"{service.log.where} is the store of cluster {stored!r}, not "
                          f"{settings.cluster_name!r} (--cluster-name)")
