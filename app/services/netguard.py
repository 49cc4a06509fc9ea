"""Refuse outbound callbacks to private networks (SSRF guard).

Checked when a URL is saved and again before each delivery, because DNS
answers can change in between.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def _is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_callback_url(url: str, allow_private: bool = False) -> str | None:
    """None when acceptable, else a plain reason."""
    if len(url) > 2048:
        return "The URL is too long (2,048 characters at most)."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "This is not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "Use an http:// or https:// URL."
    host = parts.hostname
    if not host:
        return "The URL has no host."
    if parts.username or parts.password:
        return "Credentials in the URL are not allowed; they would be logged."
    if allow_private:
        return None
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            # Not resolvable now; delivery re-checks before every attempt.
            return None
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    if any(_is_private(ip) for ip in addresses):
        return (
            f"{host} is a private, loopback or link-local address; callbacks there are "
            "refused (an administrator can allow them with SMSOPS_ALLOW_PRIVATE_CALLBACKS)."
        )
    return None
