"""RFC 8785 JSON Canonicalization Scheme (JCS): exactly one byte string per JSON value.

Theory of operation. Every log entry is canonicalised once, so the common case must cost a few
microseconds. The standard library's C encoder (`sort_keys`, no whitespace, no ASCII escaping)
already writes what JCS writes for strings, booleans, null, integers and most floats, and sorts
keys by code point, which equals RFC 8785's UTF-16 code-unit order whenever no key holds a
character outside the Basic Multilingual Plane. A quick walk (`_prepare`) checks that a value is
in that safe subset, swapping integral floats for ints (`1.0` must come out as `1`); anything
outside it (non-BMP keys, floats below 1e-4 or of 2**53 and above, subclasses, tuples, other
mappings) takes the general encoder `_write`, a direct transcription of the RFC. Tests check that
both paths agree on random values.

Values must be I-JSON (RFC 7493), whose numbers are IEEE 754 doubles. NaN, infinities, strings
that are not valid Unicode (lone surrogates) and integers that would not come back unchanged
raise `ValueError` rather than be silently altered; objects that are not JSON raise `TypeError`.
An integer comes back unchanged when JCS writes the double nearest to it with exactly its digits:
every integer up to 2**53 in magnitude, and beyond that only those already in canonical form
(2**53 + 1 is refused, 295147905179352830000 is kept). That rule also makes the output stable
under Python's own parser, which reads `1e16`'s canonical text `10000000000000000` as an int.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Final, cast

__all__ = ["MAX_SAFE_INTEGER", "canonical_json", "format_number"]

MAX_SAFE_INTEGER: Final = 2**53 - 1

# One encoder, built once: constructing it per call costs about as much as encoding a small dict.
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    sort_keys=True,
    allow_nan=False,
    check_circular=False,
)

_ESCAPES: Final[dict[str, str]] = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
for _code in range(0x20):
    _ESCAPES.setdefault(chr(_code), f"\\u{_code:04x}")
del _code
_NEEDS_ESCAPE: Final = re.compile(r'[\x00-\x1f"\\]')
_NOT_UNICODE: Final = "strings must be valid Unicode (a lone surrogate was found)"


class _General(Exception):
    """The value is outside the subset the standard encoder writes canonically."""


def canonical_json(value: object) -> bytes:
    """Return the RFC 8785 canonical UTF-8 form of a JSON value."""
    try:
        text = _ENCODER.encode(_prepare(value))
    except _General:
        parts: list[str] = []
        _write(value, parts)
        text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(_NOT_UNICODE) from None


def format_number(value: float) -> str:
    """Write a finite float as ECMAScript's `Number.prototype.toString` (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a JSON number")
    if value == 0:
        return "0"  # -0.0 too: ECMAScript prints both zeros as "0"
    # repr gives the shortest digit string that round-trips, the same digits ECMAScript picks;
    # only their layout (where the point goes, when to switch to an exponent) differs.
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    # value = 0.<digits> * 10**point
    point = len(whole) + (int(exp_text) if exp_text else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        body = digits + "0" * (point - k)
    elif 0 < point <= 21:
        body = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        body = "0." + "0" * -point + digits
    else:
        exponent = point - 1
        body = digits[0] + ("." + digits[1:] if k > 1 else "")
        body += ("e+" if exponent >= 0 else "e-") + str(abs(exponent))
    return sign + body


def _prepare(value: object) -> object:
    """Return `value`, or a copy with integral floats as ints, that `_ENCODER` writes as JCS."""
    if type(value) is dict:
        return _prepare_dict(value)
    if type(value) is list:
        return _prepare_list(value)
    if type(value) is str or value is None or type(value) is bool:
        return value
    if type(value) is float:
        return _prepare_float(value)
    if type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    raise _General


def _prepare_float(value: float) -> float | int:
    """Return a float, or the int that prints as it should, or raise `_General`."""
    if value.is_integer():
        # Below 2**53 every integer is a distinct double, so its shortest digits are all of it.
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int(value)
        raise _General
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a JSON number")
    # Non-integral and at least 1e-4: repr uses plain decimal notation, exactly as ECMAScript.
    if abs(value) >= 1e-4:
        return value
    raise _General


def _prepare_dict(value: dict[object, object]) -> dict[object, object]:
    """Check one object level (keys and members) for the fast path."""
    copy: dict[object, object] | None = None
    new: object
    for key, item in value.items():
        if type(key) is not str:
            raise _General
        # Dispatch inline on the common member types: this loop is most of the fast path's cost.
        if type(item) is str:
            continue
        if type(item) is float:
            new = _prepare_float(item)
        elif type(item) is int:
            if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            raise _General
        elif type(item) is dict:
            new = _prepare_dict(item)
        elif type(item) is list:
            new = _prepare_list(item)
        elif item is None or type(item) is bool:
            continue
        else:
            raise _General
        if new is not item:
            if copy is None:
                copy = dict(value)
            copy[key] = new
    # Only characters beyond U+FFFF sort differently by code point and by UTF-16 code unit.
    keys = "".join(cast("dict[str, object]", value))
    if not keys.isascii() and max(keys) > "\uffff":
        raise _General
    return value if copy is None else copy


def _prepare_list(value: list[object]) -> list[object]:
    """Check one array level for the fast path."""
    copy: list[object] | None = None
    for index, item in enumerate(value):
        new = _prepare(item)
        if new is not item:
            if copy is None:
                copy = list(value)
            copy[index] = new
    return value if copy is None else copy


def _write(value: object, parts: list[str]) -> None:
    """Append the canonical text of `value` to `parts` (RFC 8785 §3.2, any JSON-like value)."""
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(_quote(value))
    elif isinstance(value, int):
        parts.append(_format_integer(int(value)))
    elif isinstance(value, float):
        parts.append(format_number(float(value)))
    elif isinstance(value, Mapping):
        members: list[tuple[bytes, str, object]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
            try:
                order = key.encode("utf-16-be")
            except UnicodeEncodeError:
                raise ValueError(_NOT_UNICODE) from None
            members.append((order, key, item))
        # Big-endian UTF-16 bytes compare exactly as RFC 8785 §3.2.3's code-unit order.
        members.sort(key=lambda member: member[0])
        parts.append("{")
        for position, (_, key, item) in enumerate(members):
            if position:
                parts.append(",")
            parts.append(_quote(key))
            parts.append(":")
            _write(item, parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for position, item in enumerate(value):
            if position:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def _format_integer(value: int) -> str:
    """Write an integer, or raise `ValueError` if its JSON double would print differently."""
    text = str(value)
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return text
    try:
        unchanged = format_number(float(value)) == text
    except OverflowError:
        unchanged = False
    if not unchanged:
        raise ValueError(f"integer {value} cannot be written exactly as a JSON (IEEE 754) number")
    return text


def _quote(text: str) -> str:
    """Quote a string with RFC 8785 §3.2.2.2's minimal escaping."""
    return '"' + _NEEDS_ESCAPE.sub(lambda match: _ESCAPES[match.group()], text) + '"'
