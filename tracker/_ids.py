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

__all__ = ["new_insert_id", "new_uuid", "random_bits"]

_random = random.Random(os.urandom(32))
#: ``random_bits(k)``: k random bits as an int (the generator behind both ids;
#: reseeded, not replaced, in a forked child, so this stays valid there)
random_bits = _random.getrandbits


def _reseed() -> None:
    _random.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_insert_id() -> str:
    """128 random bits as 32 lowercase hex characters."""
    # bytes.hex() is about twice as fast as formatting the int with "032x"
    return _random.getrandbits(128).to_bytes(16, "big").hex()


def new_uuid() -> str:
    """A random (version 4) UUID in its canonical lowercase text form."""
    # version 4 and the RFC 4122 variant, set as uuid.UUID(version=4) sets them,
    # without building a UUID object
    bits = (_random.getrandbits(128) & _CLEAR) | _SET
    h = bits.to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_SET = (0x4000 << 64) | (0x8000 << 48)
