"""track()'s one-pass properties give exactly what the general normalisation gives, errors too."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tracker import _json, _validation
from tracker.tracker import Tracker

scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=5),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, places=2, max_value=10**6, min_value=-(10**6)),
    st.sampled_from([Decimal("NaN"), 1e16, 1e-5, -1e-4, 0.0, -0.0, 1e-4, 9.99e15,
                     2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8,
) | st.just(["x"] * 256) | st.just(["x"] * 255)
keys = st.one_of(st.text(max_size=4), st.sampled_from(["", "x" * 256, "plan", "time"]))


OWN = ("token", "distinct_id", "time", "$insert_id", "mp_lib", "$lib_version")


def general(properties: dict[Any, Any], own: dict[str, Any]) -> Any:
    """The message text the general path makes of ``properties``, or the error's text."""
    try:
        given_ = _json.normalize_properties(properties, max_depth=_validation.MAX_DEPTH,
                                            max_items=_validation.MAX_ITEMS)
        return _json.dumps({"event": "E", "properties": {**own, **given_}})
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def fast(properties: dict[Any, Any]) -> tuple[Any, dict[str, Any]]:
    """The message text track() sends, or its error's text; and its own properties."""
    sent: list[str] = []
    tracker = Tracker("TOKEN", lambda t, m: sent.append(m))
    try:
        tracker.track("u1", "E", properties)
    except Exception as error:
        tracker.track("u1", "E")
        return f"{type(error).__name__}: {error}", json.loads(sent[0])["properties"]
    props = json.loads(sent[0])["properties"]
    return sent[0], {k: props[k] for k in OWN}


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(keys, values, max_size=5))
def test_the_one_pass_path_agrees_with_the_general_one(properties: dict[Any, Any]) -> None:
    properties = {k: v for k, v in properties.items() if k not in OWN}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, own = fast(properties)
        expected = general(properties, own)
    assert got == expected  # the same JSON text, or the same error in the same words


EDGES = [
    {"a": 2**63 - 1}, {"a": 2**63}, {"a": -(2**63)}, {"a": -(2**63) - 1}, {"a": 2**64},
    {"a": 1e16}, {"a": 9.99e15}, {"a": 1e-4}, {"a": 9e-5}, {"a": -1e-4}, {"a": -0.0},
    {"a": float("nan")}, {"a": float("-inf")}, {"a": ["x"] * 255}, {"a": ["x"] * 256},
    {"a": ["x", 1]}, {"a": ("x",)}, {"a": {"b": {"c": {"d": 1}}}}, {"": 1}, {"x" * 256: 1},
    {"a": True, "b": None, "c": "s"}, {"a": "\ud800"}, {"a": Decimal("1.5")},
]


def test_the_one_pass_path_agrees_on_the_edges() -> None:
    for properties in EDGES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got, own = fast(properties)
            assert got == general(properties, own), properties
