"""Errors for what users of the Ruby and mixpanel-python libraries naturally write.

Each names the class the user called and says exactly what to write instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Set as AbstractSet

__all__ = ["positional_urls", "unexpected_keyword"]

#: Other libraries' names for these options: the Ruby library's, then mixpanel-python's.
_OTHER_NAMES = {
    "max_buffer_length": "max_batch",
    "max_length": "max_batch",
    "max_size": "max_batch",
    "events_endpoint": "events_url",
    "update_endpoint": "update_url",
    "groups_endpoint": "groups_url",
    "import_endpoint": "import_url",
    "people_url": "update_url",
    "request_timeout": "timeout",
    "verify_cert": "verify",
    "retry_limit": "retry",
}


def unexpected_keyword(name: str, value: object, known: AbstractSet[str]) -> TypeError:
    """The TypeError for a keyword BufferedConsumer does not take (``known``: what it takes)."""
    text = f"BufferedConsumer() got an unexpected keyword argument {name!r}"
    ours = _OTHER_NAMES.get(name)
    if ours == "retry":
        return TypeError(f"{text}: write retry=RetryPolicy(max_attempts=...) instead")
    if ours is not None:
        shown = repr(value) if isinstance(value, int) else "..."  # never echo a URL or secret
        return TypeError(f"{text}: write {ours}={shown} instead (the same option, named here)")
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]}=?" if close else "it takes " + ", ".join(names)
    return TypeError(f"{text}; {hint}")


def positional_urls(consumer: object, more: tuple[object, ...]) -> TypeError:
    """The TypeError for Ruby's ``BufferedConsumer.new(events_url, update_url, ...)``."""
    given = 1 + len(more)
    return TypeError(
        f"BufferedConsumer() takes one positional argument, the consumer that posts "
        f"its batches ({given} given, a URL first): write "
        f"BufferedConsumer(events_url=..., update_url=..., groups_url=..., max_batch=...) "
        f"or BufferedConsumer(Consumer(events_url, update_url, groups_url))"
        if isinstance(consumer, str) else
        f"BufferedConsumer() takes one positional argument, the consumer that posts "
        f"its batches ({given} given); pass the limits by keyword (max_batch=, max_bytes=)"
    )
