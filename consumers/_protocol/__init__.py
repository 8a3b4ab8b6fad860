"""The delivery rules, without IO: what to send, and what an answer means.

Like h11 for HTTP, nothing here opens a socket, sleeps or starts a thread:
the ``requests`` transport (:mod:`consumers._http`, :mod:`consumers.buffered`)
and the asyncio one (:mod:`consumers.aio`) move the bytes and ask these
modules what to do next, so both follow one copy of the rules.

* :mod:`~consumers._protocol.batches`: batches by count and bytes, and the
  plan of one flush (413 bisection, strict-import partial failure,
  ``{"status": 0}``, the exact put-back of what was not sent);
* :mod:`~consumers._protocol.answers`: an HTTP answer turned into the
  delivery error it means (or none), ``Retry-After`` kept on the error and
  in the endpoint's pace.
"""
