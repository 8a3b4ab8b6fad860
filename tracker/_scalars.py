"""Scalar values at the edge of what can be sent: the range checks behind ``_json``.

Integers must fit in signed 64 bits; Decimals are measured by their
exponent before any conversion; floats must be finite; datetimes must
fall in the years 1-9999 in UTC; strings must be valid UTF-8.  Each check
raises :class:`Bad` with a reason, and ``_json`` adds the place (see
``docs/values.md``).  Nothing here ever converts or prints a huge number.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any, Optional

__all__ = [
    "MAX_INT",
    "MIN_INT",
    "Bad",
    "StdlibFloat",
    "datetime_text",
    "decimal_value",
    "find_surrogate",
    "finite_float",
    "int_out_of_range",
    "short_repr",
]

#: The integers that can be sent: signed 64-bit.  (The fast paths in ``_json`` spell
#: the bounds as literals, which Python loads faster than globals.)
MIN_INT = -0x8000000000000000
MAX_INT = 0x7FFFFFFFFFFFFFFF
#: Integral Decimals at or above 10**19 are outside the range: refused before int().
_DECIMAL_MAX_ADJUSTED = 18


class StdlibFloat(float):
    """A float whose text needs an exponent; routed to the standard library.

    orjson writes ``1e16`` where ``json`` writes ``1e+16``; orjson refuses
    float subclasses, so a message holding one is encoded by ``json`` and
    both paths give the same text.
    """

    __slots__ = ()


class Bad(Exception):
    """A value cannot be sent; ``path`` grows while unwinding."""

    def __init__(self, reason: str, type_error: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.type_error = type_error
        self.path: list[str] = []


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters; never raises, never prints a huge int."""
    if isinstance(value, int) and value.bit_length() > 192:
        return f"<{type(value).__name__} of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    return text[:limit]


def datetime_text(value: _dt.datetime) -> str:
    if value.tzinfo is not None and value.utcoffset() is not None:
        try:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        except OverflowError:
            side = "before the year 1" if value.year == 1 else "after the year 9999"
            raise Bad(
                f"datetime {value.isoformat()} is {side} in UTC; "
                "only the years 1-9999 can be sent"
            ) from None
    elif value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value.isoformat("T", "seconds")


def int_out_of_range(v: int) -> Bad:
    return Bad(
        f"integer {short_repr(v)} is outside the signed 64-bit range "
        f"[-2**63, 2**63-1] that the service and JSON readers accept"
    )


def decimal_value(v: Decimal) -> Any:
    if not v.is_finite():
        raise Bad(f"Decimal {str(v)!r} is not valid JSON")
    if v.is_zero():  # 0E+100000000 has a huge exponent but is plainly 0
        return 0
    # adjusted() is the power of ten of the first digit: O(1), unlike int(v),
    # which for Decimal("1e100000000") builds a hundred-million-digit int.
    big = v.adjusted() > _DECIMAL_MAX_ADJUSTED
    if v == v.to_integral_value():
        if big:
            raise Bad(
                f"Decimal {short_repr(str(v))} is outside the signed 64-bit range "
                f"[-2**63, 2**63-1]; pass float(value) to send it approximately"
            )
        n = int(v)
        if -0x8000000000000000 <= n <= 0x7FFFFFFFFFFFFFFF:
            return n
        raise Bad(
            f"Decimal {short_repr(str(v))} is outside the signed 64-bit range [-2**63, 2**63-1]"
        )
    f = float(v)
    if f - f != 0.0 or f == 0.0:
        raise Bad(
            f"Decimal {short_repr(str(v))} is outside the range of a float "
            f"(it would be sent as {f!r})"
        )
    return finite_float(f)


def finite_float(v: float) -> float:
    if v - v != 0.0:  # NaN or an infinity
        raise Bad(f"{v!r} is not valid JSON" if v == v else "NaN is not valid JSON")
    if v != 0.0 and (v >= 1e16 or v <= -1e16 or -1e-4 < v < 1e-4):
        return StdlibFloat(v)
    return v


def _surrogate_in(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def find_surrogate(obj: Any, path: list[Any]) -> Optional[str]:
    """Where in ``obj`` a string holds a lone surrogate, as ``properties['a'][0]``."""
    if isinstance(obj, str):
        return _place(path) if _surrogate_in(obj) else None
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and _surrogate_in(k):
                return f"{_place(path)}: key {k!r:.60}"
            found = find_surrogate(v, [*path, k])
            if found is not None:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found = find_surrogate(v, [*path, i])
            if found is not None:
                return found
    return None


def _place(path: list[Any]) -> str:
    if not path:
        return "value"
    head = path[0] if isinstance(path[0], str) else f"[{path[0]}]"
    return head + "".join(f"[{k!r}]" for k in path[1:])
