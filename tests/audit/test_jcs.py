"""RFC 8785 canonical JSON: the RFC's examples, its number vectors, and random round trips."""

from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import IntEnum
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.audit.jcs import _General, _prepare, _write, canonical_json, format_number

# --- RFC 8785 §3.2.2 / §3.2.4: the sample object and its canonical UTF-8 bytes ---

RFC_SAMPLE_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC_SAMPLE_OUTPUT = (
    r"""{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"""
    r""""string":"€$\u000f\nA'B\"\\\\\"/"}"""
)
RFC_SAMPLE_HEX = (
    "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72"
    "75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a"
    "5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31"
    "65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37"
    "5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30"
    "30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d"
)

# --- RFC 8785 §3.2.3: sorting by UTF-16 code units ---

RFC_SORTING_INPUT = r"""{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"""
RFC_SORTING_OUTPUT = (
    '{"\\r":"Carriage Return","1":"One","\x80":"Control",'
    '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
    '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
)

# --- The RFC's published test data (input, expected UTF-8 as hex) ---

RFC_TEST_DATA = {
    "arrays": (
        '[56, {"d": true, "10": null, "1": [ ]}]',
        "5b35362c7b2231223a5b5d2c223130223a6e756c6c2c2264223a747275657d5d",
    ),
    "french": (
        '{"peach": "This sorting order", "p\u00e9ch\u00e9": "is wrong according to French",'
        ' "p\u00eache": "but canonicalization MUST", "sin": "ignore locale"}',
        "7b227065616368223a225468697320736f7274696e67206f72646572222c2270c3a96368c3a9223a22"
        "69732077726f6e67206163636f7264696e6720746f204672656e6368222c2270c3aa636865223a2262"
        "75742063616e6f6e6963616c697a6174696f6e204d555354222c2273696e223a2269676e6f7265206c"
        "6f63616c65227d",
    ),
    "structures": (
        '{"1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0}, "10": { }, "": "empty", "a": { },'
        ' "111": [ {"e": "yes","E": "no" } ], "A": { }}',
        "7b22223a22656d707479222c2231223a7b225c6e223a35362c2266223a7b2246223a352c2266223a22"
        "6869227d7d2c223130223a7b7d2c22313131223a5b7b2245223a226e6f222c2265223a22796573227d"
        "5d2c2241223a7b7d2c2261223a7b7d7d",
    ),
    "unicode": (
        '{"Unnormalized Unicode":"A\\u030a"}',
        "7b22556e6e6f726d616c697a656420556e69636f6465223a2241cc8a227d",
    ),
    "weird": (
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\u000a": "Newline", "1": "One",'
        ' "\\u0080": "Control\\u007f", "\\ud83d\\ude02": "Smiley",'
        ' "\\u00f6": "Latin Small Letter O With Diaeresis",'
        ' "\\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge"}',
        "7b225c6e223a224e65776c696e65222c225c72223a2243617272696167652052657475726e222c2231"
        "223a224f6e65222c223c2f7363726970743e223a2242726f77736572204368616c6c656e6765222c22"
        "c280223a22436f6e74726f6c7f222c22c3b6223a224c6174696e20536d616c6c204c6574746572204f"
        "205769746820446961657265736973222c22e282ac223a224575726f205369676e222c22f09f988222"
        "3a22536d696c6579222c22efacb3223a22486562726577204c65747465722044616c65742057697468"
        "20446167657368227d",
    ),
}

# --- RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript text ---

APPENDIX_B = [
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7FEFFFFFFFFFFFFF, "1.7976931348623157e+308"),
    (0xFFEFFFFFFFFFFFFF, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xC340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44B52D02C7E14AF5, "9.999999999999997e+22"),
    (0x44B52D02C7E14AF6, "1e+23"),
    (0x44B52D02C7E14AF7, "1.0000000000000001e+23"),
    (0x444B1AE4D6E2EF4E, "999999999999999700000"),
    (0x444B1AE4D6E2EF4F, "999999999999999900000"),
    (0x444B1AE4D6E2EF50, "1e+21"),
    (0x3EB0C6F7A0B5ED8C, "9.999999999999997e-7"),
    (0x3EB0C6F7A0B5ED8D, "0.000001"),
    (0x41B3DE4355555553, "333333333.3333332"),
    (0x41B3DE4355555554, "333333333.33333325"),
    (0x41B3DE4355555555, "333333333.3333333"),
    (0x41B3DE4355555556, "333333333.3333334"),
    (0x41B3DE4355555557, "333333333.33333343"),
    (0xBECBF647612F3696, "-0.0000033333333333333333"),
    (0x43143FF3C1CB0959, "1424953923781206.2"),
]
APPENDIX_B_ERRORS = [0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000, 0xFFF0000000000000]


