"""Reading a spool segment back for the asyncio consumer without holding its loop.

A segment's files are read on a thread, which holds the interpreter only
around its reads.  Their lines are cut and parsed on the loop, about 0.2 ms
of them per turn (:func:`~consumers.aio._turns.heavy_step`), and handed on
a request's worth at a time: a segment of many thousands (durable mode
during a slow answer, an outage) is never one list, whose making or freeing
alone would hold the loop for milliseconds.  Parsing on a thread would
not do: a thread parsing JSON holds the interpreter lock, and the loop's
thread then waits for it up to the switch interval (5 ms), which durable
mode, replaying all the time, made the loop's usual lag.

A line that cannot be read (a torn last line of a process killed mid-write,
a corrupt one) is counted, and the caller reports it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Callable

from consumers._replay.lines import CorruptLineError, parse_messages
from consumers.aio._turns import heavy_step
from consumers.errors import Message
from consumers.file import list_segments

__all__ = ["replay_segment"]

#: Seconds of parsing per turn of the loop.
STEP_SECONDS = 0.0002


def _read_files(folder: Path) -> list[bytes]:
    return [Path(path).read_bytes() for _, path in list_segments(folder)]


async def replay_segment(folder: Path, deliver: Callable[[list[Message]], Awaitable[bool]],
                         size: int) -> tuple[bool, int, int]:
    """Hand the messages of the spool segment ``folder`` to ``deliver``, ``size`` at a time.

    Stops when ``deliver`` returns False.  Returns whether all of them were
    delivered, how many messages were read, and how many lines were unreadable.
    """
    contents = await asyncio.to_thread(_read_files, folder)
    clock = time.perf_counter
    pending: list[Message] = []
    read = unreadable = 0
    for content in contents:
        position, length = 0, len(content)
        while position < length:
            await heavy_step()
            until, parsed = clock() + STEP_SECONDS, 0
            while position < length and len(pending) < size:
                end = content.find(b"\n", position)
                if end < 0:  # a last line without its newline: its writer was killed mid-write
                    unreadable += 1
                    position = length
                    break
                line = content[position:end]
                position = end + 1
                if line.strip():
                    try:
                        pending.extend(parse_messages(line))
                    except CorruptLineError:
                        unreadable += 1
                parsed += 1
                if not parsed & 15 and clock() >= until:
                    break
            if len(pending) >= size:
                piece, pending = pending[:size], pending[size:]
                read += len(piece)
                if not await deliver(piece):
                    return False, read, unreadable
    if pending:
        read += len(pending)
        if not await deliver(pending):
            return False, read, unreadable
    return True, read, unreadable
