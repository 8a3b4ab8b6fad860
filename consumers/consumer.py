"""``Consumer``: deliver ``(type, message_json)`` to Mixpanel over HTTP, one request per call.

Where each type goes comes from :class:`~consumers.endpoints.Endpoints`
(``region=``, ``api_host=``, ``endpoints=``, or the Ruby library's per-type
URLs ``events_url`` / ``update_url`` / ``groups_url`` / ``import_url``, by
keyword or in that order, as Ruby's ``Consumer.new``)::

    consumer = Consumer(region="eu")
    consumer = Consumer("https://api-eu.mixpanel.com/track",     # the Ruby form:
                        "https://api-eu.mixpanel.com/engage",    # /import follows
                        "https://api-eu.mixpanel.com/groups")    # to the EU host
    consumer.send("event", message_json)                     # POST now
    consumer.send_batch("event", [m1, m2, m3])               # one POST, one batch

Wire format (see ``WIRE.md``):

* ``event``, ``profile_update``, ``group_update`` go to ``/track``,
  ``/engage``, ``/groups`` as an ``application/json`` array with
  ``?verbose=1&ip=0``.  A JSON body costs the client a few microseconds per
  batch where the form ``data=`` encoding the older libraries use costs
  hundreds (every byte is percent-encoded), and the service accepts both.
  ``verbose=1`` makes a refusal visible: ``{"status": 0, "error": ...}``
  raises :class:`~consumers.errors.RefusedError` (status 200, not retried).
* ``import`` goes to ``/import?strict=1`` as a gzip-compressed JSON array
  with HTTP Basic auth: a service account (``project_id`` added to the query),
  else the API secret, else the project token, as the user name with an empty
  password.  A strict 400 with ``failed_records`` raises
  :class:`~consumers.errors.RecordsRejectedError` naming exactly the refused
  messages; the others were imported.

Messages are sent exactly as given: batches are the serialised strings joined
with commas, never parsed and re-serialised.  Secrets appear in no repr,
error or log line.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import attrs
import requests

from consumers._closing import Closing
from consumers._fork import ForkAware
from consumers._http import DEFAULT_TIMEOUT, HttpTransport, Timeout
from consumers._protocol.answers import batch_failure, status_answer
from consumers.endpoints import MESSAGE_TYPES, Endpoints
from consumers.errors import ConfigurationError, DeliveryError
from consumers.retry import RetryPolicy

__all__ = ["MAX_BATCH", "ConfigurationError", "Consumer", "ServiceAccount"]

log = logging.getLogger(__name__)

#: The service takes at most this many messages in one request, on every endpoint.
MAX_BATCH = 2000

#: gzip level for /import: level 1 costs a fraction of the default's CPU and
#: still shrinks JSON several times.
_GZIP_LEVEL = 1

_JSON_HEADERS = {"Content-Type": "application/json"}
_TRACK_PARAMS = {"verbose": "1", "ip": "0"}


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("service account username, secret and project_id must be non-empty")
    return value


def _project_id(value: object) -> str:
    return _text(str(value) if isinstance(value, int) else value)


@attrs.frozen
class ServiceAccount:
    """Service-account credentials for /import. The secret never appears in a repr."""

    username: str = attrs.field(converter=_text)
    secret: str = attrs.field(converter=_text, repr=False)
    project_id: str = attrs.field(converter=_project_id)


def _service_account(value: Any) -> Optional[ServiceAccount]:
    if value is None or isinstance(value, ServiceAccount):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 3:
        return ServiceAccount(*value)
    raise TypeError("service_account must be a ServiceAccount or (username, secret, project_id)")


@attrs.frozen
class _Route:
    """Everything needed to post one type: computed once per consumer."""

    url: str
    params: Optional[dict[str, str]]
    headers: dict[str, str]
    auth: Optional[tuple[str, str]] = attrs.field(repr=False)
    gzip: bool
    imports: bool


class Consumer(Closing, ForkAware):
    """Posts messages to Mixpanel immediately: one request per :meth:`send` or :meth:`send_batch`.

    Keyword arguments:

    ``region`` ("us", "eu", "in"), ``api_host`` (any base URL) or
    ``endpoints`` (an :class:`Endpoints`) pick the destination, at most one
    of them; ``events_url``, ``update_url``, ``groups_url``, ``import_url``
    (also positional, in that order: the Ruby library's ``Consumer.new``
    form) then override single types.  Given alone, the URLs decide the
    rest: the types left out go to the one host the given URLs name (so
    EU URLs keep /import in the EU), and URLs naming different hosts must
    name every type (else :class:`ConfigurationError`).
    ``service_account`` (``ServiceAccount`` or ``(username, secret,
    project_id)``), ``api_secret`` or ``project_token`` authenticate /import.
    ``timeout`` is ``(connect, read)`` seconds; ``retry`` a
    :class:`RetryPolicy`; ``import_gzip`` compresses /import bodies;
    ``import_strict`` asks /import for per-record validation; ``verify``
    checks TLS certificates; ``session`` is a ``requests.Session`` to use;
    ``transport`` an :class:`HttpTransport` to share (then ``timeout``,
    ``retry``, ``verify`` and ``session`` must be left out).
    """

    def __init__(
        self,
        events_url: Optional[str] = None,
        update_url: Optional[str] = None,
        groups_url: Optional[str] = None,
        import_url: Optional[str] = None,
        *,
        region: Optional[str] = None,
        api_host: Optional[str] = None,
        endpoints: Optional[Endpoints] = None,
        project_token: Optional[str] = None,
        service_account: Union[ServiceAccount, tuple[str, str, str], None] = None,
        api_secret: Optional[str] = None,
        timeout: Optional[Timeout] = None,
        retry: Optional[RetryPolicy] = None,
        import_gzip: bool = True,
        import_strict: bool = True,
        verify: Optional[Union[bool, str]] = None,
        session: Optional[requests.Session] = None,
        transport: Optional[HttpTransport] = None,
    ) -> None:
        urls = {
            name: url
            for name, url in (
                ("events", events_url),
                ("update", update_url),
                ("groups", groups_url),
                ("imports", import_url),
            )
            if url is not None
        }
        self.endpoints: Endpoints = Endpoints.resolve(
            endpoints, region=region, api_host=api_host, urls=urls
        )
        self._service_account = _service_account(service_account)
        self._api_secret = api_secret or None
        self._project_token = project_token or None
        if transport is not None:
            if any(x is not None for x in (timeout, retry, verify, session)):
                raise TypeError("give either transport or timeout/retry/verify/session, not both")
            self._owns_transport = False
        else:
            transport = HttpTransport(
                retry=RetryPolicy() if retry is None else retry,
                timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                verify=True if verify is None else verify,
                session=session,
            )
            self._owns_transport = True
        self.transport: HttpTransport = transport
        self._routes = {t: self._route(t, import_gzip, import_strict) for t in MESSAGE_TYPES}
        self._watch_forks()

    # -- configuration ------------------------------------------------------------

    def _import_auth(self) -> tuple[Optional[tuple[str, str]], Optional[str]]:
        """(Basic auth, project_id) for /import; (None, None) when none is configured."""
        account = self._service_account
        if account is not None:
            return (account.username, account.secret), account.project_id
        user = self._api_secret or self._project_token
        return ((user, ""), None) if user else (None, None)

    def _route(self, message_type: str, use_gzip: bool, strict: bool) -> _Route:
        url = self.endpoints.url_for(message_type)
        if message_type != "import":
            return _Route(url, dict(_TRACK_PARAMS), dict(_JSON_HEADERS), None, False, False)
        auth, project_id = self._import_auth()
        params = {"strict": "1" if strict else "0"}
        if project_id is not None:
            params["project_id"] = project_id
        headers = dict(_JSON_HEADERS)
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        return _Route(url, params, headers, auth, use_gzip, True)

    @property
    def auth_kind(self) -> Optional[str]:
        """How /import authenticates: "service_account", "api_secret", "project_token" or None."""
        if self._service_account is not None:
            return "service_account"
        if self._api_secret is not None:
            return "api_secret"
        if self._project_token is not None:
            return "project_token"
        return None

    def check_sendable(self, message_type: str) -> None:
        """Raise ``ValueError`` for an unknown type, :class:`ConfigurationError` when
        the type cannot be delivered as configured (/import without credentials)."""
        route = self._routes.get(message_type)
        if route is None:
            raise ValueError(
                f"unknown message type {message_type!r}; expected one of {MESSAGE_TYPES}"
            )
        if route.imports and route.auth is None:
            raise ConfigurationError(
                "sending to /import needs credentials: pass service_account="
                "(username, secret, project_id), api_secret= or project_token= to the consumer"
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(endpoints={self.endpoints!r}, "
            f"import_auth={self.auth_kind!r}, retry={self.transport.retry!r})"
        )

    # -- sending ------------------------------------------------------------------

    def send(self, message_type: str, message_json: str) -> None:
        """Post one message now; raises the delivery errors on failure."""
        self.send_batch(message_type, (message_json,))

    __call__ = send

    @property
    def immediate(self) -> Callable[[str, str], None]:
        """A sink that delivers one message before it returns (here: :meth:`send`).

        Wrapping consumers expose the same property, so a tracker can send
        what must not wait (an alias) on the same endpoints, session and
        credentials as everything else.
        """
        return self.send

    def send_batch(self, message_type: str, messages: Sequence[str]) -> None:
        """Post ``messages`` (all of ``message_type``, at most 2000) in one request.

        Raises :class:`RecordsRejectedError` when strict /import refused some
        records (the rest were imported), or another delivery error when
        nothing was accepted; each error's ``messages`` names what was not
        delivered.
        """
        self.check_sendable(message_type)
        if not messages:
            return
        if len(messages) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} messages, got {len(messages)}")
        route = self._routes[message_type]
        body = encode_batch(route, messages)
        try:
            response = self.transport.post(
                route.url, body, route.headers, auth=route.auth, params=route.params
            )
            if not route.imports:
                refused = status_answer(response.text, response.status_code, response.url)
                if refused is not None:
                    raise refused
        except DeliveryError as exc:
            raise batch_failure(route.imports, exc, message_type, messages) from None

    def route(self, message_type: str) -> _Route:
        """Where and how ``message_type`` is posted (URL, query, headers, auth, gzip)."""
        self.check_sendable(message_type)
        return self._routes[message_type]

    def flush(self) -> None:
        """Nothing is buffered here: a no-op, so every consumer can be flushed."""

    def take_pending(self) -> list[tuple[str, str]]:
        """Nothing is held here (each ``send`` was delivered or raised): always ``[]``."""
        return []

    def end_retries_at(self, deadline: Optional[float]) -> None:
        """Start no retry that would end after ``deadline`` (``time.monotonic()``; None: lift).

        A wait between attempts in progress ends at once, raising the last
        error; used to make a shutdown finish on time.
        """
        end = getattr(self.transport, "end_retries_at", None)
        if callable(end):
            end(deadline)

    def close(self) -> None:
        """Release pooled connections (of a transport this consumer created)."""
        if self._owns_transport:
            self.transport.close()

    def _reset_in_child(self) -> None:
        """Open new connections instead of sharing the parent's."""
        self.transport.reset_after_fork()

def encode_batch(route: _Route, messages: Sequence[str]) -> bytes:
    """The request body for ``messages`` on ``route``: their JSON joined, gzipped for /import."""
    body = ("[" + ",".join(messages) + "]").encode("utf-8")
    if route.gzip:
        body = gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
    return body
