"""Where each message type is delivered: regions, custom hosts, per-type URLs."""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit, urlunsplit

import attrs

__all__ = ["MESSAGE_TYPES", "REGIONS", "Endpoints", "redact_url"]

#: The tuple types, with the Ruby library's names.
MESSAGE_TYPES = ("event", "profile_update", "group_update", "import")

#: Mixpanel's data-residency hosts.
REGIONS = {
    "us": "https://api.mixpanel.com",
    "eu": "https://api-eu.mixpanel.com",
    "in": "https://api-in.mixpanel.com",
}

_PATHS = {
    "event": "/track",
    "profile_update": "/engage",
    "group_update": "/groups",
    "import": "/import",
}


def _strip_slash(url: str) -> str:
    return url.rstrip("/")


def redact_url(url: str) -> str:
    """``url`` fit for a log or an error: a password in it (``https://user:pw@proxy``) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _redacted_repr(url: str) -> str:
    return repr(redact_url(url))


@attrs.frozen
class Endpoints:
    """The URL for each message type. Build with :meth:`region`, :meth:`host` or directly.

    >>> Endpoints.region("eu").url_for("event")
    'https://api-eu.mixpanel.com/track'
    """

    events: str = attrs.field(converter=_strip_slash, repr=_redacted_repr)
    update: str = attrs.field(converter=_strip_slash, repr=_redacted_repr)
    groups: str = attrs.field(converter=_strip_slash, repr=_redacted_repr)
    imports: str = attrs.field(converter=_strip_slash, repr=_redacted_repr)

    @classmethod
    def host(cls, api_host: str) -> Endpoints:
        """Every type on one base URL (a proxy, a self-hosted relay, the local collector)."""
        if "://" not in api_host:
            raise ValueError(f"api_host must be a URL with a scheme, got {redact_url(api_host)!r}")
        base = _strip_slash(api_host)
        return cls(*(base + _PATHS[t] for t in MESSAGE_TYPES))

    @classmethod
    def region(cls, name: str) -> Endpoints:
        """Mixpanel's ``"us"``, ``"eu"`` or ``"in"`` residency hosts."""
        try:
            return cls.host(REGIONS[name.lower()])
        except (KeyError, AttributeError):
            raise ValueError(
                f"region must be one of {sorted(REGIONS)}, got {name!r}"
            ) from None

    @classmethod
    def resolve(
        cls,
        endpoints: Optional[Endpoints] = None,
        *,
        region: Optional[str] = None,
        api_host: Optional[str] = None,
    ) -> Endpoints:
        """Explicit endpoints, else ``api_host``, else ``region`` (default ``"us"``).

        The one rule every consumer uses to pick its URLs.
        """
        given = [x for x in (endpoints, region, api_host) if x is not None]
        if len(given) > 1:
            raise ValueError("give at most one of endpoints, region and api_host")
        if endpoints is not None:
            return endpoints
        if api_host is not None:
            return cls.host(api_host)
        return cls.region(region or "us")

    def url_for(self, message_type: str) -> str:
        """The URL a message of ``message_type`` is posted to."""
        if message_type == "event":
            return self.events
        if message_type == "profile_update":
            return self.update
        if message_type == "group_update":
            return self.groups
        if message_type == "import":
            return self.imports
        raise ValueError(f"unknown message type {message_type!r}; expected one of {MESSAGE_TYPES}")
