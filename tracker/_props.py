"""An event's own properties, checked and copied into its message in one pass.

``add_properties(out, properties, default)`` puts a normalised copy of the
caller's ``properties`` into ``out`` (the message's properties dict, which
already holds the library's own).  The result, and every error, is exactly
that of ``_json.normalize_properties(properties, max_depth=MAX_DEPTH,
max_items=MAX_ITEMS)`` followed by ``out.update(...)`` and
``_validation.check_event_properties(out)``: values that are already
JSON-native (the common case) are copied as they are, and on anything
unusual (a key that is not a plain non-empty ``str`` of at most 255
characters, a value that needs converting or is refused) the whole mapping
goes through that general path, so errors name the same place in the same
words.  The caller checks the finished properties (count, long names) when
told to, so that ``ip`` and the like count too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional

from tracker import _json, _validation
from tracker._scalars import Bad

__all__ = [
    "GENERAL",
    "KNOWN_NAMES",
    "RESERVED",
    "RESERVED_GIVEN",
    "add_properties",
    "plain_copy",
    "remember_name",
]

#: properties the library sets itself; the caller may give them, and they are then checked
RESERVED = frozenset({"time", "$insert_id", "distinct_id", "token"})
GENERAL = 1
RESERVED_GIVEN = 2

_MAX_NAME = _validation.MAX_NAME_CHARS
_MAX_DEPTH = _validation.MAX_DEPTH
_MAX_ITEMS = _validation.MAX_ITEMS
_norm = _json._norm
_PLAIN = frozenset({str, bool, type(None)})


#: Names (of properties, and of events) already found to be plain non-empty str of
#: at most 255 characters, never one of RESERVED.  A str subclass equal to one of
#: them passes too, which is harmless: it is sent as the same text.  Emptied when
#: full, so that it stays small.
KNOWN_NAMES: set[str] = set()
_NAMES = KNOWN_NAMES
_MAX_NAMES = 4096


def remember_name(name: str) -> None:
    """Add a checked plain name (never one of :data:`RESERVED`) to :data:`KNOWN_NAMES`."""
    if name in RESERVED:
        return  # never cached: every call giving it as a property must be told
    if len(_NAMES) >= _MAX_NAMES:
        _NAMES.clear()
    _NAMES.add(name)


def _reserved(k: Any) -> bool:
    """Whether ``k`` is one of the library's own names; raise Bad when not plainly fine."""
    if type(k) is not str or not 0 < len(k) <= _MAX_NAME:
        raise Bad("")  # refused, or warned about: the general path says which
    if k in RESERVED:
        return True
    remember_name(k)
    return False


def _check_names(properties: dict[Any, Any]) -> int:
    """RESERVED_GIVEN when a name is one of the library's own; raise Bad for an unusual one."""
    flags = 0
    for k in properties:
        if _reserved(k):
            flags = RESERVED_GIVEN
    return flags


def _general(out: dict[str, Any], properties: Any, default: Optional[_json.Default]) -> int:
    given = _json.normalize_properties(
        properties, default=default, max_depth=_MAX_DEPTH, max_items=_MAX_ITEMS
    )
    out.update(given)
    return GENERAL | (RESERVED_GIVEN if not RESERVED.isdisjoint(given) else 0)


def add_properties(
    out: dict[str, Any], properties: Mapping[str, Any], default: Optional[_json.Default]
) -> int:
    """Copy ``properties``, checked and normalised, into ``out``; raise as the general path.

    Returns flags: :data:`GENERAL` when the general path was taken (then, as
    whenever ``out`` may hold more than ``MAX_PROPERTIES`` properties, the
    caller runs ``check_event_properties`` on the finished properties), and
    :data:`RESERVED_GIVEN` when ``properties`` names one of :data:`RESERVED`.
    """
    if type(properties) is not dict:
        return _general(out, properties, default)
    flags = 0
    try:
        # names seen before are known good (one set operation, in C); values are
        # only looked at, and plain ones are then copied by dict.update, in C
        if not _NAMES.issuperset(properties):
            flags = _check_names(properties)
        # _plain(properties.values()), inlined: a call costs 3% of a track()
        for v in properties.values():
            t = type(v)
            if t is str or v is None or t is bool:
                continue
            if t is int:
                if -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF:
                    continue
            elif t is float:
                if 1e-4 <= v < 1e16 or -1e16 < v <= -1e-4 or v == 0.0:
                    continue
            elif t is list and len(v) <= _MAX_ITEMS:
                for item in v:
                    if type(item) not in _PLAIN:
                        break
                else:
                    continue
            # a value to convert or refuse: the others are converted too (a no-op for them)
            fixed = {k: _norm(v, default, 0, _MAX_DEPTH, _MAX_ITEMS, 0)
                     for k, v in properties.items() if type(v) not in _PLAIN}
            out.update(properties)
            out.update(fixed)
            return flags
    except Bad:
        return _general(out, properties, default)
    out.update(properties)
    return flags


def _plain(values: Iterable[Any]) -> bool:
    """Whether every value is JSON-native as it is (normalising would return it unchanged)."""
    for v in values:
        t = type(v)
        if t is str or v is None or t is bool:
            continue
        if t is int:
            if -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF:
                continue
        elif t is float:
            # finite, and printed alike by orjson and json (see _scalars.finite_float)
            if 1e-4 <= v < 1e16 or -1e16 < v <= -1e-4 or v == 0.0:
                continue
        elif t is list and len(v) <= _MAX_ITEMS:
            for item in v:
                if type(item) not in _PLAIN:
                    break
            else:
                continue  # sent as it is: it is serialised before the call returns
        return False
    return True


def plain_copy(properties: Any) -> Optional[dict[str, Any]]:
    """A copy of ``properties`` when normalising would return it unchanged, else None.

    That is: a ``dict`` whose names are non-empty ``str`` and whose values
    are all JSON-native as they are.  For limits other than Mixpanel's (the
    PostHog client): on None, the caller normalises with its own.
    """
    if type(properties) is not dict:
        return None
    if not _NAMES.issuperset(properties):
        for k in properties:
            if type(k) is not str or not k:
                return None
    return dict(properties) if _plain(properties.values()) else None
