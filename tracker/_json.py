"""JSON encoding of messages: Python values in, compact Mixpanel-ready JSON out.

Stable names (also used by the PostHog facade, ``tracker/posthog.py``):

``normalize(value, where="value", *, default=None, max_depth=None, max_items=None)``
    Return a copy of ``value`` made only of JSON-native types (dict with str
    keys, list, str, int, float, bool, None).  Raises
    :class:`~tracker.errors.InvalidInputError` naming the offending place, e.g.
    ``properties['price']: NaN is not valid JSON``.
``normalize_properties(properties, where="properties", *, default=None, ...)``
    The same for a properties mapping, also checking that every key is a
    non-empty ``str``.  ``None`` gives ``{}``.
``dumps(obj) -> str``
    Compact JSON of an already normalized object (orjson when installed,
    byte-identical to the standard library's output).
``encode(value, where="value", *, default=None) -> str``
    ``dumps(normalize(value, where, default=default))``.
``format_datetime(dt) -> str``
    ``YYYY-MM-DDTHH:MM:SS`` in UTC (aware values are converted; naive values
    are taken to be UTC already).
``register_encoder(type_, fn)`` / ``unregister_encoder(type_)``
    Teach every tracker how to send values of ``type_``: ``fn(value)``
    returns something JSON-able (it is normalized in turn).
``short_repr(value, limit=60) -> str``
    A repr for error messages that never fails and never grows huge.

Conversions: ``datetime`` -> ``"YYYY-MM-DDTHH:MM:SS"`` (UTC), ``date`` ->
``"YYYY-MM-DD"``, ``Decimal`` -> int when integral else the nearest float, ``UUID`` ->
its canonical string, ``set``/``frozenset`` -> sorted list (insertion order
when the items do not sort), ``tuple`` -> list, ``Enum`` -> its value,
subclasses of str/int/float/dict/list -> the plain type.  NaN and infinities
are refused, as is anything else unknown (unless a registered encoder or
``default`` handles it; ``default`` works like ``json.dumps(default=...)``
and raises ``TypeError`` for values it does not handle).

The range of what can be sent (``docs/values.md``): integers (and integral
Decimals) from :data:`MIN_INT` to :data:`MAX_INT`, the signed 64-bit range
that orjson, Go, Java and SQL ``BIGINT`` read without loss;
finite floats (a Decimal whose float would be infinite, or 0 when it is
not, is refused); strings that are valid UTF-8 (no lone surrogates);
datetimes whose UTC time falls in the years 1-9999.  Every refusal is an
:class:`~tracker.errors.InvalidInputError` naming the property, and costs
no more than a comparison: no huge number is ever converted or printed.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Callable, Optional

from tracker._scalars import (
    MAX_INT,
    MIN_INT,
    Bad,
    datetime_text,
    decimal_value,
    find_surrogate,
    finite_float,
    int_out_of_range,
    short_repr,
)
from tracker.errors import InvalidInputError, InvalidTypeError

_orjson: Any
try:  # optional accelerator; output is identical without it
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _orjson = None

__all__ = [
    "HAS_ORJSON",
    "MAX_INT",
    "MIN_INT",
    "Default",
    "dumps",
    "dumps_stdlib",
    "encode",
    "format_date",
    "format_datetime",
    "normalize",
    "normalize_properties",
    "register_encoder",
    "short_repr",
    "unregister_encoder",
]

#: A ``default=`` hook: turn an unknown value into something JSON-able, or raise TypeError.
Default = Callable[[Any], Any]

HAS_ORJSON = _orjson is not None

#: Containers nested deeper than this are refused whatever the limits (catches cycles).
_MAX_LEVEL = 64

_ENCODERS: dict[type, Callable[[Any], Any]] = {}

_STDLIB = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
)


def register_encoder(type_: type, fn: Callable[[Any], Any]) -> None:
    """Encode values of ``type_`` (and its subclasses) as ``fn(value)`` in every tracker."""
    if not isinstance(type_, type) or not callable(fn):
        raise InvalidTypeError("register_encoder(type_, fn) needs a type and a callable")
    _ENCODERS[type_] = fn


def unregister_encoder(type_: type) -> None:
    """Forget an encoder added with :func:`register_encoder` (no error when absent)."""
    _ENCODERS.pop(type_, None)


def format_datetime(value: _dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC: Mixpanel's form for dates in properties.

    Raises InvalidInputError when the UTC time is outside the years 1-9999.
    """
    try:
        return datetime_text(value)
    except Bad as e:
        raise _fail("datetime", e) from None


