"""tracker._json: conversions, refusals that name the property, orjson/stdlib parity."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest

from tracker import _json
from tracker.errors import InvalidInputError, InvalidTypeError
from tracker.tracker import Tracker


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents


CEST = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2013, 1, 2, 3, 4, 5, 999999), '"2013-01-02T03:04:05"'),
        (dt.datetime(2013, 1, 2, 3, 4, 5, tzinfo=CEST), '"2013-01-02T01:04:05"'),
        (dt.datetime(2013, 1, 2, 0, 30, tzinfo=CEST), '"2013-01-01T22:30:00"'),
        (dt.date(2020, 2, 29), '"2020-02-29"'),
        (Decimal("19.99"), "19.99"),
        (Decimal("3"), "3"),
        (Decimal("3.000"), "3"),
        (uuid.UUID(int=255), '"00000000-0000-0000-0000-0000000000ff"'),
        ({3, 1, 2}, "[1,2,3]"),
        (frozenset({"b", "a"}), '["a","b"]'),
        ((1, "x", None), '[1,"x",null]'),
        (Color.RED, '"red"'),
        (Level.HIGH, "3"),
        (OrderedDict([("b", 1), ("a", 2)]), '{"b":1,"a":2}'),
        (True, "true"),
        (1e16, "1e+16"),
        (1.5e-7, "1.5e-07"),
        (2**63 - 1, "9223372036854775807"),
        (Decimal("-9223372036854775808.000"), "-9223372036854775808"),
        ("é\u2028\x01", '"é\u2028\\u0001"'),
    ],
)
def test_conversions(value: Any, expected: str) -> None:
    assert _json.encode(value) == expected


def test_sets_that_do_not_sort_keep_their_items() -> None:
    assert sorted(json.loads(_json.encode({1, "a"})), key=str) == [1, "a"]


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"price": float("nan")}, "properties['price']: NaN is not valid JSON"),
        ({"price": float("inf")}, "properties['price']: inf is not valid JSON"),
        ({"a": {"b": [1, float("-inf")]}}, "properties['a']['b'][1]: -inf is not valid JSON"),
        ({"d": Decimal("NaN")}, "properties['d']: Decimal 'NaN' is not valid JSON"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_property(props: dict, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        _json.normalize_properties(props)
    assert str(info.value) == message


def test_unknown_types_are_refused_naming_the_property() -> None:
    with pytest.raises(InvalidTypeError) as info:
        _json.normalize_properties({"cart": [{"total": Money(5)}]})
    assert str(info.value).startswith("properties['cart'][0]['total']: Money <")
    assert str(info.value).endswith("is not JSON serializable")
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_non_str_keys_are_refused() -> None:
    with pytest.raises(InvalidTypeError, match=r"properties: key 1 is a int, keys must be str"):
        _json.normalize_properties({1: "x"})
    with pytest.raises(InvalidTypeError, match=r"properties\['a'\]: key 2 is a int"):
        _json.normalize_properties({"a": {2: "x"}})


def test_a_cycle_is_refused_not_a_recursion_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidInputError, match="nest deeper than 64"):
        _json.normalize({"a": loop})


def test_register_encoder_teaches_every_tracker() -> None:
    _json.register_encoder(Money, lambda m: m.cents / 100)
    try:
        assert _json.encode({"price": Money(1999)}) == '{"price":19.99}'
    finally:
        _json.unregister_encoder(Money)
    with pytest.raises(InvalidTypeError):
        _json.encode(Money(1))


def test_a_registered_encoder_can_override_a_builtin_conversion() -> None:
    _json.register_encoder(dt.date, lambda d: d.strftime("%d/%m/%Y"))
    try:
        assert _json.encode(dt.date(2020, 1, 2)) == '"02/01/2020"'
    finally:
        _json.unregister_encoder(dt.date)


def test_tracker_default_hook() -> None:
    sent: list[str] = []
    tracker = Tracker("T", lambda t, m: sent.append(m), default=lambda o: o.cents)
    tracker.track("u", "E", {"price": Money(250)})
    assert json.loads(sent[0])["properties"]["price"] == 250


def test_default_hook_raising_type_error_refuses_the_value() -> None:
    def only_money(o: Any) -> Any:
        if isinstance(o, Money):
            return o.cents
        raise TypeError

    with pytest.raises(InvalidTypeError, match=r"properties\['x'\]: object"):
        _json.normalize_properties({"x": object()}, default=only_money)


PARITY_CASES: list[Any] = [
    {"a": 1, "b": [1.5, -0.0, 0.1, 1e16, 1e-5, 123456789.125, 5e-324, 1.7976931348623157e308]},
    {"unicode": "é ☕ 😀 \u2028 \x00 \x1f \x7f \\ \" /", "nested": {"x": [None, True, False]}},
    {"neg": -(2**63), "max": 2**63 - 1, "d": 2**53 + 1},
    {"empty": {}, "list": [], "str": ""},
    [{"k": i, "f": i / 7} for i in range(50)],
]


@pytest.mark.skipif(not _json.HAS_ORJSON, reason="orjson is not installed")
@pytest.mark.parametrize("value", PARITY_CASES)
def test_orjson_and_stdlib_give_identical_text(value: Any) -> None:
    normalized = _json.normalize(value)
    assert _json.dumps(normalized) == _json.dumps_stdlib(normalized)
    assert json.loads(_json.dumps(normalized)) == json.loads(json.dumps(value))


@pytest.mark.skipif(not _json.HAS_ORJSON, reason="orjson is not installed")
def test_orjson_and_stdlib_agree_on_many_floats() -> None:
    import random

    rng = random.Random(7)
    floats = [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(5000)]
    normalized = _json.normalize(floats)
    assert _json.dumps(normalized) == _json.dumps_stdlib(normalized)


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        _json.dumps_stdlib(_json.normalize({"s": "\ud800"}))
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        _json.dumps(_json.normalize({"s": "\ud800"}))


def test_format_datetime_is_utc_seconds() -> None:
    assert _json.format_datetime(dt.datetime(1, 1, 1)) == "0001-01-01T00:00:00"
    assert _json.format_datetime(
        dt.datetime(2020, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    ) == "2020-06-01T17:00:00"
