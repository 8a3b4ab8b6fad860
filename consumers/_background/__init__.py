"""The pieces a :class:`~consumers.background.BackgroundConsumer` is made of, one concept each.

``queue`` the byte-bounded hand-off from callers to the worker; ``inner``
the wrapped sink and its batch limits; ``outage`` when to probe a destination
that is down; ``losses`` exact, aggregated accounts of dropped messages;
``overflow`` what ``send()`` does when the queue has no room (and durable
write-ahead); ``worker`` the delivery loop; ``failures`` sorting a failed
hand-over to the wrapped sink; ``holds`` messages for endpoints the service
holds; ``spooling`` moving messages to and from the disk spool; ``ending``
``close()``'s deadline and the worker's last pass; ``counters`` what
``stats()`` reports; ``alias`` the short budget of synchronous aliases;
``lifecycle`` fork, ``multiprocessing`` children and interpreter exit.
"""
