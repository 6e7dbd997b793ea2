"""The CAP 1.2 read model: one message for every alert start, update and end in the log.

`alert_started` becomes a CAP Alert, `alert_updated` an Update and `alert_ended` a Cancel, each
Update and Cancel referencing every earlier message of the same alert (one alert is one region and
alert type from its start to its end). A message is a pure function of the log: its `sent` is the
transition's own time, its identifier `tocsin-<seq>` and `tocsin:log_index` the transition's place
in the log, so rebuilding it later gives the same bytes.

`CapFeed` is a read model output (`tocsin.outputs.base.ReadModel`): rebuilt from the log on
start, then fed live. It keeps the latest `keep` messages in memory (described, not yet encoded:
XML is written and schema-checked on first request, then cached) and a compact index of every
message ever made, so any older one is rebuilt from the log by its seq.

If `<data_dir>/cap-signing.key` holds an Ed25519 private key (PEM, PKCS#8), every message and the
feed are served with `X-CAP-Signature: ed25519=<base64>`: a detached signature over the exact body
bytes (`tocsin.outputs.cap.sign_detached`); the public key is served at `/cap/signing-key.pem`.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from tocsin.errors import TocsinError
from tocsin.geo import Region, RegionSet
from tocsin.model import parse_time
from tocsin.outputs.cap import CapMessage, alert_message, atom_feed, cap_time, encode, parse
from tocsin.outputs.cap import sign_detached as _sign
from tocsin.store import EventLog

__all__ = [
    "MSG_TYPES",
    "SIGNING_KEY_FILE",
    "CapEntry",
    "CapFeed",
    "cap_status",
    "default_sender",
    "geocodes",
    "identifier_for",
    "load_signing_key",
    "log_index",
    "seq_of",
]

log = logging.getLogger("tocsin.cap")

MSG_TYPES: Final[Mapping[str, str]] = {
    "alert_started": "Alert",
    "alert_updated": "Update",
    "alert_ended": "Cancel",
}
_STATUS: Final[Mapping[str, str]] = {"actual": "Actual", "exercise": "Exercise", "test": "Test"}
_IDENTIFIER_RE: Final = re.compile(r"^tocsin-([1-9][0-9]{0,18})$")
_KATOTTG_RE: Final = re.compile(r"^UA[0-9]{17}$")
SIGNING_KEY_FILE: Final = "cap-signing.key"


def log_index(transition: Mapping[str, Any]) -> int:
    """The index of a transition in the public log, written as `tocsin:log_index`.

    The Merkle leaf index of an entry is its seq minus one (leaves count from 0, seqs from 1).
    """
    return int(transition.get("log_index", int(transition["seq"]) - 1))


def identifier_for(seq: int) -> str:
    """The CAP identifier of the message made from the transition at `seq`."""
    return f"tocsin-{seq}"


def seq_of(identifier: str) -> int | None:
    """The seq an identifier of ours names, or None if it is not one of ours."""
    m = _IDENTIFIER_RE.match(identifier)
    return int(m.group(1)) if m else None


def public_url(settings: Any) -> str:
    """The configured public base URL, else `http://host:port/` of the listening socket."""
    if settings.public_url:
        return str(settings.public_url).rstrip("/") + "/"
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}/"


def default_sender(log_key: Ed25519PublicKey, public_url: str) -> str:
    """`tocsin-<16 hex of the log key's fingerprint>@<host of the public URL>`.

    Unique per deployment (no two logs share a signing key), stable across restarts, and it
    says which log to check a message against.
    """
    raw = log_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    host = urlsplit(public_url).hostname or "localhost"
    return f"tocsin-{sha256(raw).hexdigest()[:16]}@{host}"


def geocodes(regions: RegionSet, region_id: str) -> list[tuple[str, str]]:
    """The CAP geocodes of a leaf: `KATOTTG` and `alerts.in.ua` (its uid), else `COD-AB`.

    A leaf that is not a KATOTTG unit of its own (Kyiv and Sevastopol, cities with special
    status, are `cod:` leaves in the boundary data) takes the codes of the unit above it that
    covers exactly the same ground (the one leaf under it). One with none (the Chornobyl
    exclusion zone, which has neither a KATOTTG code nor an alerts.in.ua uid) is named by its
    COD-AB pcode, which a tocsin reading the message maps back to the same leaf.
    """
    region: Region = regions.get(region_id)
    katottg = region.id if _KATOTTG_RE.match(region.id) else None
    uid = region.alerts_uid
    for above in regions.chain(region_id)[1:]:
        if katottg is not None and uid is not None:
            break
        if len(regions.leaves_under(above.id)) != 1:
            break
        if katottg is None and _KATOTTG_RE.match(above.id):
            katottg = above.id
        if uid is None and above.alerts_uid is not None:
            uid = above.alerts_uid
    out: list[tuple[str, str]] = []
    if katottg is not None:
        out.append(("KATOTTG", katottg))
    if uid is not None:
        out.append(("alerts.in.ua", str(uid)))
    if region.id.startswith("cod:"):
        out.append(("COD-AB", region.id.removeprefix("cod:")))
    return out


def cap_status(mode: str) -> str:
    """CAP `status` of a deployment mode: actual, exercise, test -> Actual, Exercise, Test."""
    try:
        return _STATUS[mode]
    except KeyError:
        raise TocsinError(f"mode must be one of {', '.join(_STATUS)} (got {mode!r})") from None


def load_signing_key(data_dir: Path | str) -> Ed25519PrivateKey | None:
    """The CAP signing key of a data directory, or None when it has none."""
    path = Path(data_dir) / SIGNING_KEY_FILE
    if not path.is_file():
        return None
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise TocsinError(f"{path}: not a PEM private key without a password ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TocsinError(f"{path}: the CAP signing key must be Ed25519")
    return key


@dataclass(frozen=True, slots=True)
class CapEntry:
    """What one CAP message is made of: its transition and the messages it references."""

    seq: int
    msg_type: str
    transition: Mapping[str, Any]
    references: tuple[tuple[int, str], ...]  # (seq, sent) of earlier messages of the alert

    @property
    def identifier(self) -> str:
        """The message's CAP identifier."""
        return identifier_for(self.seq)

    @property
    def sent(self) -> str:
        """The message's CAP `sent`: the transition's time."""
        return cap_time(parse_time(self.transition["time"]))


