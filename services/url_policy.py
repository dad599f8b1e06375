"""Where the clip download may connect: http(s) to public addresses, or Segmind's own origin.

The clip's URL comes from Segmind's answer, and a CDN may redirect it; left unchecked, a
link to ``http://169.254.169.254/`` (a cloud's metadata service), to ``127.0.0.1`` or to a
LAN address would make the bot fetch from inside its host's network. So a URL, and every
redirect from it, is fetched only when

* its scheme is ``http`` or ``https``, and
* every address its host resolves to is public: not loopback, private, link-local,
  multicast, unspecified, reserved, shared (100.64/10) or otherwise not globally routable.
  An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, NAT64
  ``64:ff9b::/96``) is judged by the IPv4 address inside;
* or its origin (scheme, host and port) is exactly ``SEGMIND_BASE_URL``'s. The operator
  already sends the API key there, so it is trusted whatever it resolves to: this is what
  lets the simulator and the tests serve clips from ``127.0.0.1``. Only that origin: another
  port on the same address, or another name for it (``localhost``), is refused.

DNS rebinding: the host is resolved once per connection, by ``GuardedResolver`` inside the
connector, which refuses the whole answer if any address in it is not public; the
connection is then made to exactly the addresses checked. There is no earlier, separate
lookup whose answer could differ from the one connected to. An IP literal is never
resolved (aiohttp connects to it directly), so ``FetchPolicy.refusal`` checks it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")  # deprecated, yet still not public


class AddressRefused(OSError):
    """A host resolved to an address the download may not connect to.

    An OSError, so aiohttp reports it like any failed lookup (``ClientConnectorDNSError``,
    with this as its ``os_error``); the downloader tells the two apart.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is not one a download may reach ("loopback", ...); None when public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_problem(embedded)
        if address in _SITE_LOCAL:
            return "site-local"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "non-public"),
    )
    return next((name for matched, name in checks if matched), None)


def _with_article(problem: str) -> str:
    return f"{'an' if problem[0] in 'aeiou' else 'a'} {problem} address"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, when it is a way of reaching IPv4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _numeric_but_not_canonical(host: str) -> bool:
    """``127.1``, ``2130706433``, ``0x7f.0.0.1``: IPv4 in forms a resolver may still accept.

    As in the URL standard, a host whose last label is a number is an IPv4 address.
    """
    last = host.rstrip(".").rsplit(".", 1)[-1].lower()
    numeric = last.isdigit() or (last.startswith("0x") and all(c in _HEX for c in last[2:]))
    return numeric and _literal(host) is None


_HEX = frozenset("0123456789abcdef")


Origin = tuple[str, str, int | None]


def origin_of(url: URL) -> Origin:
    """Scheme, host and effective port, as the Segmind client compares them."""
    return ((url.scheme or "").lower(), (url.raw_host or "").lower(), url.port)


@dataclass(frozen=True)
class FetchPolicy:
    """Which URLs may be fetched; ``trusted`` is SEGMIND_BASE_URL's origin, if any."""

    trusted: Origin | None = None

    @classmethod
    def trusting(cls, base_url: str | None) -> FetchPolicy:
        """The policy that also trusts ``base_url``'s own origin (None: public addresses only)."""
        if not base_url:
            return cls()
        url = URL(base_url.strip())
        if url.scheme not in ALLOWED_SCHEMES or not url.host:
            raise ValueError("the trusted base URL must be an absolute http(s) URL")
        return cls(origin_of(url))

    def describe_trusted(self) -> str:
        if self.trusted is None:
            return "none"
        scheme, host, port = self.trusted
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"

    def trusts(self, url: URL) -> bool:
        return self.trusted is not None and origin_of(url) == self.trusted

    def trusts_host(self, host: str, port: int) -> bool:
        """Whether a connection to ``host:port`` is the trusted origin's (the scheme is
        checked per URL by ``refusal``; a resolver sees only host and port)."""
        return self.trusted is not None and (host.lower(), port) == self.trusted[1:]

    def refusal(self, url: URL) -> str | None:
        """Why ``url`` may not be fetched, before any lookup; None when it may be tried.

        A host name passes here: its addresses are checked when the connection resolves it.
        """
        if url.scheme not in ALLOWED_SCHEMES:
            return f"its scheme {url.scheme or '(none)'!r} is not http or https"
        if not url.host:
            return "it has no host"
        if self.trusts(url):
            return None
        if self.trusted is not None and origin_of(url)[1:] == self.trusted[1:]:
            # The resolver sees only host and port: the scheme is held to the origin here.
            return f"only {self.describe_trusted()} is trusted on {url.host}, not {url.scheme}"
        if _numeric_but_not_canonical(url.host):
            return f"{url.host} is an IPv4 address in a non-standard form"
        address = _literal(url.host)
        if address is not None:
            problem = address_problem(address)
            if problem is not None:
                return f"{url.host} is {_with_article(problem)}"
        return None


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner``, refusing any answer that holds a non-public address.

    The connector connects only to what this returns, so what was checked is what is
    connected to. Every address must pass, not just the first: a connection may try any.
    """

    def __init__(self, policy: FetchPolicy, inner: AbstractResolver | None = None) -> None:
        """``inner`` does the lookups (aiohttp's default resolver when None, closed with this)."""
        self._policy = policy
        self._owns_inner = inner is None
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        if self._policy.trusts_host(host, port):
            return answers
        for answer in answers:
            address = _literal(answer["host"].split("%", 1)[0])
            problem = "unreadable" if address is None else address_problem(address)
            if problem is not None:
                raise AddressRefused(
                    f"{host} resolves to {answer['host']}, {_with_article(problem)}"
                )
        return answers

    async def close(self) -> None:
        if self._owns_inner:
            await self._inner.close()
