"""The pieces a :class:`~consumers.background.BackgroundConsumer` is made of, one concept each.

``queue`` the byte-bounded hand-off from callers to the worker; ``inner``
the wrapped sink and its batch limits; ``outage`` when to probe a destination
that is down; ``losses`` exact, aggregated accounts of dropped messages;
``worker`` the delivery loop; ``spooling`` moving messages to and from the
disk spool; ``alias`` the short budget of synchronous aliases; ``lifecycle``
fork, ``multiprocessing`` children and interpreter exit.
"""
