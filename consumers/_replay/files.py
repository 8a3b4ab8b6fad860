"""Which file a checkpoint describes, where its unread tail went, and reading it safely.

A position in a log means nothing once the file under that name is another
file: renamed away by a rotation (a new file takes the name), or truncated in
place (``copytruncate``) and written again.  So a position is kept with the
file's *identity*: its device and inode, and a fingerprint of its first bytes
(as Filebeat's registry and Fluent Bit's tail input do).  A rotated file keeps
its inode under its new name; a copy keeps its first bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Optional

import attrs

__all__ = ["FINGERPRINT_BYTES", "Identity", "LogReader", "RewrittenError", "find_tail"]

#: How many of a file's first bytes identify its content.
FINGERPRINT_BYTES = 1024

_CHUNK = 1 << 16


@attrs.frozen
class Identity:
    """A file as replay last saw it: device, inode, and a digest of its first ``length`` bytes."""

    dev: int
    ino: int
    length: int
    digest: str

    @classmethod
    def of(cls, fd: int, known: int) -> Identity:
        """The identity of the open file ``fd``, from at most its first ``known`` bytes."""
        st = os.fstat(fd)
        length = min(known, FINGERPRINT_BYTES, st.st_size)
        return cls(st.st_dev, st.st_ino, length, _digest(os.pread(fd, length, 0)))

    def same_content(self, fd: int) -> bool:
        """Whether ``fd`` still starts with the bytes this identity was taken from."""
        return self.check(fd, self.length) is not None

    def check(self, fd: int, known: int) -> Optional[Identity]:
        """This identity grown to ``known`` bytes of ``fd``, or None if ``fd`` no longer matches."""
        head = os.pread(fd, max(self.length, min(known, FINGERPRINT_BYTES)), 0)
        if len(head) < self.length or _digest(head[: self.length]) != self.digest:
            return None
        if len(head) == self.length:
            return self
        return attrs.evolve(self, length=len(head), digest=_digest(head))

    def same_file(self, st: os.stat_result) -> bool:
        return (st.st_dev, st.st_ino) == (self.dev, self.ino)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RewrittenError(Exception):
    """The file was truncated (and maybe written again) while it was being read."""


def find_tail(folder: str, identity: Identity, offset: int, skip: str) -> Optional[str]:
    """A file in ``folder`` holding the content ``identity`` describes, at least ``offset`` long.

    First the same inode under another name (a rename rotation), then a file
    that starts with the same bytes (the copy ``copytruncate`` made).  The
    file at ``skip`` (the live one, if any) is never the answer.
    """
    try:
        skip_st = os.stat(skip) if skip else None
        entries = list(os.scandir(folder))
    except OSError:
        return None
    same_inode: list[str] = []
    same_start: list[str] = []
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if skip_st is not None and (st.st_dev, st.st_ino) == (skip_st.st_dev, skip_st.st_ino):
            continue
        if st.st_size < offset:
            continue
        if identity.same_file(st):
            same_inode.append(entry.path)
        elif identity.length and st.st_size >= identity.length:
            same_start.append(entry.path)  # an empty fingerprint matches nothing but the inode
    for path in same_inode + sorted(same_start):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if identity.same_content(fd):
                return path
        finally:
            os.close(fd)
    return None


class LogReader:
    """The lines of an open log from ``offset``; a last line without its newline comes last.

    Every chunk is checked against the file's identity after it is read, so a
    truncation (or a truncate-and-rewrite) during the read raises
    :class:`RewrittenError` before any line of that chunk is handed out.
    ``identity`` grows to cover the first :data:`FINGERPRINT_BYTES` as they
    are read, and is what a checkpoint should keep.
    """

    def __init__(self, fd: int, offset: int, identity: Identity) -> None:
        self.fd = fd
        self.offset = offset
        self.identity = identity

    def __iter__(self) -> Iterator[bytes]:
        fd, offset, rest = self.fd, self.offset, b""
        while True:
            chunk = os.pread(fd, _CHUNK, offset)
            if not chunk:
                break
            grown = self.identity.check(fd, offset + len(chunk))
            if grown is None:
                raise RewrittenError
            self.identity = grown
            offset += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield line + b"\n"
        if rest:
            yield rest
