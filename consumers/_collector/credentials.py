"""Which credentials the collector accepts, and keeping them out of its request log."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Optional

__all__ = ["Credentials", "basic", "redacted"]


class Credentials:
    """Which /import credentials to accept. Nothing configured: any well-formed credentials."""

    def __init__(
        self,
        service_accounts: Optional[Mapping[str, str]] = None,
        project_id: Optional[str] = None,
        project_token: Optional[str] = None,
        api_secret: Optional[str] = None,
    ) -> None:
        self._service_accounts = dict(service_accounts or {})
        self._project_id = None if project_id is None else str(project_id)
        self._tokens = {t for t in (project_token, api_secret) if t}
        self._open = not (self._service_accounts or self._tokens)

    def __repr__(self) -> str:
        return f"Credentials(service_accounts={sorted(self._service_accounts)}, open={self._open})"

    def check(self, authorization: Optional[str], project_id: Optional[str]) -> Optional[str]:
        """None if allowed, else the reason for a 401."""
        user, password = basic(authorization)
        if user is None or password is None or not user:
            return "Invalid credentials"
        if password:
            if not project_id:
                return "project_id is required for service account authentication"
            if self._open:
                return None
            if self._service_accounts.get(user) != password:
                return "Invalid credentials"
            if self._project_id is not None and project_id != self._project_id:
                return "Invalid credentials"
            return None
        if self._open or user in self._tokens:
            return None
        return "Invalid credentials"


def basic(header: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """The user and password of a Basic ``Authorization`` header ((None, None) if not one)."""
    if not header or not header[:6].lower() == "basic ":
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


def redacted(raw_headers: list[tuple[str, str]]) -> dict[str, str]:
    """The headers for the log: credentials replaced, a service-account user name kept."""
    out: dict[str, str] = {}
    for name, value in raw_headers:
        if name.lower() == "authorization":
            scheme, _, credentials = value.partition(" ")
            user, password = basic(value)
            value = f"{scheme} <redacted>" if credentials else "<redacted>"
            if user and password:
                out["X-Collector-Service-Account"] = user
        out[name] = value
    return out
