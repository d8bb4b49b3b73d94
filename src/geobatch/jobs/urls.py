"""Guarding URLs that geobatch fetches from or calls back: no private networks by default.

A URL whose host resolves to a loopback, private, link-local, reserved or cloud-metadata
address is refused unless the operator's allow-list names that host or a network holding it.
Checked at job creation and again just before each request, because DNS can change; and the
request then goes to the very address that was checked (``pinned``), so a name that resolves
to a public address for the check and to a private one a moment later cannot get through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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


def check_url(url: str, allowlist: Sequence[str], *, what: str = "URL") -> Address:
    """Raise ``ForbiddenUrl`` unless ``url`` is http(s) and reaches only permitted addresses.

    Returns the first address the host resolved to, for ``pinned``.
    """
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
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not _is_public(address) and not _allowed(host, address, allowlist):
            raise ForbiddenUrl(
                f"{what} host {host} resolves to {address}, a private or reserved address; "
                "an operator can permit it with GEOBATCH_URL_ALLOWLIST."
            )
    if not addresses:
        raise ForbiddenUrl(f"{what} host {host} resolves to no address.")
    return addresses[0]


@dataclass(frozen=True)
class PinnedRequest:
    """An httpx request's URL, headers and extensions that connect to one given address."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def pinned(url: str, address: Address) -> PinnedRequest:
    """The request for ``url`` sent to ``address``: the server still sees the URL's host.

    The host goes in the ``Host`` header and, for https, in the TLS server name, against
    which the certificate is verified as usual.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    target = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    host_header = parts.netloc.rpartition("@")[2]  # without any user:password@
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return PinnedRequest(target, {"host": host_header}, extensions)


def check_and_pin(url: str, allowlist: Sequence[str], *, what: str = "URL") -> PinnedRequest:
    """``check_url``, then the request pinned to the address that passed."""
    return pinned(url, check_url(url, allowlist, what=what))
