"""Settings of a running tocsin: defaults < `TOCSIN_*` environment < command-line flags.

Every setting has a help string; `docs/cli.md` and `tocsin serve --help` are generated from
`SETTINGS`, and a test checks each one is documented.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["SETTINGS", "Settings", "settings_from_env"]


@dataclass(frozen=True, slots=True)
class Settings:
    """One frozen bag of every setting; passed down explicitly, never global."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("tocsin-data")
    regions: str = "ua-hromadas"
    policy: str | None = None
    private: bool = False
    mode: str = "actual"
    rate_limit: float = 50.0
    rate_burst: int = 200
    max_body_bytes: int = 1_048_576
    heartbeat_s: float = 15.0
    stream_buffer_bytes: int = 1_048_576
    stream_write_timeout_s: float = 10.0
    stream_max_per_client: int = 100
    socket_send_buffer: int = 262_144
    stream_workers: int = 0
    stream_port: int | None = None
    trusted_proxies: str = ""
    auth_fail_rate: float = 0.2
    auth_fail_burst: int = 10
    rate_buckets: int = 100_000
    tick_s: float = 1.0
    webhook_timeout_s: float = 5.0
    webhook_base_backoff_s: float = 0.5
    webhook_max_backoff_s: float = 300.0
    demo: bool = False
    demo_scenario: str = ""
    demo_speed: float = 1.0
    public_url: str | None = None
    allow_private_webhooks: bool = False
    cap_sender: str | None = None
    cap_embed: bool = False
    mqtt_url: str | None = None
    siren_ack_s: float = 10.0
    log_key: Path | None = None
    config_dir: Path | None = None
    witnesses: Path | None = None
    sth_interval_s: float = 5.0
    store: str | None = None
    bus: str | None = None
    node_id: str | None = None
    cluster_name: str = "tocsin"
    stream_replicas: int = 1
    stream_max_age_s: float = 604_800.0
    stream_dedup_s: float = 120.0
    lease_poll_s: float = 0.1


