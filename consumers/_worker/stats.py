"""What a stream and its consumer group hold, and trimming what no group needs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from consumers._worker.entries import id_key, next_id, text
from consumers.redis_stream import import_redis

if TYPE_CHECKING:
    import redis


def trim_delivered(client: redis.Redis, stream: str) -> int:
    """``XTRIM MINID`` below the oldest entry any group of ``stream`` still needs.

    An entry is needed while some group has it pending or has not read it.
    Returns how many entries were removed.
    """
    floor: Optional[str] = None
    try:
        groups = client.xinfo_groups(stream)
    except import_redis().ResponseError:
        return 0  # no such stream yet
    if not groups:
        return 0  # without a group nobody has read anything: keep it all
    for group in groups:
        if group["pending"]:
            summary = client.xpending(stream, text(group["name"]))
            needed = text(summary["min"])
        else:
            needed = next_id(text(group["last-delivered-id"]))
        if floor is None or id_key(needed) < id_key(floor):
            floor = needed
    if floor is None or floor == "0-1":
        return 0
    return int(client.xtrim(stream, minid=floor, approximate=False))


def stream_stats(
    client: redis.Redis, stream: str, group: str, dead_letter_stream: Optional[str] = None
) -> dict[str, Any]:
    """Length, pending, lag, dead letters and consumers of one group (JSON-ready)."""
    length = int(client.xlen(stream))
    dead_stream = dead_letter_stream or f"{stream}:dead"
    info: dict[str, Any] = {
        "stream": stream, "group": group, "length": length, "pending": 0, "lag": length,
        "last_delivered_id": None, "dead_letter_stream": dead_stream,
        "dead_lettered": int(client.xlen(dead_stream)), "consumers": [],
    }
    try:
        groups = client.xinfo_groups(stream)
    except import_redis().ResponseError:
        return info
    for g in groups:
        if text(g["name"]) != group:
            continue
        info["pending"] = int(g["pending"])
        info["last_delivered_id"] = text(g["last-delivered-id"])
        lag = g.get("lag")
        info["lag"] = int(lag) if lag is not None else _count_after(
            client, stream, info["last_delivered_id"])
        info["consumers"] = [
            {"name": text(c["name"]), "pending": int(c["pending"]), "idle_ms": int(c["idle"])}
            for c in client.xinfo_consumers(stream, group)
        ]
    return info


def _count_after(client: redis.Redis, stream: str, last_id: str) -> int:
    # Redis < 7 reports no lag; count what the group has not read (capped).
    entries: Any = client.xrange(stream, min=f"({last_id}", count=100_000)
    return len(entries)
