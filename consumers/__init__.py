"""Delivery of ``(type, message_json)`` tuples: HTTP, batches, background, files, queues.

Every consumer is a sink: ``consumer.send(type, message_json)``, and calling
the consumer object does the same, so consumers wrap one another and plug
into any ``Tracker``.  This package never imports ``tracker``.
"""

from __future__ import annotations

import importlib
from typing import Any

from consumers import _logging  # noqa: F401  (a NullHandler on the top logger)

# Public name -> module that defines it.  Imported on first use so that
# ``import consumers`` stays cheap and optional extras (redis) load only when asked for.
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
    "replay": "replay",
    "PostHogConsumer": "posthog",
    "RedisStreamSink": "redis_stream",
    "StreamWorker": "redis_worker",
    "Collector": "collector",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'consumers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"consumers.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