_KEEP_KEYS: Final = ("seq", "type", "region", "alert_type", "severity", "time", "causes", "eta_s")


class CapFeed:
    """CAP messages of the alerts in the log, newest kept in memory, any rebuilt on demand."""

    # its state, for `tocsin.snapshots` (`_xml` is a cache, rebuilt on demand)
    SNAPSHOT_FIELDS = ("latest", "_open", "_seqs", "_starts", "last_seq")

    def __init__(
        self,
        regions: RegionSet,
        log: EventLog,
        *,
        sender: str,
        mode: str = "actual",
        keep: int = 1000,
        signing_key: Ed25519PrivateKey | None = None,
        expires_s: float = 86_400.0,
        base_url: str = "http://localhost/",
        embed: bool = False,
    ) -> None:
        self.regions = regions
        self.log = log
        self.sender = sender
        self.expires = timedelta(seconds=max(1.0, expires_s))
        self.base_url = base_url.rstrip("/")
        self.embed = embed
        self.status = cap_status(mode)
        self.keep = keep
        self.signing_key = signing_key
        self.latest: OrderedDict[int, CapEntry] = OrderedDict()
        self._open: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self._seqs = array("q")  # every message's seq, ascending
        self._starts = array("q")  # the seq of the Alert that opened its chain
        self._xml: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.last_seq = 0
        # Fail at start, not on the first request, if the configured sender cannot be written.
        encode(self._message(CapEntry(1, "Alert", _probe(regions), ())))

    # --- feeding -------------------------------------------------------------------------------

    def apply(self, t: Mapping[str, Any]) -> None:
        """Fold in one transition (as its JSON object); transitions of other types are ignored."""
        seq = int(t["seq"])
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        msg_type = MSG_TYPES.get(t["type"])
        if msg_type is None or t.get("alert_type") is None:
            return
        key = (str(t["region"]), str(t["alert_type"]))
        sent = cap_time(parse_time(t["time"]))
        chain = self._open.get(key)
        if msg_type == "Alert" or chain is None:
            # An update or end whose start is not in the log cannot reference it; it stands alone.
            if msg_type != "Alert":
                log.warning("CAP: %s at seq %d has no start in the log", t["type"], seq)
                if msg_type == "Cancel":
                    return
            msg_type, chain = "Alert", []
            self._open[key] = chain
        entry = CapEntry(seq, msg_type, {k: t.get(k) for k in _KEEP_KEYS}, tuple(chain))
        self._seqs.append(seq)
        self._starts.append(chain[0][0] if chain else seq)
        if msg_type == "Cancel":
            del self._open[key]
        else:
            chain.append((seq, sent))
        self.latest[seq] = entry
        while len(self.latest) > self.keep:
            self.latest.popitem(last=False)

    def apply_many(self, envelopes: Iterable[Mapping[str, Any]]) -> None:
        """Fold in published envelopes (live, and from the log on start)."""
        for env in envelopes:
            self.apply(env)

    # --- reading -------------------------------------------------------------------------------

    def entry(self, seq: int) -> CapEntry | None:
        """The message made at `seq`: from memory, else rebuilt from the log (blocking I/O)."""
        found = self.latest.get(seq)
        if found is not None:
            return found
        i = bisect.bisect_left(self._seqs, seq)
        if i >= len(self._seqs) or self._seqs[i] != seq:
            return None
        start = self._starts[i]
        chain = [
            self._seqs[j]
            for j in range(bisect.bisect_left(self._seqs, start), i)
            if self._starts[j] == start
        ]
        objs = {s: self._read(s) for s in [*chain, seq]}
        refs = tuple((s, cap_time(parse_time(objs[s]["time"]))) for s in chain)
        t = objs[seq]
        msg_type = MSG_TYPES[t["type"]] if chain else "Alert"
        return CapEntry(seq, msg_type, {k: t.get(k) for k in _KEEP_KEYS}, refs)

    def _read(self, seq: int) -> dict[str, Any]:
        (found,) = self.log.read(seq, seq)
        obj: dict[str, Any] = found.obj()
        return obj

    def message(self, entry: CapEntry, *, geometry: bool = True) -> CapMessage:
        """The CAP message of an entry (without polygons when `geometry` is False: cheaper)."""
        return self._message(entry, geometry=geometry)

    def _message(self, entry: CapEntry, *, geometry: bool = True) -> CapMessage:
        t = entry.transition
        region = self.regions.get(str(t["region"]))
        eta = t.get("eta_s")
        sent = parse_time(t["time"])
        shape = region.geometry if geometry and not region.geometry.is_empty else None
        return alert_message(
            identifier=entry.identifier,
            sender=self.sender,
            sent=sent,
            expires=sent + self.expires,
            status=self.status,
            msg_type=entry.msg_type,
            alert_type=str(t["alert_type"]),
            severity=t.get("severity"),
            region_id=region.id,
            region_names=region.names,
            geometry=shape,
            geocodes=geocodes(self.regions, region.id),
            references=[(self.sender, identifier_for(s), sent) for s, sent in entry.references],
            causes=tuple(t.get("causes") or ()),
            eta_s=float(eta) if isinstance(eta, int | float) and eta >= 0 else None,
            log_index=log_index(t),
        )

    def xml(self, seq: int) -> bytes | None:
        """The CAP XML of the message made at `seq` (encoded once, then cached), or None."""
        with self._lock:
            cached = self._xml.get(seq)
            if cached is not None:
                self._xml.move_to_end(seq)
                return cached
        entry = self.entry(seq)
        if entry is None:
            return None
        body = encode(self._message(entry))
        with self._lock:
            self._xml[seq] = body
            while len(self._xml) > self.keep:
                self._xml.popitem(last=False)
        return body

    def feed(self, *, limit: int | None = None, updated: str | None = None) -> bytes:
        """The Atom feed of the latest messages, newest first, each linking to its XML.

        Links and ids are built on the configured public base URL, never on a request's
        `Host`. With `embed`, each entry also carries its message as its content (reads the
        messages it has not encoded yet: blocking I/O).
        """
        base = self.base_url
        entries: list[tuple[str, str, str, str]] = []
        bodies: dict[str, bytes] = {}
        for entry in reversed(self.latest.values()):
            if limit is not None and len(entries) >= limit:
                break
            english = self._message(entry, geometry=False).infos[-1]
            title = english.headline or english.event
            if entry.msg_type == "Update":
                title += f" (update: {entry.transition.get('severity')})"
            entries.append(
                (entry.identifier, title, entry.sent, f"{base}/cap/{entry.identifier}.xml")
            )
            if self.embed:
                body = self.xml(entry.seq)
                if body is not None:
                    bodies[entry.identifier] = body
        newest = entries[0][2] if entries else updated or "1970-01-01T00:00:00+00:00"
        return atom_feed(
            entries,
            feed_id=f"urn:tocsin:{self.sender}:cap",
            title=f"tocsin CAP alerts ({self.sender})",
            self_href=f"{base}/cap/feed.atom",
            updated=newest,
            contents=bodies,
        )

    def newest_sent(self) -> str | None:
        """`sent` of the newest message, or None before the first."""
        if not self.latest:
            return None
        return next(reversed(self.latest.values())).sent

    @staticmethod
    def sent_of(xml: bytes) -> str:
        """`sent` of an encoded message (for one no longer held in memory)."""
        return parse(xml).sent

    def signature(self, body: bytes) -> str | None:
        """The `X-CAP-Signature` header value for a body, or None when signing is off."""
        if self.signing_key is None:
            return None
        return "ed25519=" + _sign(body, self.signing_key)

    def public_key_pem(self) -> bytes | None:
        """The PEM public key that checks `X-CAP-Signature`, or None when signing is off."""
        if self.signing_key is None:
            return None
        return self.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _probe(regions: RegionSet) -> dict[str, Any]:
    return {
        "seq": 1, "type": "alert_started", "region": regions.leaves[0], "alert_type": "air_raid",
        "severity": "alert", "time": "2026-01-01T00:00:00Z", "causes": [], "eta_s": None,
    }