SETTINGS: Mapping[str, str] = MappingProxyType(
    {
        "host": "Address to listen on.",
        "port": "TCP port to listen on.",
        "data_dir": "Directory holding the log (tocsin.db), keys and subscriptions (admin.db).",
        "regions": "Region set: ua-oblasts, ua-raions, ua-hromadas or a GeoJSON path.",
        "policy": "Policy file (JSON or TOML) overriding the engine's defaults.",
        "private": "Require a reader (or stronger) key for read endpoints too.",
        "mode": "Deployment mode: actual, exercise or test (CAP status; drills are marked).",
        "rate_limit": "Requests per second allowed per API key (token bucket refill rate).",
        "rate_burst": "Requests a key may send at once before the rate limit applies.",
        "max_body_bytes": "Largest request body accepted; larger ones get 413.",
        "heartbeat_s": "Seconds between SSE heartbeat comments on an idle stream.",
        "stream_buffer_bytes": "How far (bytes of events) an SSE client may fall behind the "
        "live stream before it is disconnected with a comment saying so; it resumes with "
        "Last-Event-ID.",
        "stream_write_timeout_s": "Seconds one write to an SSE client may block (the client "
        "reads nothing) before it is disconnected.",
        "stream_max_per_client": "Open SSE streams allowed per client address (or key); more "
        "get 429.",
        "socket_send_buffer": "Kernel send buffer of each client connection, in bytes (0: the "
        "kernel's own sizing, which lets one client that reads nothing take megabytes); "
        "a stalled stream blocks, and is dropped, once this and stream_buffer_bytes are full.",
        "stream_workers": "Extra processes serving GET /api/v1/stream on stream_port, each "
        "tailing the committed log (0: streams are served by the main process only).",
        "stream_port": "TCP port the stream workers share (default: port + 1).",
        "trusted_proxies": "Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is "
        "believed; from anyone else the header is ignored.",
        "auth_fail_rate": "Failed authentication attempts per second allowed per client address "
        "(token bucket refill rate); beyond it, 429.",
        "auth_fail_burst": "Failed authentication attempts a client address may make at once.",
        "rate_buckets": "Most clients whose rate-limit buckets are remembered at once (the least "
        "recently seen are forgotten first).",
        "tick_s": "Seconds between clock checks that fire the engine's due timers.",
        "webhook_timeout_s": "Seconds a webhook receiver has to answer one delivery.",
        "webhook_base_backoff_s": "Wait before the first retry of a failing webhook; each "
        "further retry waits twice as long (with jitter), up to webhook_max_backoff_s.",
        "webhook_max_backoff_s": "Longest wait between retries of a failing webhook.",
        "demo": "Play a drill scenario in a loop, marked as an exercise.",
        "demo_scenario": "The drill: a bundled name, a .jsonl file or record:YYYY-MM-DD (empty: "
        "the bundled record day).",
        "demo_speed": "How many times faster than real time the drill plays.",
        "public_url": "The server's public base URL (e.g. https://alerts.example.gov.ua/): "
        "Atom ids and links of the CAP feed are built from it, never from a request's Host "
        "(default: http://host:port/).",
        "allow_private_webhooks": "Let webhook subscriptions target loopback, private, "
        "link-local and multicast addresses (refused by default, at subscription and again "
        "at delivery after DNS resolution).",
        "cap_sender": "CAP <sender> of published messages, e.g. alerts@example.gov.ua "
        "(no spaces, commas, < or &); default: tocsin-<fingerprint of the log key>@<host of "
        "public_url>, unique per deployment.",
        "cap_embed": "Embed each CAP message in its Atom entry (as the content), for readers "
        "that do not follow links.",
        "mqtt_url": "MQTT broker for sirens, e.g. mqtt://127.0.0.1:1883 (unset: sirens off).",
        "siren_ack_s": "Seconds a siren has to acknowledge a command before it is reported "
        "faulty.",
        "log_key": "Ed25519 private key (PKCS#8 PEM) that signs the log's tree heads (default: "
        "keys/<fingerprint>.key in config_dir, made with mode 0600 on first start; the data "
        "directory keeps only the public key, log-signing.pub).",
        "config_dir": "Per-user configuration directory holding the log signing key (default: "
        "$XDG_CONFIG_HOME/tocsin, else ~/.config/tocsin).",
        "witnesses": "File of witness public keys (one base64 Ed25519 key per line, then an "
        "optional name) whose cosignatures of tree heads the server accepts and serves.",
        "sth_interval_s": "Seconds between signed tree heads while entries arrive.",
        "store": "Shared store of a cluster: postgresql://user@host:5432/db (log, keys, "
        "subscriptions, sirens, signing key); unset: SQLite files in data_dir.",
        "bus": "NATS JetStream of a cluster, e.g. nats://10.0.0.5:4222 (comma-separate several "
        "servers); needs a postgresql:// store. Unset: one process, in-process bus.",
        "node_id": "This node's name in a cluster (default: host name and port).",
        "cluster_name": "Names the cluster's JetStream streams and subjects (NAME_EVENTS, "
        "name.events, ...); every node of a cluster uses the same.",
        "stream_replicas": "JetStream replicas of the cluster's streams (3 on a three-server "
        "NATS cluster, so losing one NATS server loses no accepted event).",
        "stream_max_age_s": "Seconds JetStream keeps ingested events; with no leader for longer "
        "than this, events not yet logged would be dropped.",
        "stream_dedup_s": "JetStream's duplicate window: a re-sent (source, id) within it is "
        "dropped by the server (later ones are found in the log by the leader).",
        "lease_poll_s": "Seconds between a standby's attempts to take the leader lock (bounds "
        "the takeover time after a leader dies).",
    }
)


def _coerce(template: Any, text: str) -> Any:
    if isinstance(template, bool):
        return text.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(template, int):
        return int(text)
    if isinstance(template, float):
        return float(text)
    if isinstance(template, Path):
        return Path(text)
    return text


def settings_from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then `TOCSIN_<NAME>` variables, then explicit overrides (None is ignored)."""
    env = os.environ if env is None else env
    base = Settings()
    changes: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(f"TOCSIN_{f.name.upper()}")
        if raw is not None:
            changes[f.name] = _coerce(getattr(base, f.name), raw)
    changes.update({k: v for k, v in overrides.items() if v is not None})
    if "data_dir" in changes:
        changes["data_dir"] = Path(changes["data_dir"])
    return replace(base, **changes)
