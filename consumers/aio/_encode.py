"""Request bodies encoded a piece per turn of the loop.

Joining 1000 Mixpanel messages and encoding them takes 0.15 to 0.3 ms;
gzip at level 6 takes about 5 ms per MB.  :func:`encoded` makes the same
bytes as the threaded consumers' ``encode_batch`` and ``batch_body`` (the
same JSON; gzip's framing of the same stream), a piece of about
:data:`PIECE_BYTES` at a time, each a heavier step of its own
(:func:`~consumers.aio._turns.heavy_step`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Optional

from consumers.aio._turns import heavy_step

__all__ = ["encoded"]

#: Characters per piece: ~0.1 ms to gzip at level 6.
PIECE_BYTES = 16 * 1024
#: Characters per piece when nothing is compressed (~0.05 ms to join and encode).
PLAIN_PIECE_BYTES = 128 * 1024


async def encoded(head: str, messages: Sequence[str], tail: str,
                  gzip_level: Optional[int]) -> bytes:
    """``head``, the messages joined by commas, ``tail``: UTF-8, gzipped at ``gzip_level``."""
    compressor = None if gzip_level is None else zlib.compressobj(
        gzip_level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # a gzip stream
    limit = PLAIN_PIECE_BYTES if compressor is None else PIECE_BYTES
    out: list[bytes] = []
    start, count = 0, len(messages)
    while True:
        await heavy_step()
        end, size = start, 0
        while end < count and (size < limit or end == start):
            size += len(messages[end]) + 1
            end += 1
        text = ",".join(messages[start:end])
        if start:
            text = "," + text
        else:
            text = head + text
        if end >= count:
            text += tail
        piece = text.encode("utf-8")
        out.append(piece if compressor is None else compressor.compress(piece))
        start = end
        if start >= count:
            break
    if compressor is not None:
        out.append(compressor.flush())
    return b"".join(out)
