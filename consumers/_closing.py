"""``Closing``: the context-manager half every consumer shares."""

from __future__ import annotations

from types import TracebackType
from typing import Optional, TypeVar

_Self = TypeVar("_Self", bound="Closing")


class Closing:
    """``with obj:`` gives ``obj`` and calls ``obj.close()`` on the way out, error or not."""

    def close(self) -> None:
        """Release what the object holds (subclasses say what)."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()
