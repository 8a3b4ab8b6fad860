"""Property-based: arbitrary property values are either sent and accepted, or refused cleanly.

Hypothesis generates property values of every kind the encoder knows
(numbers far outside any range, Decimals with huge exponents, strings
with lone surrogates, datetimes with offsets at the ends of the calendar,
nested containers).  A small model of the documented rules
(``docs/values.md``) says which are valid.  Valid ones must reach the
local collector over HTTP and be accepted; invalid ones must raise the
library's ``InvalidInputError`` (nothing else) with nothing sent.  Run
on both JSON paths.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers import Consumer
from consumers.collector import Collector
from tracker import _json
from tracker.errors import InvalidInputError
from tracker.tracker import Tracker

MIN_INT, MAX_INT = -(2**63), 2**63 - 1
MIN_TIME_MS, MAX_TIME_MS = 31_536_000_000, 253_402_300_799_999
RESERVED = {"time", "token", "distinct_id", "$insert_id"}

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies -------------------------------------------------------------

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
texts = st.text(st.one_of(st.characters(), surrogates), max_size=12)
edge_ints = st.sampled_from(
    [MAX_INT, MAX_INT + 1, MIN_INT, MIN_INT - 1, 2**64 - 1, 2**64, 10**19, 10**4000, -(10**400)]
)
ints = st.one_of(st.integers(), st.integers(MIN_INT - 2, MIN_INT + 2),
                 st.integers(MAX_INT - 2, MAX_INT + 2), edge_ints)
exponents = st.one_of(
    st.integers(-30, 30),
    st.integers(-400, 400),
    st.sampled_from([-(10**8), 10**8, 999_999_999, -999_999_999, 5000, 18, 19, -324, 308]),
)
built_decimals = st.builds(
    lambda sign, digits, exp: Decimal((sign, tuple(digits), exp)),
    st.integers(0, 1),
    st.lists(st.integers(0, 9), min_size=1, max_size=25),
    exponents,
)
decimals = st.one_of(
    built_decimals,
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal(MAX_INT), Decimal(MAX_INT + 1), Decimal(MIN_INT),
                     Decimal(MIN_INT - 1), Decimal("sNaN"), Decimal("-Infinity")]),
)
offsets = st.builds(
    dt.timezone,
    st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59),
                  max_value=dt.timedelta(hours=23, minutes=59)),
)
edge_datetimes = st.builds(
    lambda d, tz: d.replace(tzinfo=tz),
    st.sampled_from([dt.datetime.min, dt.datetime.max, dt.datetime(1, 1, 1, 23, 59),
                     dt.datetime(9999, 12, 31, 0, 1)]),
    st.one_of(st.none(), offsets),
)
datetimes = st.one_of(st.datetimes(timezones=st.one_of(st.none(), offsets)), edge_datetimes)


def property_strategy(anything: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Properties of every kind (``anything``), or drawn only from values meant to be valid.

    The second kind keeps the accepted path as well explored as the refused
    one; the model still decides which is which.
    """
    if anything:
        text, integer, real, dec, when = texts, ints, st.floats(), decimals, datetimes
    else:
        text = st.text(max_size=12)
        integer = st.integers(MIN_INT, MAX_INT)
        real = st.floats(allow_nan=False, allow_infinity=False)
        dec = st.decimals(min_value=-(10**15), max_value=10**15, places=4)
        when = st.datetimes(timezones=st.one_of(st.none(), st.just(dt.timezone.utc)))
    hashable = st.one_of(st.none(), st.booleans(), integer, real, text,
                         dec.filter(lambda d: not d.is_snan()))
    scalar = st.one_of(st.none(), st.booleans(), integer, real, dec, text, when, st.dates(),
                       st.uuids())
    value = st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.lists(inner, max_size=3).map(tuple),
            st.sets(hashable, max_size=3),
            st.dictionaries(text, inner, max_size=4),
        ),
        max_leaves=12,
    )
    names = text.filter(lambda k: k not in RESERVED and (anything or k != ""))
    return st.dictionaries(names, value, max_size=6)


properties = st.one_of(property_strategy(anything=True), property_strategy(anything=False))

# -- the model of the rules ---------------------------------------------------


def text_ok(s: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def decimal_ok(d: Decimal) -> bool:
    if not d.is_finite():
        return False
    if d.is_zero():
        return True
    if d == d.to_integral_value():
        return d.adjusted() <= 18 and MIN_INT <= int(d) <= MAX_INT
    f = float(d)
    return math.isfinite(f) and f != 0.0


def datetime_ok(d: dt.datetime) -> bool:
    offset = d.utcoffset()
    if not offset:
        return True
    try:
        d.replace(tzinfo=None) - offset
    except OverflowError:
        return False
    return True


def value_ok(v: Any, depth: int = 0) -> bool:
    """Whether the documented rules accept ``v`` as a property value."""
    if v is None or isinstance(v, bool):
        return True
    if isinstance(v, int):
        return MIN_INT <= v <= MAX_INT
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, Decimal):
        return decimal_ok(v)
    if isinstance(v, str):
        return text_ok(v)
    if isinstance(v, dt.datetime):
        return datetime_ok(v)
    if isinstance(v, dict):
        return depth < 3 and all(text_ok(k) and value_ok(x, depth + 1) for k, x in v.items())
    if isinstance(v, (list, tuple, set)):
        return all(value_ok(x, depth) for x in v)
    return True  # date, UUID


