"""The address guard: is a host something the server may be made to call?

HTTP tools and provider `base_url`s are written by API users, so the worker must not be
turned into a proxy for the private network it sits in. A host passes when every address
it resolves to is public. IPv6 transition addresses carry an IPv4 address inside them
(6to4, IPv4-mapped, IPv4-compatible, NAT64) or tunnel to one we cannot see (Teredo); they
are judged by what they lead to, or refused outright.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

from .errors import ToolError

logger = logging.getLogger("agents.tools")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Networks that route onwards to an address the guard cannot check, or that are
# local-use by definition; refused whatever they embed.
_REFUSED_V6 = (
    ipaddress.ip_network("2001::/32"),  # Teredo: the client address is obfuscated, the relay is anywhere
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215)
    ipaddress.ip_network("fec0::/10"),  # site-local (deprecated, still routed by some stacks)
    ipaddress.ip_network("fc00::/7"),  # unique local
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052)
_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible addresses


class AddressNotAllowed(ToolError):
    pass


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address leads to, if it is one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _V4_COMPATIBLE and int(ip) > 1):  # ::/96 minus :: and ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public_plain(ip: IPAddress) -> bool:
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def is_public_address(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None or ip.is_site_local or any(ip in net for net in _REFUSED_V6):
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            if not _is_public_plain(inner):
                return False
            if ip.ipv4_mapped is not None:
                return True  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
    return _is_public_plain(ip)


def _checked(host: str, ips: list[IPAddress], *, allow_private: bool, what: str) -> str:
    if not ips:
        raise ToolError(f"the {what}'s host name does not resolve")
    if not allow_private:
        bad = [str(ip) for ip in ips if not is_public_address(ip)]
        if bad:
            logger.warning("%s refused: %s resolves to non-public address(es) %s", what, host, bad)
            raise AddressNotAllowed(f"the {what}'s address is not allowed (private, loopback or link-local)")
    return str(ips[0])


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _unique(infos: list[tuple]) -> list[IPAddress]:  # type: ignore[type-arg]
    ips: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in ips:
            ips.append(ip)
    return ips


async def resolve_checked(host: str, port: int, *, allow_private: bool, what: str = "tool") -> str:
    """Resolve `host` and return an address to connect to; refuse non-public ones.

    Every address the name resolves to must pass: a name with one public and one
    private record is refused.
    """
    literal = _literal(host)
    if literal is not None:
        return _checked(host, [literal], allow_private=allow_private, what=what)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ToolError(f"the {what}'s host name does not resolve") from None
    return _checked(host, _unique(infos), allow_private=allow_private, what=what)


def resolve_checked_sync(host: str, port: int, *, allow_private: bool, what: str = "tool") -> str:
    """`resolve_checked` for synchronous callers (building a session's providers)."""
    literal = _literal(host)
    if literal is not None:
        return _checked(host, [literal], allow_private=allow_private, what=what)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ToolError(f"the {what}'s host name does not resolve") from None
    return _checked(host, _unique(infos), allow_private=allow_private, what=what)
