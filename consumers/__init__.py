"""Delivery of ``(type, message_json)`` tuples: HTTP, batches, background, files, queues.

Every consumer is a sink: ``consumer.send(type, message_json)``, and calling
the consumer object does the same, so consumers wrap one another and plug
into any ``Tracker``.  This package never imports ``tracker``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from consumers import _logging  # noqa: F401  (a NullHandler on the top logger)

# Public name -> module that defines it.  Imported on first use so that
# ``import consumers`` stays cheap and optional extras (redis) load only when asked for.
# No public name may be the name of a module in this package: importing
# ``consumers.<module>`` sets that attribute on the package to the module.
_EXPORTS = {
    "Endpoints": "endpoints",
    "REGIONS": "endpoints",
    "MESSAGE_TYPES": "endpoints",
    "ConfigurationError": "errors",
    "DeliveryError": "errors",
    "TransportError": "errors",
    "TimeoutError_": "errors",
    "RefusedError": "errors",
    "PayloadTooLargeError": "errors",
    "RecordsRejectedError": "errors",
    "FailedRecord": "errors",
    "RetryPolicy": "retry",
    "Consumer": "consumer",
    "ServiceAccount": "consumer",
    "BufferedConsumer": "buffered",
    "BackgroundConsumer": "background",
    "FileConsumer": "file",
    "replay": "replaying",
    "ReplayResult": "replaying",
    "ReplayInProgressError": "replaying",
    "CheckpointError": "replaying",
    "PostHogConsumer": "posthog",
    "RedisStreamSink": "redis_stream",
    "StreamWorker": "redis_worker",
    "Collector": "collector",
    "use_local_collector": "local",
    "LOCAL_COLLECTOR_ENV": "local",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    # The same names, seen by type checkers and editors (which do not run
    # ``__getattr__``); tests/test_exports.py keeps this list equal to _EXPORTS.
    from consumers.background import BackgroundConsumer as BackgroundConsumer
    from consumers.buffered import BufferedConsumer as BufferedConsumer
    from consumers.collector import Collector as Collector
    from consumers.consumer import Consumer as Consumer
    from consumers.consumer import ServiceAccount as ServiceAccount
    from consumers.endpoints import MESSAGE_TYPES as MESSAGE_TYPES
    from consumers.endpoints import REGIONS as REGIONS
    from consumers.endpoints import Endpoints as Endpoints
    from consumers.errors import ConfigurationError as ConfigurationError
    from consumers.errors import DeliveryError as DeliveryError
    from consumers.errors import FailedRecord as FailedRecord
    from consumers.errors import PayloadTooLargeError as PayloadTooLargeError
    from consumers.errors import RecordsRejectedError as RecordsRejectedError
    from consumers.errors import RefusedError as RefusedError
    from consumers.errors import TimeoutError_ as TimeoutError_
    from consumers.errors import TransportError as TransportError
    from consumers.file import FileConsumer as FileConsumer
    from consumers.local import LOCAL_COLLECTOR_ENV as LOCAL_COLLECTOR_ENV
    from consumers.local import use_local_collector as use_local_collector
    from consumers.posthog import PostHogConsumer as PostHogConsumer
    from consumers.redis_stream import RedisStreamSink as RedisStreamSink
    from consumers.redis_worker import StreamWorker as StreamWorker
    from consumers.replaying import CheckpointError as CheckpointError
    from consumers.replaying import ReplayInProgressError as ReplayInProgressError
    from consumers.replaying import ReplayResult as ReplayResult
    from consumers.replaying import replay as replay
    from consumers.retry import RetryPolicy as RetryPolicy
else:
    # Hidden from type checkers, so that a misspelt name is an error there
    # rather than ``Any``.
    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'consumers' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"consumers.{module}"), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