def format_date(value: _dt.date) -> str:
    """``YYYY-MM-DD``."""
    return value.isoformat()


def _norm(
    v: Any, default: Optional[Default], depth: int, max_depth: int, max_items: int, level: int
) -> Any:
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is int:
        if -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF:
            return v
        raise int_out_of_range(v)
    if t is float:
        return finite_float(v)
    if level >= _MAX_LEVEL:
        raise Bad(f"values nest deeper than {_MAX_LEVEL} levels (a cycle?)")
    if t is dict:
        return _norm_dict(v, default, depth + 1, max_depth, max_items, level + 1)
    if t is list or t is tuple:
        return _norm_list(v, default, depth, max_depth, max_items, level + 1)
    return _norm_other(v, default, depth, max_depth, max_items, level)


def _norm_dict(
    d: Mapping[Any, Any],
    default: Optional[Default],
    depth: int,
    max_depth: int,
    max_items: int,
    level: int,
) -> dict[str, Any]:
    if depth > max_depth:
        raise Bad(f"objects nest deeper than {max_depth} levels; the service refuses them")
    if depth and len(d) > max_items:
        raise Bad(f"object has {len(d)} keys; the service accepts at most {max_items}")
    out: dict[str, Any] = {}
    for k, item in d.items():
        if type(k) is not str:
            if not isinstance(k, str):
                err = Bad(f"key {short_repr(k)} is a {type(k).__name__}, keys must be str", True)
                raise err
            k = str.__str__(k)
        t = type(item)
        if t is str or t is bool or item is None or (
            t is int and -0x8000000000000000 <= item <= 0x7FFFFFFFFFFFFFFF
        ):
            out[k] = item
            continue
        try:
            out[k] = _norm(item, default, depth, max_depth, max_items, level)
        except Bad as e:
            e.path.append(f"[{k!r}]")
            raise
    return out


def _norm_list(
    seq: Any,
    default: Optional[Default],
    depth: int,
    max_depth: int,
    max_items: int,
    level: int,
) -> list[Any]:
    if len(seq) > max_items:
        raise Bad(f"list has {len(seq)} items; the service accepts at most {max_items}")
    out = []
    for i, item in enumerate(seq):
        t = type(item)
        if t is str or t is bool or item is None or (
            t is int and -0x8000000000000000 <= item <= 0x7FFFFFFFFFFFFFFF
        ):
            out.append(item)
            continue
        try:
            out.append(_norm(item, default, depth, max_depth, max_items, level))
        except Bad as e:
            e.path.append(f"[{i}]")
            raise
    return out


def _set_items(v: Any) -> list[Any]:
    try:
        return sorted(v)
    except (TypeError, ArithmeticError):  # mixed types; Decimal("NaN") refuses to compare
        return list(v)


