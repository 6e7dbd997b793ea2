"""CAP 1.2 XML: `encode`, `validate`, `parse` against the bundled OASIS schema."""

from __future__ import annotations

import copy
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Final

import xmlschema

from tocsin.outputs.cap.model import (
    CAP_NS,
    CapArea,
    CapError,
    CapInfo,
    CapMessage,
    CapResource,
    Ring,
)

__all__ = ["add_text", "encode", "parse", "parse_all", "validate"]

_C: Final = "{" + CAP_NS + "}"
_DSIG: Final = "{http://www.w3.org/2000/09/xmldsig#}"
_ATOM_FEED: Final = "{http://www.w3.org/2005/Atom}feed"
_CAP11_NS: Final = "urn:oasis:names:tc:emergency:cap:1.1"
_TIME_RE: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
# CAP 1.2 section 3.2.1: identifiers and senders carry no spaces, commas, `<` or `&`, which is
# what lets `references` be a space-separated list of comma-separated triples.
_TOKEN_RE: Final = re.compile(r"^[^\s,<&]+$")
_NUMBER_RE: Final = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_XML_ILLEGAL_RE: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@cache
def _schema() -> Any:
    """The CAP 1.2 schema, built once on first use from the bundled XSD."""
    text = resources.files("tocsin.outputs").joinpath("data/CAP-v1.2.xsd").read_text("utf-8")
    return xmlschema.XMLSchema(text)


def _short(text: str) -> str:
    return text.replace(_C, "cap:").replace(_DSIG, "ds:")


