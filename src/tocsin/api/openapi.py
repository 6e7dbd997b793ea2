"""The OpenAPI document as generated clients need it.

FastAPI describes what it can see in the handlers; this adds what it cannot:

- **Errors.** Every 4xx an operation can answer is declared with the body tocsin really sends:
  `Error` (`{"detail", "errors": [{"field", "reason"}]}`) on the tocsin API, `MessageError`
  (`{"message"}`) on the alerts.in.ua paths. FastAPI's `HTTPValidationError`, which tocsin never
  sends, is gone.
- **Authentication.** `bearerAuth` (HTTP bearer, a `tk_…` key) is declared per operation:
  required where a key is needed, optional (`[{}, {"bearerAuth": []}]`) on reads, which need one
  only on a `--private` server.
- **Events.** Each event type has its own schema, and `POST /api/v1/events` takes one of them
  or an array, discriminated by `type`.
- **CAP import.** `POST /api/v1/cap` takes the XML document as its body and answers
  `CapImportResult`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any, Final

from fastapi import FastAPI
from fastapi.routing import APIRoute

from tocsin.model import (
    ACTIONS,
    ALERT_TYPES,
    IMPACT_KINDS,
    OBJECT_CLASSES,
    PHASES,
    SIREN_STATES,
    TRACK_END_REASONS,
)

__all__ = ["EVENT_SCHEMAS", "install"]

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": description, **extra}


def _event(kind: str, required: list[str], fields: dict[str, Any], doc: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": doc.split(":")[0],
        "description": doc,
        "required": ["id", "type", "time", "source", *required],
        "properties": {
            "id": _string("unique per source", maxLength=256),
            "type": {"type": "string", "enum": [kind]},
            "time": {"type": "string", "format": "date-time",
                     "description": "RFC 3339 with an offset"},
            "source": _string("the sensor or console that saw it", maxLength=256),
            **fields,
        },
        "additionalProperties": True,  # extensions are kept in the log
    }


_REGIONS: Final = {"type": "array", "items": {"type": "string"}, "minItems": 1,
                   "description": "region ids at any level"}
EVENT_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "Position": {
        "type": "object", "required": ["lat", "lon"],
        "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                       "lon": {"type": "number", "minimum": -180, "maximum": 180},
                       "alt_m": {"type": "number", "minimum": -500, "maximum": 2_000_000}},
    },
    "DetectionEvent": _event("detection", ["track", "object", "position"], {
        "track": _string("track id"),
        "object": {"type": "string", "enum": list(OBJECT_CLASSES)},
        "weapon": {"type": "string", "pattern": "^[a-z0-9-]+$", "maxLength": 64,
                   "description": "weapon catalog id, e.g. shahed-136"},
        "position": _ref("Position"),
        "heading_deg": {"type": "number", "minimum": 0, "exclusiveMaximum": 360},
        "speed_kmh": {"type": "number", "minimum": 0, "maximum": 40_000},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "phase": {"type": "string", "enum": list(PHASES)},
        "affiliation": {"type": "string", "maxLength": 64,
                        "description": "recorded, never used to suppress an alert"},
    }, "detection: a sensor sees an object"),
    "TrackEndEvent": _event("track_end", ["track", "reason"], {
        "track": _string("track id"),
        "reason": {"type": "string", "enum": list(TRACK_END_REASONS)},
    }, "track_end: the object is gone"),
    "ImpactEvent": _event("impact", ["position", "kind"], {
        "position": _ref("Position"),
        "kind": {"type": "string", "enum": list(IMPACT_KINDS)},
        "track": _string("the track that fell, when known"),
    }, "impact: an explosion is reported"),
    "OperatorAlertEvent": _event("operator_alert",
                                 ["regions", "alert_type", "action", "operator"], {
        "regions": _REGIONS,
        "alert_type": {"type": "string", "enum": list(ALERT_TYPES)},
        "action": {"type": "string", "enum": list(ACTIONS)},
        "operator": _string("who"),
        "note": {"type": "string", "maxLength": 2000},
    }, "operator_alert: a person raises or clears an alert"),
    "ThreatLevelEvent": _event("threat_level", ["regions", "level", "operator"], {
        "regions": _REGIONS,
        "level": {"type": "integer", "minimum": 0, "maximum": 3},
        "operator": _string("who"),
        "note": {"type": "string", "maxLength": 2000},
    }, "threat_level: a standing regional regime"),
    "SirenStatusEvent": _event("siren_status", ["siren", "region", "status"], {
        "siren": _string("siren id"),
        "region": _string("the siren's region"),
        "status": {"type": "string", "enum": list(SIREN_STATES)},
        "reason": {"type": "string", "maxLength": 500},
    }, "siren_status: what a siren reports"),
}
_EVENT_TYPES: Final = {"detection": "DetectionEvent", "track_end": "TrackEndEvent",
                       "impact": "ImpactEvent", "operator_alert": "OperatorAlertEvent",
                       "threat_level": "ThreatLevelEvent", "siren_status": "SirenStatusEvent"}
_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    **EVENT_SCHEMAS,
    "Event": {
        "oneOf": [_ref(name) for name in _EVENT_TYPES.values()],
        "discriminator": {"propertyName": "type",
                          "mapping": {k: _REF + v for k, v in _EVENT_TYPES.items()}},
    },
    "FieldError": {
        "type": "object", "required": ["field", "reason"],
        "properties": {"field": {"type": "string", "description": "a.b[0] path of the field"},
                       "reason": {"type": "string"}},
    },
    "Error": {
        "type": "object", "required": ["detail"],
        "properties": {"detail": {"type": "string"},
                       "errors": {"type": "array", "items": _ref("FieldError"),
                                  "description": "each bad field (validation errors only)"}},
    },
    "MessageError": {"type": "object", "required": ["message"],
                     "properties": {"message": {"type": "string"}}},
    "CapImportResult": {
        "type": "object", "required": ["messages", "regions"],
        "properties": {
            "messages": {"type": "array", "items": {
                "type": "object", "additionalProperties": True,
                "properties": {
                    "identifier": {"type": "string"},
                    "action": {"type": "string", "enum": ["raise", "update", "clear", "none"]},
                    "alert_type": {"type": "string", "nullable": True},
                    "regions": {"type": "array", "items": {"type": "string"}},
                    "cleared": {"type": "array", "items": {"type": "string"}},
                    "kept": {"type": "array", "items": {"type": "string"}},
                    "reason": {"type": "string", "nullable": True}}}},
            "regions": {"type": "array", "items": {"type": "string"}},
        },
    },
}
_REASONS: Final = {
    "400": "Bad request", "401": "No key, or an unknown, revoked or malformed one",
    "403": "The key lacks the role", "404": "Not found", "409": "Conflict",
    "413": "Body too large", "422": "Invalid input: each bad field named",
    "429": "Rate limit exceeded",
}
_OPTIONAL: Final = ("reader", "compat_reader", "_view")  # public unless --private


def _calls(route: APIRoute) -> set[str]:
    names: set[str] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is not None:
            names.add(getattr(dep.call, "__name__", ""))
        stack.extend(dep.dependencies)
    return names


def _amend(schema: dict[str, Any], routes: list[APIRoute]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for gone in ("HTTPValidationError", "ValidationError"):
        schemas.pop(gone, None)
    schemas.update(copy.deepcopy(_SCHEMAS))
    components["securitySchemes"] = {"bearerAuth": {
        "type": "http", "scheme": "bearer", "description": "an API key, tk_…"}}
    seen: set[tuple[str, str]] = set()
    for route in routes:
        calls = _calls(route)
        for method in route.methods or ():
            op = schema["paths"].get(route.path_format, {}).get(method.lower())
            if op is None:
                continue
            seen.add((route.path_format, method.lower()))
            optional = bool(calls & set(_OPTIONAL))
            required = not optional and bool(calls & {"authenticate", "admin_service"})
            if optional:
                op["security"] = [{}, {"bearerAuth": []}]
            elif required:
                op["security"] = [{"bearerAuth": []}]
            # 404 on every operation: besides unknown path parameters, resources can be absent
            # (no CAP signing key, no Home Front Command areas in the region set, ...)
            codes = {"404"}
            if optional or required:
                codes.update({"401", "429"})
            if required:
                codes.add("403")
            if "alerts.in.ua" in op.get("tags", ()):
                codes.add("400")
            if method in ("POST", "DELETE"):
                codes.add("409")  # the state does not allow it (sirens off, a duplicate, ...)
            if op.get("parameters") or "requestBody" in op:
                codes.add("422")
            if "requestBody" in op:
                codes.add("413")
            responses = op.setdefault("responses", {})
            codes.update(c for c in responses if c.startswith("4"))
            body = _ref("MessageError") if "alerts.in.ua" in op.get("tags", ()) else \
                _ref("Error")
            for code in sorted(codes):
                described = responses.get(code, {}).get("description") or _REASONS.get(code,
                                                                                      "Error")
                responses[code] = {"description": described,
                                   "content": {"application/json": {"schema": body}}}
    # operations served outside FastAPI's routing (the bare SSE endpoint): reads, public
    # unless --private; their errors are tocsin's too
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if (path, method) in seen or not isinstance(op, dict):
                continue
            op["security"] = [{}, {"bearerAuth": []}]
            responses = op.setdefault("responses", {})
            for code in sorted({"401", "404", "422", "429", *responses}):
                if code.startswith("4"):
                    responses[code] = {
                        "description": responses.get(code, {}).get("description")
                        or _REASONS.get(code, "Error"),
                        "content": {"application/json": {"schema": _ref("Error")}}}
    events = schema["paths"].get("/api/v1/events", {}).get("post")
    if events is not None:
        events["responses"]["409"]["description"] = (
            "An id already logged for this source with a different body")
        events["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [_ref("Event"), {"type": "array", "items": _ref("Event"), "minItems": 1}],
        }}}}
    cap = schema["paths"].get("/api/v1/cap", {}).get("post")
    if cap is not None:
        xml = {"schema": {"type": "string", "format": "binary",
                          "description": "a CAP 1.2 document (plain, EDXL-DE wrapped, an "
                          "<alerts> collection, or XML-DSig signed)"}}
        # octet-stream too: the same bytes, for generators that know no XML media types
        cap["requestBody"] = {"required": True, "content": {
            "application/cap+xml": xml, "application/xml": xml, "application/octet-stream": xml}}
        cap["responses"]["202"] = {
            "description": "Accepted; `regions` lists what it raised",
            "content": {"application/json": {"schema": _ref("CapImportResult")}}}
    return schema


def _api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every operation's route, also inside included routers (which newer FastAPI keeps as
    wrappers; the routers here are included without a prefix of their own)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)


def install(app: FastAPI) -> None:
    """Serve the amended document at `/openapi.json` (built once, on first request)."""

    generate = type(app).openapi  # the app class's own (it may add operations of its own)
    amended: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not amended:
            amended.append(_amend(generate(app), list(_api_routes(app.routes))))
            app.openapi_schema = amended[0]
        return amended[0]

    setattr(app, "openapi", openapi)  # noqa: B010 (FastAPI's documented override)