def _norm_other(
    v: Any,
    default: Optional[Default],
    depth: int,
    max_depth: int,
    max_items: int,
    level: int,
) -> Any:
    args = (default, depth, max_depth, max_items, level + 1)
    if _ENCODERS:
        for k in type(v).__mro__:
            fn = _ENCODERS.get(k)
            if fn is not None:
                return _norm(fn(v), *args)
    if isinstance(v, _dt.datetime):
        return datetime_text(v)
    if isinstance(v, _dt.date):
        return format_date(v)
    if isinstance(v, enum.Enum):
        return _norm(v.value, *args)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return _norm(int(v), *args)
    if isinstance(v, float):
        return finite_float(float(v))
    if isinstance(v, Decimal):
        return decimal_value(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, Mapping):
        return _norm_dict(v, default, depth + 1, max_depth, max_items, level + 1)
    if isinstance(v, (list, tuple)):
        return _norm_list(v, *args)
    if isinstance(v, (set, frozenset)):
        return _norm_list(_set_items(v), *args)
    if default is not None:
        try:
            converted = default(v)
        except TypeError:
            pass
        else:
            return _norm(converted, *args)
    raise Bad(f"{type(v).__name__} {short_repr(v)} is not JSON serializable", True)


def _fail(where: str, e: Bad) -> InvalidInputError:
    place = where + "".join(reversed(e.path))
    cls = InvalidTypeError if e.type_error else InvalidInputError
    return cls(f"{place}: {e.reason}")


def normalize(
    value: Any,
    where: str = "value",
    *,
    default: Optional[Default] = None,
    max_depth: Optional[int] = None,
    max_items: Optional[int] = None,
) -> Any:
    """A copy of ``value`` made of JSON-native types; raises InvalidInputError naming ``where``.

    ``max_depth`` limits how deeply objects nest (a top-level object is depth
    1); ``max_items`` limits list lengths and object key counts.
    """
    try:
        return _norm(
            value,
            default,
            0,
            _MAX_LEVEL if max_depth is None else max_depth,
            1 << 62 if max_items is None else max_items,
            0,
        )
    except Bad as e:
        raise _fail(where, e) from None


def normalize_properties(
    properties: Optional[Mapping[str, Any]],
    where: str = "properties",
    *,
    default: Optional[Default] = None,
    max_depth: Optional[int] = None,
    max_items: Optional[int] = None,
) -> dict[str, Any]:
    """A normalized copy of a properties mapping (``None`` gives ``{}``).

    Every key must be a non-empty ``str``.  ``max_depth`` counts object
    values nested inside the properties (``{"a": {"b": 1}}`` is depth 1).
    """
    if properties is None:
        return {}
    if not isinstance(properties, Mapping):
        raise InvalidTypeError(
            f"{where} must be a dict, got {type(properties).__name__} {short_repr(properties)}"
        )
    for k in properties:
        if type(k) is not str and not isinstance(k, str):
            raise InvalidTypeError(
                f"{where}: key {short_repr(k)} is a {type(k).__name__}, keys must be str"
            )
        if not k:
            raise InvalidInputError(f"{where}: property names must not be empty")
    try:
        return _norm_dict(
            properties,
            default,
            0,
            _MAX_LEVEL if max_depth is None else max_depth,
            1 << 62 if max_items is None else max_items,
            0,
        )
    except Bad as e:
        raise _fail(where, e) from None


def dumps_stdlib(obj: Any) -> str:
    """Compact JSON of a normalized object with the standard library only.

    Raises InvalidInputError naming the place of a string with a lone
    surrogate (not valid UTF-8, so no reader accepts it).
    """
    text = _STDLIB.encode(obj)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            place = find_surrogate(obj, []) or "value"
            raise InvalidInputError(
                f"{place}: a string holds a lone surrogate, which is not valid UTF-8"
            ) from None
    return text


if _orjson is not None:
    _orjson_dumps: Callable[[Any], bytes] = _orjson.dumps

    def dumps(obj: Any) -> str:
        """Compact JSON of a normalized object (see :func:`normalize`)."""
        try:
            return _orjson_dumps(obj).decode()
        except TypeError:  # exponent floats, >64-bit ints, surrogates
            return dumps_stdlib(obj)

else:  # pragma: no cover - exercised where orjson is absent
    dumps = dumps_stdlib


def encode(value: Any, where: str = "value", *, default: Optional[Default] = None) -> str:
    """Normalize and encode ``value`` in one step."""
    return dumps(normalize(value, where, default=default))
