"""What a replay reports: progress after each confirmed batch, and the result of a run."""

from __future__ import annotations

from typing import Any, Optional

import attrs

__all__ = ["ReplayProgress", "ReplayResult"]


@attrs.frozen
class ReplayProgress:
    """Where a running replay stands, after each confirmed batch."""

    sent: int
    rejected: int
    bytes_done: int
    bytes_total: int
    elapsed: float


@attrs.define
class ReplayResult:
    """What one :func:`replay` run did.

    ``sent``: tuples whose delivery the sink confirmed.  ``corrupt``: unreadable
    lines (in the reject file).  ``refused``: records the service refused (in
    the reject file).  ``torn``: incomplete last lines left for the next run.
    ``owed``: messages read but not delivered when replay stopped (kept in
    the checkpoint and sent first by the next run).  ``unreachable``: files
    whose unread tail replay could not find, each named with what was lost.
    ``error``: why replay stopped early, or ``None``; ``stopped_by``: ``"outage"``
    (transport failure, 429/5xx past the retry budget, 401/403) or
    ``"configuration"`` (the sink cannot send a type, e.g. /import without
    credentials).
    """

    source: str
    sent: int = 0
    corrupt: int = 0
    refused: int = 0
    torn: int = 0
    empty: int = 0
    batches: int = 0
    bytes_read: int = 0
    resumed_bytes: int = 0
    elapsed: float = 0.0
    dry_run: bool = False
    owed: int = 0
    error: Optional[str] = None
    stopped_by: Optional[str] = None
    exception: Optional[BaseException] = attrs.field(default=None, repr=False, eq=False)
    torn_at: list[tuple[str, int]] = attrs.Factory(list)
    examples: list[dict[str, Any]] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    unreachable: list[str] = attrs.Factory(list)
    checkpoint_path: Optional[str] = None
    reject_path: Optional[str] = None

    @property
    def rejected(self) -> int:
        """Lines and records that went to the reject file."""
        return self.corrupt + self.refused

    @property
    def ok(self) -> bool:
        """True when everything read was delivered (torn last lines aside)."""
        return self.error is None and self.rejected == 0 and not self.unreachable

    def summary(self) -> str:
        """One plain line for logs and the command line."""
        verb = "checked" if self.dry_run else "replayed"
        rate = self.sent / self.elapsed if self.elapsed > 0 else 0.0
        text = (
            f"{verb} {self.source}: {'valid' if self.dry_run else 'sent'}={self.sent} "
            f"rejected={self.rejected} (corrupt={self.corrupt} refused={self.refused}) "
            f"torn={self.torn} in {self.elapsed:.2f}s ({rate:,.0f} events/s)"
        )
        if self.resumed_bytes:
            text += f"; resumed after {self.resumed_bytes} bytes"
        if self.rejected and self.reject_path and not self.dry_run:
            text += f"; rejects in {self.reject_path}"
        if self.unreachable:
            text += f"; {len(self.unreachable)} file tail(s) unreachable"
        if self.error is not None:
            text += f"; STOPPED: {self.error}"
            if self.owed:
                text += f" ({self.owed} message(s) owed, sent first next run)"
        return text
