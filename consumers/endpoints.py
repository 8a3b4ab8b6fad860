"""Where each message type is delivered: regions, custom hosts, per-type URLs.

Per-type URLs without a region or host (the Ruby library's
``Consumer.new(events_url, update_url, groups_url)``): when every URL given
names one base URL (``https://api-eu.mixpanel.com/track`` and
``.../engage`` both name ``https://api-eu.mixpanel.com``), the types left out
go to that base with their usual path, so an EU user's /import goes to the EU
host too.  A URL that does not end in its type's usual path names its scheme
and host.  When the URLs given name different bases, every type must be
given (or a ``region``/``api_host`` for the rest): a
:class:`~consumers.errors.ConfigurationError` says so rather than sending the
missing types to the US.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

import attrs

from consumers.errors import ConfigurationError

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

#: Endpoints field -> (message type, the consumer keyword that sets it).
_FIELDS = {
    "events": ("event", "events_url"),
    "update": ("profile_update", "update_url"),
    "groups": ("group_update", "groups_url"),
    "imports": ("import", "import_url"),
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
        urls: Optional[Mapping[str, str]] = None,
    ) -> Endpoints:
        """Explicit endpoints, else ``api_host``, else ``region``, then ``urls`` per type.

        ``urls`` maps field names (``events``, ``update``, ``groups``,
        ``imports``) to URLs that override single types.  With none of
        ``endpoints``/``region``/``api_host``, the types ``urls`` leaves out
        follow the one base URL the given ones name (see the module
        docstring); ``region="us"`` is the default only when no URL is given.
        The one rule every consumer uses to pick its URLs.
        """
        given = [x for x in (endpoints, region, api_host) if x is not None]
        if len(given) > 1:
            raise ValueError("give at most one of endpoints, region and api_host")
        overrides = {name: _check_url(name, url) for name, url in (urls or {}).items()}
        if endpoints is not None:
            base = endpoints
        elif api_host is not None:
            base = cls.host(api_host)
        elif region is not None or not overrides:
            base = cls.region(region or "us")
        elif len(overrides) == len(_FIELDS):
            return cls(**overrides)
        else:
            base = cls.host(_common_base(overrides))
        return attrs.evolve(base, **overrides) if overrides else base

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


def _check_url(name: str, url: object) -> str:
    if name not in _FIELDS:
        raise ValueError(f"unknown endpoint {name!r}; expected one of {sorted(_FIELDS)}")
    keyword = _FIELDS[name][1]
    if not isinstance(url, str):
        raise TypeError(f"{keyword} must be a URL (str), got {type(url).__name__}")
    if "://" not in url:
        # the value is not shown: a misplaced token or secret must not reach a log
        raise ValueError(
            f"{keyword} must be a URL with a scheme, such as "
            f"'https://api-eu.mixpanel.com{_PATHS[_FIELDS[name][0]]}'"
        )
    return url


def _base_of(name: str, url: str) -> str:
    """The base URL ``url`` names: without its type's usual path, else its scheme and host."""
    url = _strip_slash(url)
    path = _PATHS[_FIELDS[name][0]]
    if url.endswith(path):
        return url[: -len(path)]
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _common_base(urls: Mapping[str, str]) -> str:
    """The one base URL every given URL names; ConfigurationError when they differ."""
    bases = {name: _base_of(name, url) for name, url in urls.items()}
    if len(set(bases.values())) == 1:
        return next(iter(bases.values()))
    named = ", ".join(f"{_FIELDS[n][1]} -> {redact_url(b)}" for n, b in bases.items())
    missing = " and ".join(_FIELDS[n][1] + "=" for n in _FIELDS if n not in urls)
    raise ConfigurationError(
        f"the URLs given name different hosts ({named}), so where the other types go "
        f"is not clear: give {missing} too, or region= / api_host= for the types left out"
    )
