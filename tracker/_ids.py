"""Random message identifiers: Mixpanel's ``$insert_id`` and PostHog's ``uuid``.

They need to be unique, not unpredictable: a collision makes the service
drop an event as a duplicate, while guessing one gains nothing.  So they
come from a Mersenne Twister seeded with 256 bits from ``os.urandom``
(reseeded in every forked child, so parent and child never share a
sequence), not from ``os.urandom`` on each call.  ``os.urandom`` releases
the GIL for its system call, and a background delivery thread waiting for
the GIL takes it then: the caller's ``track()`` would wait for a whole batch
to be prepared, hundreds of microseconds, on a busy machine.
"""

from __future__ import annotations

import os
import random
import uuid

__all__ = ["new_insert_id", "new_uuid"]

_random = random.Random(os.urandom(32))


def _reseed() -> None:
    _random.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_insert_id() -> str:
    """128 random bits as 32 lowercase hex characters."""
    return f"{_random.getrandbits(128):032x}"


def new_uuid() -> str:
    """A random (version 4) UUID in its canonical lowercase text form."""
    return str(uuid.UUID(int=_random.getrandbits(128), version=4))
