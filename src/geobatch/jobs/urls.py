"""Guarding URLs that geobatch fetches from or calls back: no private networks by default.

A URL whose host resolves to a loopback, private, link-local, reserved or cloud-metadata
address is refused unless the operator's allow-list names that host or a network holding it.
Checked at job creation and again just before each request, because DNS can change.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from geobatch.errors import ForbiddenUrl

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _is_public(address: Address) -> bool:
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _allowed(host: str, address: Address, allowlist: Sequence[str]) -> bool:
    for item in allowlist:
        if item.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_url(url: str, allowlist: Sequence[str], *, what: str = "URL") -> None:
    """Raise ``ForbiddenUrl`` unless ``url`` is http(s) and reaches only permitted addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ForbiddenUrl(f"{what} must use http or https, not {parts.scheme or 'no scheme'}.")
    host = parts.hostname
    if not host:
        raise ForbiddenUrl(f"{what} has no host: {url}")
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ForbiddenUrl(f"{what} host {host} does not resolve ({exc.strerror}).") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not _is_public(address) and not _allowed(host, address, allowlist):
            raise ForbiddenUrl(
                f"{what} host {host} resolves to {address}, a private or reserved address; "
                "an operator can permit it with GEOBATCH_URL_ALLOWLIST."
            )
