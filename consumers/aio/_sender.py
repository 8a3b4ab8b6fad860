"""What an :class:`~consumers.aio.AsyncBackgroundConsumer` posts through: the sender protocol."""

from __future__ import annotations

from typing import Optional, Protocol

from consumers._protocol.batches import Rule

__all__ = ["AsyncSender", "sender_types"]


class AsyncSender(Protocol):
    """Checks messages, knows its limits and failure rule, posts one batch of one type."""

    rule: Rule

    def check(self, message_type: str, message_json: str) -> None: ...

    def limits(self, message_type: str) -> tuple[int, int]: ...

    async def send_batch(self, message_type: str, messages: list[str]) -> None: ...

    def end_retries_at(self, deadline: Optional[float]) -> None: ...

    async def aclose(self) -> None: ...


def sender_types(inner: AsyncSender) -> list[str]:
    """The message types ``inner`` sends."""
    from consumers.endpoints import MESSAGE_TYPES

    found = []
    for message_type in (*MESSAGE_TYPES, "posthog"):
        try:
            inner.limits(message_type)
        except (KeyError, ValueError):
            continue
        found.append(message_type)
    return found
