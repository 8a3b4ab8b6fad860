"""The idle-connection faults: keep-alive connections that die while the client is not looking.

Servers and load balancers close keep-alive connections that stay idle for
a while; NAT gateways forget them without telling anyone (a client frozen
between serverless invocations wakes up to such connections).  A client
that reuses one finds it dead.  :class:`IdleFault` says what the collector
does to a connection idle for ``after`` seconds:

* ``when="idle"``: close it at that moment, as a server's keep-alive
  timeout does (the client's pool usually notices before reusing it);
* ``when="request"``: leave it open and close it as the client's next
  request arrives, without reading that request: what a client meets when
  the server's timer fires while it sends, or when a NAT forgot the
  connection.  The request was never processed, so it is safe to resend.

``reset=False`` closes cleanly (FIN: the client reads an end of stream);
``reset=True`` resets (TCP RST: the client's read or write fails with
``ConnectionResetError``/``BrokenPipeError``).
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any, Optional

__all__ = ["WHEN", "IdleFault", "reset_socket"]

WHEN = ("idle", "request")


class IdleFault:
    """What to do to keep-alive connections left idle; shared by the collector and its server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.after: Optional[float] = None
        self.reset = False
        self.when = "idle"
        self.count = 0  # connections closed or reset so far

    def set(self, after: Optional[float], *, reset: bool = False, when: str = "idle") -> None:
        if after is not None and not after > 0:
            raise ValueError(f"after must be a positive number of seconds or None, got {after!r}")
        if when not in WHEN:
            raise ValueError(f"when must be one of {WHEN}, got {when!r}")
        with self._lock:
            self.after, self.reset, self.when = after, reset, when

    def clear(self) -> None:
        self.set(None)

    @property
    def eager(self) -> Optional[float]:
        """Seconds after which an idle connection is closed on a timer (None: not so)."""
        return self.after if self.when == "idle" else None

    def expired(self, idle_for: float) -> bool:
        """Whether a request arriving after ``idle_for`` idle seconds meets a dead connection."""
        after = self.after
        return self.when == "request" and after is not None and idle_for >= after

    def counted(self) -> None:
        with self._lock:
            self.count += 1

    def describe(self) -> dict[str, Any]:
        return {"after": self.after, "reset": self.reset, "when": self.when,
                "connections": self.count}


def reset_socket(sock: Any) -> None:
    """Arrange for ``sock``'s close to send a TCP RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
