"""Which addresses and URLs the clip download may reach; the resolver that checks every answer."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from services.url_policy import AddressRefused, FetchPolicy, GuardedResolver, address_problem


class HostsResolver(AbstractResolver):
    """Answers from a fixed table, like /etc/hosts: made-up names, no DNS. Records lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"{host}: no such host")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata services
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged by the IPv4 inside
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 around 169.254.169.254
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "private"),  # broadcast, in Python's private table
        ("240.0.0.1", "private"),  # reserved (class E), in Python's private table
        ("100.64.0.1", "non-public"),  # carrier-grade NAT: shared, not global
        ("192.0.2.1", "private"),  # documentation
        ("198.18.0.1", "private"),  # benchmarking
        ("fec0::1", "site-local"),
        ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated
        ("2001::1", "private"),  # Teredo
    ],
)
def test_non_public_addresses_are_named(address: str, problem: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::", "1.1.1.1"],
)
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


TRUSTED = FetchPolicy.trusting("http://127.0.0.1:8000/v1")


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://cdn.example.com/clip.mp4?sig=1", None),  # a name: checked when resolved
        ("http://8.8.8.8/clip.mp4", None),
        ("http://127.0.0.1:8000/files/a.mp4", None),  # SEGMIND_BASE_URL's own origin
        ("http://127.0.0.1:8001/files/a.mp4", "127.0.0.1 is a loopback address"),
        (
            "https://127.0.0.1:8000/files/a.mp4",
            "only http://127.0.0.1:8000 is trusted on 127.0.0.1, not https",
        ),
        ("http://10.0.0.1:8000/a.mp4", "10.0.0.1 is a private address"),
        ("http://[fe80::1]/a.mp4", "fe80::1 is a link-local address"),
        ("http://127.1/a.mp4", "127.1 is an IPv4 address in a non-standard form"),
        ("http://0x7f.0.0.1/a.mp4", "0x7f.0.0.1 is an IPv4 address in a non-standard form"),
        ("file:///etc/passwd", "its scheme 'file' is not http or https"),
        ("ftp://8.8.8.8/a.mp4", "its scheme 'ftp' is not http or https"),
    ],
)
def test_urls_are_refused_by_scheme_and_literal_address(url: str, refusal: str | None) -> None:
    assert TRUSTED.refusal(URL(url)) == refusal


def test_a_trusted_host_and_port_under_another_scheme_is_refused() -> None:
    policy = FetchPolicy.trusting("http://segmind.lan:9000")

    assert policy.refusal(URL("http://segmind.lan:9000/files/a.mp4")) is None
    assert policy.refusal(URL("https://segmind.lan:9000/files/a.mp4")) == (
        "only http://segmind.lan:9000 is trusted on segmind.lan, not https"
    )


def test_without_a_base_url_nothing_on_loopback_is_trusted() -> None:
    assert FetchPolicy.trusting(None).refusal(URL("http://127.0.0.1:8000/a.mp4")) is not None


def test_a_trusted_origin_includes_the_default_port() -> None:
    policy = FetchPolicy.trusting("https://10.0.0.5")

    assert policy.refusal(URL("https://10.0.0.5:443/a.mp4")) is None
    assert policy.refusal(URL("http://10.0.0.5/a.mp4")) is not None  # port 80, not 443
    assert policy.describe_trusted() == "https://10.0.0.5:443"


async def test_the_resolver_refuses_an_answer_with_any_non_public_address() -> None:
    """A name with one public and one private address: a connection could use either."""
    hosts = HostsResolver({"cdn.test": ["93.184.216.34", "10.0.0.7"]})
    resolver = GuardedResolver(FetchPolicy(), hosts)

    with pytest.raises(AddressRefused) as info:
        await resolver.resolve("cdn.test", 443)

    assert info.value.reason == "cdn.test resolves to 10.0.0.7, a private address"


@pytest.mark.parametrize("address", ["::1", "::ffff:169.254.169.254", "fd00::1"])
async def test_the_resolver_refuses_ipv6_answers_too(address: str) -> None:
    resolver = GuardedResolver(FetchPolicy(), HostsResolver({"cdn.test": [address]}))

    with pytest.raises(AddressRefused):
        await resolver.resolve("cdn.test", 443, socket.AF_INET6)


async def test_the_resolver_passes_public_answers_unchanged() -> None:
    hosts = HostsResolver({"cdn.test": ["93.184.216.34", "2606:2800:220:1::1"]})

    answers = await GuardedResolver(FetchPolicy(), hosts).resolve("cdn.test", 443)

    assert [answer["host"] for answer in answers] == ["93.184.216.34", "2606:2800:220:1::1"]


async def test_the_resolver_trusts_only_the_base_urls_own_host_and_port() -> None:
    hosts = HostsResolver({"segmind.lan": ["192.168.1.20"]})
    resolver = GuardedResolver(FetchPolicy.trusting("http://segmind.lan:9000"), hosts)

    assert [a["host"] for a in await resolver.resolve("segmind.lan", 9000)] == ["192.168.1.20"]
    with pytest.raises(AddressRefused):
        await resolver.resolve("segmind.lan", 9001)


async def test_the_resolver_resolves_every_time_it_is_asked() -> None:
    """No cache of its own: a later answer (a rebinding) is checked like the first."""
    hosts = HostsResolver({"cdn.test": ["93.184.216.34"]})
    resolver = GuardedResolver(FetchPolicy(), hosts)
    await resolver.resolve("cdn.test", 443)

    hosts.table["cdn.test"] = ["127.0.0.1"]
    with pytest.raises(AddressRefused):
        await resolver.resolve("cdn.test", 443)
    assert hosts.lookups == ["cdn.test", "cdn.test"]
