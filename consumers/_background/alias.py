"""Synchronous sends with a short budget of their own (an alias must reach the service soon).

The wrapped consumer's ``immediate`` sink retries under its own policy
(a minute by default).  :class:`BudgetedSend` gives it ``budget`` seconds on
a helper thread; when the budget runs out, or the destination is known to be
down, the message goes through the background queue instead, so it is
delivered (or spooled) later rather than lost, and the caller is not held.
On the thread of a running asyncio event loop it does not wait at all: the
message is queued and the queue delivered at once (``soon``), since any wait
there stalls every task.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from consumers._background.outage import is_transient
from consumers._loop_check import on_event_loop

__all__ = ["BudgetedSend"]

logger = logging.getLogger("consumers.background")


class BudgetedSend:
    """``send(type, message_json)`` through ``immediate`` within ``budget`` seconds, else queue it.

    A refusal (the message's fault) is raised to the caller, as from
    ``immediate`` itself.  A message handed to the queue after the budget
    may also still be delivered by the attempt in flight: it then arrives
    twice, with the same ``$insert_id``.
    """

    def __init__(self, immediate: Callable[[str, str], Any], queue: Callable[[str, str], Any],
                 budget: float, down: Callable[[], bool],
                 soon: Callable[[str, str], Any]) -> None:
        self._immediate = immediate
        self._queue = queue
        self.budget = budget
        self._down = down
        self._soon = soon

    def __call__(self, message_type: str, message_json: str) -> None:
        if on_event_loop():  # its outcome reaches on_error, as the queue's does
            self._soon(message_type, message_json)
            return
        if self._down():
            logger.info("destination down: %s message queued instead of sent at once",
                        message_type)
            self._queue(message_type, message_json)
            return
        done = threading.Event()
        outcome: list[Optional[BaseException]] = []
        handed: list[bool] = []
        lock = threading.Lock()

        def attempt() -> None:
            try:
                self._immediate(message_type, message_json)
                error: Optional[BaseException] = None
            except Exception as exc:
                error = exc
            with lock:
                outcome.append(error)
                late = bool(handed)
            done.set()
            if late and error is not None and not is_transient(error):
                logger.error("a %s message queued after its budget was refused: %s",
                             message_type, error)

        threading.Thread(target=attempt, name="tracking-immediate", daemon=True).start()
        done.wait(self.budget)
        with lock:
            if not outcome:
                handed.append(True)
        if handed:
            logger.warning("%s message not confirmed within %.3g s; queued for background "
                           "delivery", message_type, self.budget)
            self._queue(message_type, message_json)
            return
        error = outcome[0]
        if error is None:
            return
        if is_transient(error):
            logger.warning("%s message not delivered at once (%s); queued for background "
                           "delivery", message_type, error)
            self._queue(message_type, message_json)
            return
        raise error
