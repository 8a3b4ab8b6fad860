"""Serverless functions: deliver at the end of each invocation, within the time left.

AWS Lambda (and Cloud Functions, Azure Functions...) freezes the process as
soon as the handler returns: a background thread stops mid-batch, and the
keep-alive connection it held is often dead when the next invocation thaws
the process.  So nothing may be left for later in memory:

* :class:`Invocations` flushes a synchronous consumer (a
  :class:`~consumers.buffered.BufferedConsumer` or
  :class:`~consumers.posthog.PostHogConsumer`) as each invocation ends,
  starting no retry that would end after the time the runtime says is left
  (``context.get_remaining_time_in_millis()`` on AWS Lambda; a plain
  ``deadline`` elsewhere) minus ``margin`` seconds;
* what could not be delivered in that time is written to ``spool`` (by default
  a folder under the writable temp dir, ``/tmp`` on Lambda) and sent first by
  the next invocation of the same process (or of the next process that finds
  the folder);
* a keep-alive connection that died during the freeze is replaced, and a
  request it provably did not deliver is resent at once (see
  :mod:`consumers._stale`).

Use it as a decorator of the handler, or as a context manager around the
body of one::

    invocations = Invocations(BufferedConsumer(region="eu"))

    @invocations
    def handler(event, context):
        tracker.track(...)

    with invocations.invocation(deadline=time.monotonic() + 10):
        tracker.track(...)

Give the consumer a ``timeout`` below ``margin`` where a slow answer must not
outlast the invocation: a request in progress is not interrupted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

from consumers.errors import Message

__all__ = ["Invocations"]

logger = logging.getLogger("consumers.serverless")

_F = TypeVar("_F", bound=Callable[..., Any])

#: Seconds an invocation gets when the runtime says nothing about its time.
DEFAULT_BUDGET = 5.0


def _default_spool() -> Path:
    return Path(tempfile.gettempdir()) / "tracking-serverless"


class Invocations:
    """Flush ``consumer`` at the end of every invocation; spill what does not fit in time.

    ``consumer`` needs ``send``, ``flush`` and ``take_pending`` (and uses
    ``end_retries_at`` when it has it).  ``margin``: seconds kept for the
    spill and the handler's own return.  ``budget``: the time an invocation
    is given when neither a Lambda ``context`` nor a ``deadline`` says.
    """

    def __init__(
        self,
        consumer: Any,
        *,
        spool: Optional[Union[str, os.PathLike[str]]] = None,
        margin: float = 0.5,
        budget: float = DEFAULT_BUDGET,
    ) -> None:
        for name in ("send", "flush", "take_pending"):
            if not callable(getattr(consumer, name, None)):
                raise TypeError(f"consumer must have {name}() (a BufferedConsumer or "
                                f"PostHogConsumer), got {type(consumer).__name__}")
        if not margin >= 0:
            raise ValueError(f"margin must be a non-negative number of seconds, got {margin!r}")
        if not budget > 0:
            raise ValueError(f"budget must be a positive number of seconds, got {budget!r}")
        self.consumer = consumer
        self.spool = Path(spool) if spool is not None else _default_spool()
        self.margin = margin
        self.budget = budget
        self.spilled = 0  # messages written to the spool so far
        self.resent = 0  # messages read back from it

    def __repr__(self) -> str:
        return f"Invocations({self.consumer!r}, spool={str(self.spool)!r}, margin={self.margin})"

    # -- the two forms ---------------------------------------------------------------
    def __call__(self, handler: _F) -> _F:
        """Decorate ``handler(event, context, ...)``; Lambda's ``context`` sets the deadline."""

        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            context = args[1] if len(args) > 1 else kwargs.get("context")
            with self.invocation(context):
                return handler(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    @contextlib.contextmanager
    def invocation(
        self, context: Any = None, *, deadline: Optional[float] = None
    ) -> Iterator[Invocations]:
        """One invocation: resend what earlier ones spilled, run the body, flush in time.

        ``deadline``: when the invocation must end (``time.monotonic()``);
        else ``context.get_remaining_time_in_millis()``; else ``budget``.
        """
        end = self._deadline(context, deadline)
        end_retries = getattr(self.consumer, "end_retries_at", None)
        if callable(end_retries):  # a batch sent during the body retries only while there is time
            end_retries(end - self.margin)
        earlier = self._load_spilled()
        try:
            yield self
        finally:
            self._finish(end, earlier)

    # -- the work ----------------------------------------------------------------------
    def _deadline(self, context: Any, deadline: Optional[float]) -> float:
        if deadline is not None:
            return float(deadline)
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            return time.monotonic() + max(0.0, float(remaining()) / 1000.0)
        return time.monotonic() + self.budget

    def _load_spilled(self) -> list[Path]:
        """Hand what earlier invocations spilled to the consumer (oldest first)."""
        try:
            files = sorted(self.spool.glob("spill-*.jsonl"))
        except OSError:
            return []
        loaded: list[Path] = []
        for path in files:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    message_type, message_json = json.loads(line)
                except ValueError:
                    logger.warning("skipping an unreadable line in %s", path)
                    continue
                self.consumer.send(message_type, message_json)
                self.resent += 1
            loaded.append(path)
        return loaded

    def _finish(self, end: float, earlier: list[Path]) -> None:
        end_retries = getattr(self.consumer, "end_retries_at", None)
        if callable(end_retries):
            end_retries(end - self.margin)
        try:
            self.consumer.flush()
            leftovers: list[Message] = []
        except Exception as error:
            leftovers = list(self.consumer.take_pending())
            logger.warning("%d message(s) not delivered before the invocation's deadline (%s); "
                           "spilling them for the next one", len(leftovers), error)
        finally:
            if callable(end_retries):
                end_retries(None)
        if leftovers and not self._spill(leftovers):
            return  # the earlier files still hold what they held: keep them
        for path in earlier:
            with contextlib.suppress(OSError):
                path.unlink()

    def _spill(self, messages: list[Message]) -> bool:
        """Write ``messages`` to a new spool file, whole or not at all."""
        name = f"spill-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        target = self.spool / name
        temporary = self.spool / f".{name}.tmp"
        try:
            self.spool.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as f:
                for message in messages:
                    f.write(json.dumps(list(message)) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, target)
        except OSError as error:
            logger.error("%d message(s) could not be spilled to %s (%s); the consumer keeps "
                         "them for the next invocation", len(messages), self.spool, error)
            for message in messages:  # in memory: sent if the process is thawed again
                with contextlib.suppress(Exception):  # (and maybe twice: the ids dedupe)
                    self.consumer.send(*message)
            return False
        self.spilled += len(messages)
        logger.info("%d message(s) spilled to %s", len(messages), target)
        return True
