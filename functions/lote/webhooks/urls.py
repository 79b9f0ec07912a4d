"""Webhook URLs: https only (http too in local mode), never private, loopback, link-local or metadata.

Checked when a request is accepted (400 naming the field) and again before every delivery, where
the POST is pinned to the address that was checked so DNS cannot be rebound in between.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from lote.errors import InvalidRequest
from lote.netguard import IP, is_public
from lote.settings import Settings

METADATA_HOSTS = {"metadata", "metadata.google.internal", "metadata.goog"}


class UrlRefused(ValueError):
    """A webhook URL lote will not call."""


def _allowed(settings: Settings, ip: IP) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # The local stack's receivers listen on loopback; nothing else private is reachable, anywhere.
    return is_public(ip) or (settings.is_local and ip.is_loopback)


def resolve(settings: Settings, url: str) -> tuple[str, str]:
    """(scheme, one checked address) for a URL; UrlRefused says why not."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. a bracketed host that is not an IPv6 address
        raise UrlRefused(f"is not a valid URL ({exc})") from None
    schemes = {"https", "http"} if settings.is_local else {"https"}
    if parts.scheme not in schemes or not parts.hostname:
        raise UrlRefused(f"must be an absolute {' or '.join(sorted(schemes))} URL")
    if parts.username or parts.password:
        raise UrlRefused("must not carry credentials")
    host = parts.hostname.rstrip(".").lower()
    if host in METADATA_HOSTS:
        raise UrlRefused("must not point at the metadata server")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError) as exc:
        raise UrlRefused(f"host {host} does not resolve ({exc})") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    blocked = sorted({str(a) for a in addresses if not _allowed(settings, a)})
    if blocked or not addresses:
        raise UrlRefused(
            f"resolves to a private, loopback, link-local or reserved address ({', '.join(blocked)})"
        )
    return parts.scheme, str(addresses[0])


def check(settings: Settings, url: str | None, field: str) -> None:
    """400 naming `field` when `url` is set and may not receive webhooks."""
    if url is None:
        return
    try:
        resolve(settings, url)
    except UrlRefused as exc:
        raise InvalidRequest(f"{field} {exc}", {"field": field}) from None
