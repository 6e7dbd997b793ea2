"""An Atom feed of CAP messages and detached Ed25519 signatures over their bytes."""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from tocsin.outputs.cap.codec import add_text
from tocsin.outputs.cap.model import CapError

__all__ = ["atom_feed", "sign_detached", "verify_detached"]

_ATOM_NS: Final = "http://www.w3.org/2005/Atom"
_IRI_SCHEME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


def atom_feed(
    entries: Sequence[tuple[str, str, str, str]],
    *,
    feed_id: str,
    title: str,
    self_href: str,
    updated: str,
    author: str | None = None,
    contents: Mapping[str, bytes] | None = None,
) -> bytes:
    """An Atom 1.0 feed of CAP messages, newest first (then by identifier).

    `entries` are (identifier, title, updated, href) with `updated` an RFC 3339 time such as
    `cap_time` gives; each entry links to its message with `rel="alternate"` and type
    `application/cap+xml`. `author` defaults to the feed title (Atom requires one).
    `contents` maps identifiers to their CAP XML, embedded as the entry's content.
    """
    _instant(updated, "updated")
    ordered = sorted(entries, key=lambda e: (-_instant(e[2], "entry updated"), e[0]))
    root = ET.Element("feed", {"xmlns": _ATOM_NS})
    add_text(root, "id", feed_id)
    add_text(root, "title", title)
    add_text(root, "updated", updated)
    ET.SubElement(root, "link", {"rel": "self", "type": "application/atom+xml", "href": self_href})
    add_text(ET.SubElement(root, "author"), "name", author or title)
    for identifier, entry_title, entry_updated, href in ordered:
        entry = ET.SubElement(root, "entry")
        # atom:id must be an absolute IRI; an identifier that is not one is replaced by the
        # message's own address, which is just as stable.
        add_text(entry, "id", identifier if _IRI_SCHEME_RE.match(identifier) else href)
        add_text(entry, "title", entry_title)
        add_text(entry, "updated", entry_updated)
        ET.SubElement(
            entry, "link", {"rel": "alternate", "type": "application/cap+xml", "href": href}
        )
        xml = (contents or {}).get(identifier)
        if xml is not None:
            content = ET.SubElement(entry, "content", {"type": "application/cap+xml"})
            content.append(ET.fromstring(xml))
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


def _instant(value: str, what: str) -> float:
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.tzinfo is None or "T" not in value:
        raise ValueError(f"{what} {value!r} is not an RFC 3339 time with an offset")
    return dt.timestamp()


def sign_detached(xml: bytes, private_key: Ed25519PrivateKey) -> str:
    """Base64 Ed25519 signature over the exact bytes, for an HTTP header next to the body."""
    return base64.b64encode(private_key.sign(xml)).decode("ascii")


def verify_detached(xml: bytes, signature: str, public_key: Ed25519PublicKey) -> None:
    """Check a `sign_detached` signature over the exact bytes; `CapError` if it does not match."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise CapError("the signature is not base64") from None
    try:
        public_key.verify(raw, xml)
    except InvalidSignature:
        raise CapError("the signature does not match these bytes") from None