class _NoDoctype(ET.TreeBuilder):
    """Tree builder that refuses DTDs: CAP uses none, and entity expansion is an attack surface."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise CapError("a DOCTYPE declaration is not accepted in a CAP document")


def _read_xml(xml: bytes) -> ET.Element:
    # Bytes go to expat unchanged so the declared encoding (e.g. ISO-8859-1) is honoured.
    parser = ET.XMLParser(target=_NoDoctype())
    try:
        parser.feed(xml)
        root = parser.close()
    except ET.ParseError as exc:
        raise CapError(f"not well-formed XML: {exc}") from None
    except (LookupError, ValueError) as exc:  # an unknown or unusable declared encoding
        raise CapError(f"unreadable XML: {exc}") from None
    if not isinstance(root, ET.Element):
        raise CapError("not an XML document")
    return root


def _alerts(root: ET.Element) -> list[ET.Element]:
    """The CAP alert elements of a document: itself, an EDXL-DE payload, or a collection."""
    tag = root.tag
    local = tag.rpartition("}")[2]
    if tag == _C + "alert":
        return [root]
    if tag == _C + "alerts":
        # Not CAP itself, but some feeds (SMHI) publish their alerts in one such collection.
        found = root.findall(_C + "alert")
    elif local == "EDXLDistribution":
        # EDXL-DE 1.0: contentObject/xmlContent/embeddedXMLContent/alert; matched by local name
        # so the same walk reads 2.0's contentXML.
        found = [
            alert
            for obj in root
            if obj.tag.rpartition("}")[2] == "contentObject"
            for xml_content in obj
            if xml_content.tag.rpartition("}")[2] in ("xmlContent", "contentXML")
            for embedded in xml_content
            if embedded.tag.rpartition("}")[2] == "embeddedXMLContent"
            for alert in embedded
            if alert.tag == _C + "alert"
        ]
        if not found:
            raise CapError("the EDXL-DE distribution carries no embedded CAP 1.2 alert")
    elif tag == _ATOM_FEED:
        raise CapError(
            "an Atom feed, not a CAP alert: fetch each entry's linked CAP message and parse that"
        )
    elif tag.startswith("{" + _CAP11_NS + "}"):
        raise CapError("a CAP 1.1 message; only CAP 1.2 is accepted")
    else:
        raise CapError(f"not a CAP 1.2 alert: the root element is {_short(tag)}")
    if not found:
        raise CapError("the document holds no CAP 1.2 alert")
    return found


def _checked(alert: ET.Element, label: str) -> tuple[ET.Element, bool]:
    """Schema-check one alert with any XML-DSig signature removed; return it and `signed`."""
    clean = copy.deepcopy(alert)
    # The signature is opaque here: CAP's schema admits it only laxly, and real ones (Canada's
    # NAAD) carry attributes that a lax check still rejects, so it is set aside before the check.
    signatures = [child for child in clean if child.tag.startswith(_DSIG)]
    for child in signatures:
        clean.remove(child)
    try:
        errors = list(_schema().iter_errors(clean))
    except (xmlschema.XMLSchemaException, ValueError, TypeError) as exc:
        raise CapError(f"{label}the schema check could not read the document: {exc}") from None
    if errors:
        problems = [(_reason(e), _short(str(e.path or "/"))) for e in errors]
        reason, path = problems[0]
        more = [f"{r} (at {p})" for r, p in problems[1:]]
        raise CapError(f"{label}CAP 1.2 schema: {reason}", path, more)
    return clean, bool(signatures)


def _reason(error: Any) -> str:
    reason = _short(str(error.reason or error.message))
    # A bad value is easier to fix when the message shows it; elements are already in the path.
    if isinstance(error.obj, str):
        reason += f" (got {error.obj[:60]!r})"
    return reason


def validate(xml: bytes) -> None:
    """Check a document against the CAP 1.2 schema; raise `CapError` with the reason and path."""
    alerts = _alerts(_read_xml(xml))
    for i, alert in enumerate(alerts):
        _checked(alert, _label(i, len(alerts)))


def _label(i: int, n: int) -> str:
    return f"alert {i + 1} of {n}: " if n > 1 else ""


# --- out ------------------------------------------------------------------------------------------


def _num(x: float, where: str) -> str:
    """Plain decimal notation that reads back to the same float (CAP has no exponents)."""
    if not math.isfinite(x):
        raise CapError(f"{where}: {x} is not a finite number")
    return format(Decimal(repr(float(x))), "f")


def add_text(parent: ET.Element, tag: str, text: str) -> None:
    """Append `<tag>text</tag>`; `CapError` if the text holds a character XML cannot carry."""
    if _XML_ILLEGAL_RE.search(text):
        raise CapError(f"{tag}: contains a character XML cannot carry", _short(parent.tag))
    ET.SubElement(parent, tag).text = text


def _maybe(parent: ET.Element, tag: str, text: str | None) -> None:
    if text is not None:
        add_text(parent, tag, text)


def _pairs(parent: ET.Element, tag: str, pairs: Sequence[tuple[str, str]]) -> None:
    for name, value in pairs:
        el = ET.SubElement(parent, tag)
        add_text(el, "valueName", name)
        add_text(el, "value", value)


def _token(value: str, what: str) -> str:
    if not _TOKEN_RE.match(value):
        raise CapError(f"{what} {value!r} must be non-empty with no spaces, commas, '<' or '&'")
    return value


def _ring_text(ring: Ring, where: str) -> str:
    if len(ring) < 4 or ring[0] != ring[-1]:
        raise CapError(f"{where}: a polygon needs at least 4 points and must end where it starts")
    for lat, lon in ring:
        _check_latlon(lat, lon, where)
    return " ".join(f"{_num(lat, where)},{_num(lon, where)}" for lat, lon in ring)


def _check_latlon(lat: float, lon: float, where: str) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise CapError(f"{where}: ({lat}, {lon}) is not a latitude,longitude pair")


def _encode_area(parent: ET.Element, area: CapArea) -> None:
    el = ET.SubElement(parent, "area")
    add_text(el, "areaDesc", area.desc)
    for ring in area.polygons:
        add_text(el, "polygon", _ring_text(ring, "polygon"))
    for lat, lon, radius in area.circles:
        _check_latlon(lat, lon, "circle")
        if not radius >= 0:
            raise CapError(f"circle: radius {radius} km must be zero or more")
        centre = f"{_num(lat, 'circle')},{_num(lon, 'circle')}"
        add_text(el, "circle", f"{centre} {_num(radius, 'circle')}")
    _pairs(el, "geocode", area.geocodes)
    if area.altitude is not None:
        add_text(el, "altitude", _num(area.altitude, "altitude"))
    if area.ceiling is not None:
        add_text(el, "ceiling", _num(area.ceiling, "ceiling"))


def _encode_info(parent: ET.Element, info: CapInfo) -> None:
    el = ET.SubElement(parent, "info")
    add_text(el, "language", info.language)
    for category in info.categories:
        add_text(el, "category", category)
    add_text(el, "event", info.event)
    for response in info.response_types:
        add_text(el, "responseType", response)
    add_text(el, "urgency", info.urgency)
    add_text(el, "severity", info.severity)
    add_text(el, "certainty", info.certainty)
    _maybe(el, "audience", info.audience)
    _pairs(el, "eventCode", info.event_codes)
    _maybe(el, "effective", info.effective)
    _maybe(el, "onset", info.onset)
    _maybe(el, "expires", info.expires)
    _maybe(el, "senderName", info.sender_name)
    _maybe(el, "headline", info.headline)
    _maybe(el, "description", info.description)
    _maybe(el, "instruction", info.instruction)
    _maybe(el, "web", info.web)
    _maybe(el, "contact", info.contact)
    _pairs(el, "parameter", info.parameters)
    for res in info.resources:
        r = ET.SubElement(el, "resource")
        add_text(r, "resourceDesc", res.desc)
        add_text(r, "mimeType", res.mime_type)
        _maybe(r, "size", None if res.size is None else str(res.size))
        _maybe(r, "uri", res.uri)
        _maybe(r, "derefUri", res.deref_uri)
        _maybe(r, "digest", res.digest)
    for area in info.areas:
        _encode_area(el, area)


def encode(msg: CapMessage) -> bytes:
    """Write a message as CAP 1.2 XML (UTF-8, with declaration); `CapError` if it would be invalid.

    Elements follow the schema's order. An XML-DSig signature a parsed message arrived with is
    not written back: it signed other bytes.
    """
    root = ET.Element("alert", {"xmlns": CAP_NS})
    add_text(root, "identifier", _token(msg.identifier, "identifier"))
    add_text(root, "sender", _token(msg.sender, "sender"))
    add_text(root, "sent", msg.sent)
    add_text(root, "status", msg.status)
    add_text(root, "msgType", msg.msg_type)
    _maybe(root, "source", msg.source)
    add_text(root, "scope", msg.scope)
    _maybe(root, "restriction", msg.restriction)
    _maybe(root, "addresses", msg.addresses)
    for code in msg.code:
        add_text(root, "code", code)
    _maybe(root, "note", msg.note)
    if msg.references:
        refs = [
            f"{_token(s, 'reference sender')},{_token(i, 'reference identifier')},{_ref_time(t)}"
            for s, i, t in msg.references
        ]
        add_text(root, "references", " ".join(refs))
    _maybe(root, "incidents", msg.incidents)
    for info in msg.infos:
        _encode_info(root, info)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")
    validate(xml)
    return xml


def _ref_time(value: str) -> str:
    if not _TIME_RE.match(value):
        raise CapError(f"reference sent {value!r} is not a CAP time like 2026-11-25T03:00:00+00:00")
    return value


# --- in -------------------------------------------------------------------------------------------


def parse(xml: bytes) -> CapMessage:
    """Read one CAP 1.2 message (plain, EDXL-DE-wrapped or signed); `CapError` if it is invalid."""
    messages = parse_all(xml)
    if len(messages) != 1:
        raise CapError(f"the document holds {len(messages)} CAP alerts; read it with parse_all")
    return messages[0]


def parse_all(xml: bytes) -> tuple[CapMessage, ...]:
    """Read every CAP 1.2 alert of a document, e.g. an EDXL-DE distribution or an `<alerts>` list.

    Every alert must be valid: one bad alert fails the whole document, naming which one.
    """
    alerts = _alerts(_read_xml(xml))
    out: list[CapMessage] = []
    for i, alert in enumerate(alerts):
        label = _label(i, len(alerts))
        clean, signed = _checked(alert, label)
        try:
            out.append(_message(clean, signed))
        except CapError as exc:
            if not label:
                raise
            raise CapError(label + exc.reason, exc.path) from None
    return tuple(out)


def _text(el: ET.Element) -> str:
    return (el.text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


class _Kids:
    """The CAP children of one element, by local name, in document order."""

    __slots__ = ("by_name",)

    def __init__(self, el: ET.Element) -> None:
        self.by_name: dict[str, list[ET.Element]] = {}
        for child in el:
            if child.tag.startswith(_C):
                self.by_name.setdefault(child.tag[len(_C) :], []).append(child)

    def all(self, name: str) -> list[ET.Element]:
        return self.by_name.get(name, [])

    def texts(self, name: str) -> tuple[str, ...]:
        return tuple(_text(el) for el in self.all(name))

    def opt(self, name: str) -> str | None:
        found = self.all(name)
        return _text(found[0]) if found else None

    def one(self, name: str) -> str:
        return self.opt(name) or ""

    def pairs(self, name: str) -> tuple[tuple[str, str], ...]:
        return tuple((_Kids(el).one("valueName"), _Kids(el).one("value")) for el in self.all(name))

    def number(self, name: str, where: str) -> float | None:
        text = self.opt(name)
        if text is None:
            return None
        value = float(text)  # the schema has checked it is an xs:decimal
        if not math.isfinite(value):
            raise CapError(f"{name} {text[:40]!r} is out of range", where)
        return value


def _message(alert: ET.Element, signed: bool) -> CapMessage:
    kids = _Kids(alert)
    return CapMessage(
        identifier=kids.one("identifier"),
        sender=kids.one("sender"),
        sent=kids.one("sent"),
        status=kids.one("status"),
        msg_type=kids.one("msgType"),
        scope=kids.one("scope"),
        source=kids.opt("source"),
        restriction=kids.opt("restriction"),
        addresses=kids.opt("addresses"),
        code=kids.texts("code"),
        note=kids.opt("note"),
        references=_references(kids.opt("references")),
        incidents=kids.opt("incidents"),
        infos=tuple(
            _info(el, f"/cap:alert/cap:info[{i}]") for i, el in enumerate(kids.all("info"), 1)
        ),
        signed=signed,
    )


def _references(text: str | None) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    for item in (text or "").split():
        parts = item.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError(
                f"references: {item[:80]!r} is not a sender,identifier,sent triple",
                "/cap:alert/cap:references",
            )
        out.append((parts[0], parts[1], parts[2]))
    return tuple(out)


def _info(el: ET.Element, where: str) -> CapInfo:
    kids = _Kids(el)
    return CapInfo(
        language=kids.opt("language") or "en-US",
        categories=kids.texts("category"),
        event=kids.one("event"),
        response_types=kids.texts("responseType"),
        urgency=kids.one("urgency"),
        severity=kids.one("severity"),
        certainty=kids.one("certainty"),
        audience=kids.opt("audience"),
        event_codes=kids.pairs("eventCode"),
        effective=kids.opt("effective"),
        onset=kids.opt("onset"),
        expires=kids.opt("expires"),
        sender_name=kids.opt("senderName"),
        headline=kids.opt("headline"),
        description=kids.opt("description"),
        instruction=kids.opt("instruction"),
        web=kids.opt("web"),
        contact=kids.opt("contact"),
        parameters=kids.pairs("parameter"),
        resources=tuple(_resource(r) for r in kids.all("resource")),
        areas=tuple(_area(a, f"{where}/cap:area[{i}]") for i, a in enumerate(kids.all("area"), 1)),
    )


def _resource(el: ET.Element) -> CapResource:
    kids = _Kids(el)
    size = kids.opt("size")
    size_value: int | None = None
    if size is not None:
        try:
            size_value = int(size)
        except ValueError:  # an xs:integer longer than Python will convert
            raise CapError(f"resource size {size[:40]!r}... is out of range") from None
    return CapResource(
        desc=kids.one("resourceDesc"),
        mime_type=kids.one("mimeType"),
        size=size_value,
        uri=kids.opt("uri"),
        deref_uri=kids.opt("derefUri"),
        digest=kids.opt("digest"),
    )


def _area(el: ET.Element, where: str) -> CapArea:
    kids = _Kids(el)
    return CapArea(
        desc=kids.one("areaDesc"),
        polygons=tuple(
            _ring(text, f"{where}/cap:polygon[{i}]")
            for i, text in enumerate(kids.texts("polygon"), 1)
        ),
        circles=tuple(
            _circle(text, f"{where}/cap:circle[{i}]")
            for i, text in enumerate(kids.texts("circle"), 1)
        ),
        geocodes=kids.pairs("geocode"),
        altitude=kids.number("altitude", where),
        ceiling=kids.number("ceiling", where),
    )


def _decimal(text: str, what: str, where: str) -> float:
    # float() alone would also take "nan", "inf" and "1_0"; CAP means plain decimal numbers.
    value = float(text) if _NUMBER_RE.match(text) else math.nan
    if not math.isfinite(value):
        raise CapError(f"{what}: {text[:40]!r} is not a number", where)
    return value


def _point(token: str, where: str) -> tuple[float, float]:
    parts = token.split(",")
    if len(parts) != 2:
        raise CapError(f"{token[:40]!r} is not a lat,lon pair", where)
    lat = _decimal(parts[0], "latitude", where)
    lon = _decimal(parts[1], "longitude", where)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise CapError(f"{token[:40]!r} is outside -90..90 latitude, -180..180 longitude", where)
    return (lat, lon)


def _ring(text: str, where: str) -> Ring:
    points = [_point(token, where) for token in text.split()]
    # Some senders leave the ring open; the area they mean is unambiguous, so close it.
    if len(points) >= 3 and points[0] != points[-1]:
        points.append(points[0])
    if len(points) < 4:
        raise CapError("a polygon needs at least 3 corners (4 points, the first repeated)", where)
    return tuple(points)


def _circle(text: str, where: str) -> tuple[float, float, float]:
    tokens = text.split()
    if len(tokens) != 2:
        raise CapError(f"a circle is 'lat,lon radius_km', not {text[:60]!r}", where)
    lat, lon = _point(tokens[0], where)
    radius = _decimal(tokens[1], "radius", where)
    if radius < 0:
        raise CapError(f"circle radius {radius} km is negative", where)
    return (lat, lon, radius)
