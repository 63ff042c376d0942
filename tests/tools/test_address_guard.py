from __future__ import annotations

import ipaddress

import pytest

from runtime.tool_types import ToolCall, ToolInvocation
from agents.tools.executor import ToolExecutor
from agents.tools.http import AddressNotAllowed, HttpTool, is_public_address, resolve_checked


def tool(url: str, **kw) -> HttpTool:
    return HttpTool(name="guarded", description="Guarded.", url=url, timeout_ms=2000, **kw)


async def call(t: HttpTool):
    return await ToolExecutor([t]).execute(
        ToolCall("c1", t.name, "{}"), ToolInvocation(session=None, speech_handle=None)
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1"])
async def test_private_and_loopback_addresses_are_refused_by_default(host: str, settings) -> None:
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(AddressNotAllowed):
        await resolve_checked(host, 80, allow_private=False)
    result = await call(tool(f"http://{host}:9/"))
    assert result.error_kind == "tool_error" and "not allowed" in result.output


async def test_names_are_checked_after_dns_resolution(settings) -> None:
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = False
    result = await call(tool("http://localhost:9/"))
    assert "not allowed" in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1"])
async def test_the_setting_allows_private_addresses(host: str) -> None:
    assert await resolve_checked(host, 80, allow_private=True) == host


async def test_the_setting_lets_a_loopback_tool_through(tool_server, settings) -> None:
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = True
    result = await call(tool(tool_server.url + "/text"))
    assert (result.output, result.error_kind) == ("plain answer", None)


@pytest.mark.parametrize(
    "ip, public",
    [
        ("169.254.169.254", False),  # link-local (cloud metadata)
        ("fe80::1", False),
        ("::1", False),
        ("::ffff:10.0.0.1", False),  # IPv4-mapped private
        ("0.0.0.0", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("192.168.1.10", False),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_which_addresses_count_as_public(ip: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(ip)) is public


@pytest.mark.parametrize(
    "ip, public",
    [
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1 (issue 12, finding 12)
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("2002:a9fe:a9fe::", False),  # 6to4 of 169.254.169.254 (cloud metadata)
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8: a public relay target
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo: tunnels to an address we cannot see
        ("2001::1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b:1::a00:1", False),  # local-use NAT64
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::a00:1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:8.8.8.8", True),
        ("fc00::1", False),  # unique local
        ("fd12:3456:789a::1", False),
        ("fec0::1", False),  # site-local
        ("fe80::1", False),  # link-local
        ("ff02::1", False),  # multicast
    ],
)
def test_ipv6_transition_addresses_are_judged_by_what_they_lead_to(ip: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(ip)) is public


async def test_a_6to4_loopback_url_is_refused_by_the_tool(settings) -> None:
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = False
    result = await call(tool("http://[2002:7f00:1::]:9/"))
    assert result.error_kind == "tool_error" and "not allowed" in result.output
