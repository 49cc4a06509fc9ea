"""Refuse outbound callbacks to private networks (SSRF guard).

A callback host is resolved ONCE (`resolve_callback`); every address must be
globally routable, and the caller connects to exactly those checked addresses
(jobs/callbacks.py), so a DNS answer that changes between check and connect
(rebinding) cannot reach loopback or a private network. Checked when a URL is
saved and again before each delivery, because DNS answers can change in between.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to (strings, as getaddrinfo gives them).
# Injected in tests (config CALLBACK_RESOLVER) so no name is ever looked up outside.
Resolver = Callable[[str, int], list[str]]

# Python 3.11's is_global still says True for these; none is a place for a callback.
_NOT_GLOBAL = tuple(ipaddress.ip_network(n) for n in (
    "100.64.0.0/10",   # carrier-grade NAT (shared address space)
    "192.88.99.0/24",  # 6to4 relay anycast
    "fec0::/10",       # deprecated site-local
    "2002::/16",       # 6to4: embeds any IPv4 address, private ones too
    "64:ff9b::/96",    # NAT64: embeds any IPv4 address
    "64:ff9b:1::/48",  # local-use NAT64
))


class Refused(Exception):
    """The URL may not be called. `retry` is True when trying later could help
    (a failed lookup), False when it would be refused again."""

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.retry = reason, retry


@dataclass(frozen=True)
class Target:
    """A checked callback URL: connect only to `addresses`, and send `host` as the
    Host header and (https) the TLS server name."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[IPAddress, ...]


def for_log(url: str) -> str:
    """A callback URL as logs may show it: scheme, host and port. Its path and query
    often carry the receiver's secret token (webhook URLs do), and logs are read by
    more people than the settings are."""
    try:
        parts = urlsplit(url)
        where = parts.hostname or ""
        if ":" in where:
            where = f"[{where}]"
        if parts.port is not None:
            where += f":{parts.port}"
    except ValueError:
        return "(an invalid URL)"
    rest = "/…" if parts.path.strip("/") or parts.query or parts.fragment else "/"
    return f"{parts.scheme}://{where}{rest}"


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def resolver_from(config: dict[str, object]) -> Resolver:
    found = config.get("CALLBACK_RESOLVER")
    return found if callable(found) else system_resolve  # type: ignore[return-value]


def is_public(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified
        or any(ip.version == net.version and ip in net for net in _NOT_GLOBAL)
    )


def resolve_callback(url: str, allow_private: bool = False,
                     resolver: Resolver = system_resolve) -> Target:
    """Parse and resolve `url` once; raise Refused unless every address is public
    (any address goes with `allow_private`, for labs)."""
    if len(url) > 2048:
        raise Refused("The URL is too long (2,048 characters at most).")
    # A request line holds printable ASCII only: a space, a control character or a
    # letter such as é cannot be sent (percent-encode it; a name in its xn-- form).
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise Refused("Percent-encode spaces and non-ASCII characters in the URL (a host "
                      "name in its xn-- form).")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("This is not a valid URL.") from None
    if port == 0:
        raise Refused("Port 0 is not a port a server listens on.")
    if parts.scheme not in ("http", "https"):
        raise Refused("Use an http:// or https:// URL.")
    host = parts.hostname
    if not host:
        raise Refused("The URL has no host.")
    if parts.username or parts.password:
        raise Refused("Credentials in the URL are not allowed; they would be logged.")
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        addresses: tuple[IPAddress, ...] = (ipaddress.ip_address(host),)
    except ValueError:
        try:
            found = resolver(host, port)
            # Strip an IPv6 zone ("fe80::1%eth0"): the address itself decides.
            addresses = tuple(dict.fromkeys(ipaddress.ip_address(a.split("%")[0])
                                            for a in found))
        except (OSError, UnicodeError, ValueError) as exc:
            raise Refused(f"{host} could not be resolved ({exc}).", retry=True) from None
    if not addresses:
        raise Refused(f"{host} could not be resolved (no address).", retry=True)
    if not allow_private and not all(is_public(ip) for ip in addresses):
        raise Refused(
            f"{host} is a private, loopback or link-local address or is not globally "
            "routable; callbacks there are refused (an administrator can allow them "
            "with SMSOPS_ALLOW_PRIVATE_CALLBACKS)."
        )
    return Target(parts.scheme, host, port, path, addresses)


def check_callback_url(url: str, allow_private: bool = False,
                       resolver: Resolver = system_resolve) -> str | None:
    """None when acceptable now, else a plain reason (a failed lookup is refused)."""
    try:
        resolve_callback(url, allow_private, resolver)
    except Refused as exc:
        return exc.reason
    return None
