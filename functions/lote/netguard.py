"""Reaching other people's servers safely: public addresses only, connections pinned to them."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import urllib3

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(ip: IP) -> bool:
    """Globally routable unicast: no private, loopback, link-local (metadata), shared or reserved."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def pinned_pool(url: str, address: str, timeout_s: float) -> urllib3.HTTPConnectionPool:
    """A connection pool for `url` that connects to the already checked `address` (no second DNS
    lookup an attacker could rebind), verifying TLS against the URL's host name."""
    import certifi
    import urllib3

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = urllib3.Timeout(total=timeout_s)
    if parts.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address, port, timeout=timeout, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
            server_hostname=parts.hostname, assert_hostname=parts.hostname,
        )  # fmt: skip
    return urllib3.HTTPConnectionPool(address, port, timeout=timeout)
