"""The batching limits of the buffering consumers: the defaults, the service's maxima,
and the checking of the limits a user gives (one for every type, or ``{type: limit}``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional, Union

from consumers.consumer import MAX_BATCH
from consumers.endpoints import MESSAGE_TYPES

__all__ = ["BULK_BATCH", "DEFAULT_MAX_BYTES", "MAX_MESSAGE_BYTES", "Limit", "batch_limits",
           "per_type"]

#: Uncompressed JSON bytes per request, by type.  /import: 10 MB (the service
#: answers 413 above 10 MiB); others: 2 MB, the service's older request limit.
DEFAULT_MAX_BYTES = {
    "event": 2_000_000,
    "profile_update": 2_000_000,
    "group_update": 2_000_000,
    "import": 10_000_000,
}
IMPORT_LIMIT = 10 * 1024 * 1024

#: Messages per request for a batch handed whole (:meth:`BufferedConsumer.send_many`)
#: when ``max_batch`` was not given.
BULK_BATCH = 1000

#: The service refuses a single message larger than this.
MAX_MESSAGE_BYTES = 1024 * 1024


Limit = Union[int, Mapping[str, int]]


def per_type(name: str, value: Limit, default: Mapping[str, int]) -> dict[str, int]:
    """``value`` (one limit, or ``{type: limit}`` over ``default``) as a limit per type."""
    if isinstance(value, Mapping):
        unknown = set(value) - set(MESSAGE_TYPES)
        if unknown:
            raise ValueError(f"{name} has unknown message types {sorted(unknown)}")
        limits = dict(default)
        limits.update(value)
    else:
        limits = dict.fromkeys(MESSAGE_TYPES, value)
    for message_type, limit in limits.items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"{name} for {message_type!r} must be a positive int, got {limit!r}")
    return limits



def batch_limits(max_batch: Optional[Limit], max_bytes: Optional[Limit],
                 ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """``(max_batch, bulk_batch, max_bytes)`` per type from what a user gave (None: defaults).

    Raises ``ValueError`` naming the limit and the type that is out of range.
    """
    counts = per_type("max_batch", 50 if max_batch is None else max_batch,
                      dict.fromkeys(MESSAGE_TYPES, 50))
    bulk = dict.fromkeys(MESSAGE_TYPES, BULK_BATCH) if max_batch is None else dict(counts)
    too_many = {t: n for t, n in counts.items() if n > MAX_BATCH}
    if too_many:
        raise ValueError(
            f"max_batch is at most {MAX_BATCH} (the service's limit per request), "
            f"got {too_many}"
        )
    sizes = per_type(
        "max_bytes", DEFAULT_MAX_BYTES if max_bytes is None else max_bytes, DEFAULT_MAX_BYTES
    )
    if sizes["import"] > IMPORT_LIMIT:
        raise ValueError(f"max_bytes for 'import' is at most {IMPORT_LIMIT} (10 MiB)")
    return counts, bulk, sizes
