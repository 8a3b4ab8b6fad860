"""The parts of :class:`consumers.redis_worker.StreamWorker`, one concept a module.

``entries`` reads stream entries, ``group`` reads and claims them in the
consumer group, ``batch`` takes one batch from start to finish, ``delivery``
hands it to the consumer and sorts out what happened, ``settling``
acknowledges and dead-letters, ``backoff`` paces the retries after a failure
and ``stats`` reports on and trims the stream.  All of them log as
``consumers.redis_worker``.
"""
