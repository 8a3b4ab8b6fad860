"""Reading a spool segment back for the asyncio consumer without holding its loop.

A segment's files are read on a thread, which holds the interpreter only
around its reads.  Their lines are parsed on the loop, about 0.2 ms of them
per turn (:func:`~consumers.aio._turns.heavy_step`).  Parsing on a thread would
not do: a thread parsing JSON holds the interpreter lock, and the loop's
thread then waits for it up to the switch interval (5 ms), which durable
mode, replaying all the time, made the loop's usual lag.

A line that cannot be read (a torn last line of a process killed mid-write,
a corrupt one) is counted, and the caller reports it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from consumers._replay.lines import CorruptLineError, parse_messages
from consumers.aio._turns import heavy_step
from consumers.errors import Message
from consumers.file import list_segments

__all__ = ["read_segment"]

#: Seconds of parsing per turn of the loop.
STEP_SECONDS = 0.0002


def _read_files(folder: Path) -> list[bytes]:
    return [Path(path).read_bytes() for _, path in list_segments(folder)]


async def read_segment(folder: Path) -> tuple[list[Message], int]:
    """The messages in the spool segment ``folder``, in order; and the unreadable lines."""
    contents = await asyncio.to_thread(_read_files, folder)
    messages: list[Message] = []
    unreadable = 0
    clock = time.perf_counter
    for content in contents:
        await heavy_step()  # cutting the lines is a step of its own; then parsing, in pieces
        lines = content.split(b"\n")
        if lines[-1]:  # a last line without its newline: its writer was killed mid-write
            unreadable += 1
        del lines[-1]
        index, count = 0, len(lines)
        while index < count:
            await heavy_step()
            until = clock() + STEP_SECONDS
            while index < count:
                line = lines[index]
                index += 1
                if line.strip():
                    try:
                        messages.extend(parse_messages(line))
                    except CorruptLineError:
                        unreadable += 1
                if not index & 15 and clock() >= until:
                    break
    return messages, unreadable