def from_bits(bits: int) -> float:
    """The double with this IEEE 754 bit pattern."""
    value: float = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    return value


def general(value: object) -> bytes:
    """The general (spec-transcribing) encoder alone, bypassing the fast path."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("utf-8")


def ecmascript(value: float) -> str:
    """An independent Number::toString: shortest digits found with exact decimals, then layout."""
    if value == 0:
        return "0"
    if value < 0:
        return "-" + ecmascript(-value)
    exact = Decimal(value)
    best: Decimal | None = None
    for precision in range(1, 18):
        quantum = Decimal(1).scaleb(exact.adjusted() - precision + 1)
        candidates = {
            exact.quantize(quantum, rounding=ROUND_FLOOR),
            exact.quantize(quantum, rounding=ROUND_CEILING),
        }
        fits = [c for c in candidates if c != 0 and float(c) == value]
        if fits:
            best = min(fits, key=lambda c: (abs(c - exact), c.as_tuple().digits[-1] % 2))
            break
    assert best is not None
    sign, digit_tuple, exponent = best.as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = k + exponent
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = f"e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return digits + e if k == 1 else digits[0] + "." + digits[1:] + e


# --- The RFC examples ---


def test_rfc_sample_object() -> None:
    out = canonical_json(json.loads(RFC_SAMPLE_INPUT))
    assert out == RFC_SAMPLE_OUTPUT.encode("utf-8")
    assert out == bytes.fromhex(RFC_SAMPLE_HEX.replace(" ", ""))


def test_rfc_sorting_example() -> None:
    value = json.loads(RFC_SORTING_INPUT)
    out = canonical_json(value)
    assert out == RFC_SORTING_OUTPUT.encode("utf-8")
    order = list(json.loads(out, object_pairs_hook=OrderedDict).values())
    assert order == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]


@pytest.mark.parametrize("name", sorted(RFC_TEST_DATA))
def test_rfc_test_data(name: str) -> None:
    text, expected = RFC_TEST_DATA[name]
    assert canonical_json(json.loads(text)) == bytes.fromhex(expected)


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_appendix_b_numbers(bits: int, expected: str) -> None:
    value = from_bits(bits)
    assert format_number(value) == expected
    assert canonical_json(value) == expected.encode()
    assert canonical_json([value]) == b"[" + expected.encode() + b"]"
    assert ecmascript(value) == expected


@pytest.mark.parametrize("bits", APPENDIX_B_ERRORS)
def test_appendix_b_non_finite_numbers_are_refused(bits: int) -> None:
    with pytest.raises(ValueError):
        canonical_json(from_bits(bits))
    with pytest.raises(ValueError):
        canonical_json({"a": [from_bits(bits)]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1.0, "1"),
        (-0.0, "0"),
        (-1.5, "-1.5"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (1.5e-5, "0.000015"),
        (0.0001, "0.0001"),
        (123.456, "123.456"),
        (1e16, "10000000000000000"),
        (2.5e300, "2.5e+300"),
        (1, "1"),
        (-(2**53 - 1), "-9007199254740991"),
    ],
)
def test_numbers(value: float, expected: str) -> None:
    assert canonical_json(value) == expected.encode()
    assert canonical_json({"x": value}) == b'{"x":' + expected.encode() + b"}"


# --- Strings, literals, structure ---


def test_string_escaping_is_minimal() -> None:
    controls = "".join(chr(c) for c in range(0x20))
    expected = (
        '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
        '\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"'
    )
    assert canonical_json(controls) == expected.encode()
    assert general(controls) == expected.encode()
    untouched = "/\x7f\u2028\u2029\ufeff<>&'\U0001f600"
    assert canonical_json(untouched) == ('"' + untouched + '"').encode("utf-8")
    assert canonical_json('a"b\\c') == b'"a\\"b\\\\c"'


def test_literals_and_empty_containers() -> None:
    assert canonical_json(None) == b"null"
    assert canonical_json(True) == b"true"
    assert canonical_json(False) == b"false"
    assert canonical_json([]) == b"[]"
    assert canonical_json({}) == b"{}"
    assert canonical_json("") == b'""'
    assert canonical_json({"b": [True, None, {}], "a": 0}) == b'{"a":0,"b":[true,null,{}]}'


def test_json_like_python_values_take_the_general_path() -> None:
    class Level(IntEnum):
        HIGH = 2

    assert canonical_json((1, 2.0)) == b"[1,2]"
    assert canonical_json(OrderedDict([("b", 1), ("a", 2)])) == b'{"a":2,"b":1}'
    assert canonical_json(MappingProxyType({"b": 1, "a": Level.HIGH})) == b'{"a":2,"b":1}'


def test_utf16_order_differs_from_code_point_order_only_beyond_the_bmp() -> None:
    value = {"\ue000": 1, "\U00010000": 2, "\uffff": 3, "z": 4}
    assert canonical_json(value) == '{"z":4,"\U00010000":2,"\ue000":1,"\uffff":3}'.encode()
    nested = {"outer": [{"\ue000": 1, "\U00010000": 2}]}
    assert canonical_json(nested) == '{"outer":[{"\U00010000":2,"\ue000":1}]}'.encode()


@pytest.mark.parametrize(
    "value",
    [
        "\ud800",
        {"\udfff": 1},
        {"k": ["ok", "\ud83d"]},
        2**53 + 1,
        -(2**53 + 1),
        2**68,
        {"big": 10**30},
        10**400,
        float("nan"),
        float("inf"),
        [-math.inf],
    ],
)
def test_values_outside_i_json_raise_value_error(value: object) -> None:
    with pytest.raises(ValueError):
        canonical_json(value)


def test_large_integers_are_kept_only_when_already_canonical() -> None:
    assert canonical_json(2**53) == b"9007199254740992"
    assert canonical_json(-(2**53)) == b"-9007199254740992"
    # The canonical text of the double 2**68 (RFC 8785 Appendix B), as an integer.
    assert canonical_json(295147905179352830000) == b"295147905179352830000"
    assert canonical_json([10**20]) == b"[100000000000000000000]"


@settings(max_examples=500, deadline=None, database=None)
@given(st.integers(min_value=-(10**22), max_value=10**22))
def test_integers_are_written_exactly_or_refused(number: int) -> None:
    try:
        out = canonical_json(number)
    except ValueError:
        assert abs(number) > 2**53
        return
    assert out == str(number).encode()
    assert format_number(float(number)) == str(number)


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {None: 1}, {("a",): 1}, {"a": {1, 2}}, b"bytes", object(), {"a": 1j}],
)
def test_non_json_values_raise_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        canonical_json(value)


# --- Random values ---

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
safe_ints = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
scalars = st.none() | st.booleans() | safe_ints | finite_floats | st.text()
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=6)
    ),
    max_leaves=40,
)

# Values the fast path accepts: BMP keys, floats that are integral below 2**53 or at least 1e-4.
bmp_text = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]))
fast_floats = (
    st.floats(min_value=1e-4, max_value=2**53 - 1)
    | st.floats(min_value=-(2**53 - 1), max_value=-1e-4)
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1).map(float)
)
fast_values = st.recursive(
    st.none() | st.booleans() | safe_ints | fast_floats | st.text(),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(bmp_text, children, max_size=6)
    ),
    max_leaves=40,
)


# Above 2**53 every double is an integer, and below 1e21 JCS writes it as plain digits, which
# Python's parser reads as an int that need not equal the double; JCS's own reading (every
# number a double) still round-trips, as `test_round_trip_with_numbers_as_doubles` checks.
python_floats = finite_floats.filter(lambda x: not 2**53 <= abs(x) < 1e21)
python_values = st.recursive(
    st.none() | st.booleans() | safe_ints | python_floats | st.text(),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, database=None)
@given(python_values)
def test_round_trip(value: object) -> None:
    assert json.loads(canonical_json(value)) == value


@settings(max_examples=300, deadline=None, database=None)
@given(json_values)
def test_any_value(value: object) -> None:
    out = canonical_json(value)
    # JCS's own reading, every number a double, gives the value back.
    assert json.loads(out, parse_int=float) == value
    # Canonical means a fixed point, even through Python's int-preferring parser.
    assert canonical_json(json.loads(out)) == out
    # Whatever path it took, the spec-transcribing encoder writes the same bytes.
    assert general(value) == out


@settings(max_examples=300, deadline=None, database=None)
@given(fast_values)
def test_fast_path_equals_the_general_encoder(value: object) -> None:
    try:
        _prepare(value)
    except _General:
        pytest.fail("the fast path refused a value it should take")
    assert canonical_json(value) == general(value)


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(st.text(), st.integers(0, 9), max_size=12))
def test_members_sorted_by_utf16_code_units(value: dict[str, int]) -> None:
    parsed = json.loads(canonical_json(value), object_pairs_hook=list)
    keys = [key for key, _ in parsed]
    assert keys == sorted(value, key=lambda key: key.encode("utf-16-be"))


@settings(max_examples=2000, deadline=None, database=None)
@given(finite_floats)
def test_numbers_match_an_independent_ecmascript_formatter(value: float) -> None:
    text = format_number(value)
    assert text == ecmascript(value)
    assert float(text) == value


@settings(max_examples=500, deadline=None, database=None)
@given(st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1))
def test_integral_floats_print_as_integers(number: int) -> None:
    assert format_number(float(number)) == str(number)
    assert canonical_json(float(number)) == str(number).encode()
