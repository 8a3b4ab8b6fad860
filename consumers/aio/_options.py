"""The checks and choices of :class:`~consumers.aio.AsyncBackgroundConsumer`'s options."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from consumers._spool import Spool
from consumers._spool_home import TEMP_SPOOL, default_spool_root

__all__ = ["check_options", "choose_spool"]


def check_options(*, flush_interval: float, probe_interval: float, shutdown_timeout: float,
                  max_in_flight: int) -> None:
    """Raise ``ValueError`` naming the first option out of range."""
    for name, value in (("flush_interval", flush_interval),
                        ("probe_interval", probe_interval),
                        ("shutdown_timeout", shutdown_timeout)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) \
            or max_in_flight < 1:
        raise ValueError(f"max_in_flight must be a positive int, got {max_in_flight!r}")


def choose_spool(spool: Union[bool, str, Path, None], inner: Any,
                 durable: bool = False) -> Optional[Spool]:
    """The spool ``spool=`` asks for: None for ``False``; the default folder for ``None``.

    ``durable=True`` needs a folder of the caller's: where the next process looks.
    """
    if durable and (spool is None or spool is True or spool is False or spool is TEMP_SPOOL):
        raise ValueError(f"durable=True needs spool='some/dir', where the next process "
                         f"looks for what this one wrote; got spool={spool!r}")
    if spool is False:
        return None
    if spool is None or spool is True:
        return Spool(default_spool_root(inner))
    return Spool(None if spool is TEMP_SPOOL else Path(spool))
