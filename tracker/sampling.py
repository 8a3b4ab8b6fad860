"""Sampling by user: keep a stable share of users, and all or none of each one's events.

``Sample(0.1)`` keeps the events of about one user in ten.  Whether a user
is kept depends only on their ``distinct_id`` (and ``salt``): the first 8
bytes of ``blake2b(salt + "\\0" + distinct_id)`` read as a fraction of
2**64, kept when below ``rate``.  So the same users are kept in every
process, on every machine and after every restart (Python's own ``hash()``
changes from process to process), and raising the rate only adds users.

Exactly what it does to a message: a kept message is passed on unchanged; a
dropped one is not sent (the tracker counts it in ``stats()["dropped"]``).
Only ordinary events are sampled: Mixpanel ``event`` and ``import``
messages, and PostHog messages, except the identity events (``$identify``,
``$create_alias``, ``$merge``, ``$set``, ``$set_once``, ``$groupidentify``),
which always pass, as do profile and group updates.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

from tracker.errors import InvalidInputError, InvalidTypeError
from tracker.processors import IDENTITY_EVENTS

__all__ = ["Sample", "sample_fraction"]

_SCALE = float(1 << 64)


def sample_fraction(distinct_id: str, salt: str = "") -> float:
    """Where ``distinct_id`` falls in [0, 1): the same in every process."""
    digest = hashlib.blake2b(f"{salt}\0{distinct_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class Sample:
    """Keep the events of a stable ``rate`` (0 to 1) of users, chosen by ``distinct_id``.

    ``salt`` picks a different set of users for the same rate (use one per
    experiment, or none to agree with every other process using none).
    """

    _adds_checked_values = True

    def __init__(self, rate: float, *, salt: str = "") -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise InvalidTypeError(f"rate must be a number from 0 to 1, got {type(rate).__name__}")
        if not 0.0 <= rate <= 1.0:
            raise InvalidInputError(f"rate must be from 0 to 1, got {rate!r}")
        if not isinstance(salt, str):
            raise InvalidTypeError(f"salt must be a str, got {type(salt).__name__}")
        self.rate = float(rate)
        self.salt = salt

    def __repr__(self) -> str:
        return f"Sample({self.rate!r}, salt={self.salt!r})"

    def keeps(self, distinct_id: str) -> bool:
        """Whether this sampler keeps the events of ``distinct_id``."""
        return sample_fraction(distinct_id, self.salt) < self.rate

    def __call__(self, message_type: str, message: dict[str, Any]) -> Optional[dict[str, Any]]:
        if message_type == "posthog":
            did = message.get("distinct_id")
        elif message_type in ("event", "import"):
            did = message.get("properties", {}).get("distinct_id")
        else:
            return message
        if message.get("event") in IDENTITY_EVENTS or not isinstance(did, str):
            return message
        return message if self.keeps(did) else None
