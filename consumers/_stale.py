"""Keep-alive connections that died while idle: not reused when old, resent when safe.

Servers, load balancers and NAT gateways end idle keep-alive connections,
often without a word reaching the client (a process frozen between
serverless invocations wakes up to a pool of them).  urllib3 notices a
connection the server closed cleanly before reusing it; what it cannot
notice fails the next request on it.  Two defences, both per connection:

* A connection idle longer than :data:`MAX_IDLE` seconds is not reused: a
  fresh one costs a handshake, a dead one costs a failed request.
* A request on a *reused* connection that died before the server read it is
  sent again at once on a fresh connection, outside the retry policy.  The
  proof that it was not read: writing the request failed, or the server
  reset the connection (a server resets a socket it closes with our bytes
  still unread in it; one that read the request and then closed sends an
  orderly end of stream instead).  An end of stream without an answer is
  not proof: the server may have accepted the request and died before
  answering, so that failure goes to the retry policy like any other (the
  messages' ids let the service drop a duplicate).
"""

from __future__ import annotations

import http.client
import threading
import time
from typing import Any, Optional

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["MAX_IDLE", "POOL_CLASSES", "died_unread", "next_connection_fresh"]

#: Seconds a keep-alive connection may stay idle and still be reused: below the
#: idle timeouts of common load balancers (60 s) and NAT gateways (240-350 s).
MAX_IDLE = 50.0

_checkout = threading.local()  # this thread's last connection: (conn, reused); want_fresh


class _Tracked:
    """Mixed into urllib3's connections: when it went idle, and whether writing failed."""

    idle_since: Optional[float] = None
    write_failed = False

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.write_failed = False
        try:
            return super().request(*args, **kwargs)  # type: ignore[misc]
        except OSError:
            # urllib3 swallows this to read an early answer; remember that the request broke
            self.write_failed = True
            raise


class _TrackedHTTPConnection(_Tracked, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _FreshWhenStale:
    """Mixed into urllib3's pools: old idle connections are closed, checkouts are noted."""

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        idle_since = getattr(conn, "idle_since", None)
        alive = getattr(conn, "sock", None) is not None
        if alive and (getattr(_checkout, "want_fresh", False)
                      or idle_since is None or time.monotonic() - idle_since > MAX_IDLE):
            conn.close()  # urllib3 connects it again: a new socket
            alive = False
        _checkout.want_fresh = False
        _checkout.last = (conn, alive)
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.idle_since = time.monotonic()
        super()._put_conn(conn)  # type: ignore[misc]


class _Pool(_FreshWhenStale, HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TLSPool(_FreshWhenStale, HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


#: For ``PoolManager.pool_classes_by_scheme``.
POOL_CLASSES = {"http": _Pool, "https": _TLSPool}


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, the exceptions in its ``args``, and their causes and contexts."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return seen


def died_unread(exc: BaseException) -> bool:
    """Whether ``exc`` (this thread's last request failing) says a reused connection
    was dead before the server read the request."""
    last = getattr(_checkout, "last", None)
    if last is None:
        return False
    conn, reused = last
    _checkout.last = None
    if not reused:
        return False
    causes = _causes(exc)
    if any(isinstance(c, TimeoutError) or "Timeout" in type(c).__name__ for c in causes):
        return False
    if getattr(conn, "write_failed", False):
        return True
    return any(isinstance(c, (ConnectionResetError, BrokenPipeError))
               and not isinstance(c, http.client.RemoteDisconnected) for c in causes)


def next_connection_fresh() -> None:
    """This thread's next checkout gets a new connection, whatever the pool holds."""
    _checkout.want_fresh = True