def properties_ok(props: dict[str, Any]) -> bool:
    return all(k and text_ok(k) and value_ok(v) for k, v in props.items())


# -- the test ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[Collector, Consumer]]:
    with Collector() as collector:
        consumer = Consumer(api_host=collector.url)
        yield collector, consumer
        consumer.close()


class CountingSink:
    """Forwards to the consumer; counts what the tracker handed over."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.calls = 0

    def __call__(self, message_type: str, message_json: str) -> None:
        self.calls += 1
        self.consumer.send(message_type, message_json)


def errors_to_raise(error: BaseException) -> None:
    raise error


def check(live: tuple[Collector, Consumer], json_path: str, props: dict[str, Any]) -> None:
    collector, consumer = live
    sink = CountingSink(consumer)
    tracker = Tracker("TOKEN", sink, error_handler=errors_to_raise)
    saved = _json.dumps
    if json_path == "stdlib":
        _json.dumps = _json.dumps_stdlib  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if properties_ok(props):
                before = len(collector.messages("track"))
                assert tracker.track("u", "Fuzzed", props) is True
                stored = collector.messages("track")
                assert len(stored) == before + 1
                sent = stored[-1]["properties"]
                for key, value in props.items():
                    if value is None or type(value) in (str, int, bool):
                        assert sent[key] == value and type(sent[key]) is type(value)
            else:
                with pytest.raises(InvalidInputError) as info:
                    tracker.track("u", "Fuzzed", props)
                assert str(info.value).startswith("properties"), str(info.value)
                assert sink.calls == 0
    finally:
        _json.dumps = saved  # type: ignore[assignment]


JSON_PATHS = ["orjson", "stdlib"] if _json.HAS_ORJSON else ["stdlib"]


@pytest.mark.parametrize("json_path", JSON_PATHS)
@FUZZ
@given(props=properties)
def test_fuzzed_properties_are_sent_and_accepted_or_refused_cleanly(
    live: tuple[Collector, Consumer], json_path: str, props: dict[str, Any]
) -> None:
    check(live, json_path, props)


def time_ms(value: Any) -> Any:
    """The documented reading of ``time``: ms, or None when it is not a time."""
    if isinstance(value, dt.datetime):
        if not datetime_ok(value):
            return None
        aware = value if value.utcoffset() is not None else value.replace(tzinfo=dt.timezone.utc)
        return min(int(aware.timestamp() * 1000), MAX_TIME_MS)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
        return None
    if not math.isfinite(value):
        return None
    if value < 1e11:
        scaled = value * 1000
        return int(scaled) if math.isfinite(scaled) else MIN_TIME_MS - 1  # before 1971
    return int(value)


times = st.one_of(
    datetimes,
    ints,
    st.integers(MIN_TIME_MS - 2, MIN_TIME_MS + 2),
    st.integers(MAX_TIME_MS - 2, MAX_TIME_MS + 2),
    st.floats(),
    st.floats(31_535_999, 31_536_001),
)


@pytest.mark.parametrize("json_path", JSON_PATHS)
@FUZZ
@given(value=times, props=properties)
def test_fuzzed_times_are_sent_and_accepted_or_refused_cleanly(
    live: tuple[Collector, Consumer], json_path: str, value: Any, props: dict[str, Any]
) -> None:
    ms = time_ms(value)
    ok = ms is not None and MIN_TIME_MS <= ms <= MAX_TIME_MS and properties_ok(props)
    collector, consumer = live
    sink = CountingSink(consumer)
    tracker = Tracker("TOKEN", sink, error_handler=errors_to_raise)
    saved = _json.dumps
    if json_path == "stdlib":
        _json.dumps = _json.dumps_stdlib  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if ok:
                assert tracker.track("u", "Timed", {**props, "time": value}) is True
                assert collector.messages("track")[-1]["properties"]["time"] == ms
            else:
                with pytest.raises(InvalidInputError) as info:
                    tracker.track("u", "Timed", {**props, "time": value})
                assert str(info.value).startswith("properties"), str(info.value)
                assert sink.calls == 0
    finally:
        _json.dumps = saved  # type: ignore[assignment]


@FUZZ
@given(props=properties)
def test_the_plain_shortcut_gives_what_normalising_gives(props: dict[str, Any]) -> None:
    # the PostHog client copies plain properties as they are: only where normalising
    # (its own limits) would return the very same values
    from tracker._props import plain_copy

    plain = plain_copy(props)
    if plain is None:
        return
    assert plain is not props
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        normalised = _json.normalize_properties(props)
    assert plain == normalised
    assert [type(v) for v in plain.values()] == [type(v) for v in normalised.values()]

    def sent(value: dict[str, Any]) -> str:
        try:
            return _json.dumps(value)
        except InvalidInputError as refused:  # a lone surrogate: refused the same way
            return f"refused: {refused}"

    assert sent(plain) == sent(normalised)
