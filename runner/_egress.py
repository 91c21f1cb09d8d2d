"""Outbound HTTP for guests (`cap:http.fetch`), deny by default.

A request may leave only if all of these hold, checked again on every redirect hop:

* the URL is http(s) with a host; plain http only when the operator enabled it (dev/test only);
* the host matches the manifest's egress list AND the operator's `egress_allow` (exact host, `*.domain`
  for its subdomains, or `*` on the operator side for "whatever the manifest lists");
* every address the host resolves to is public (or inside `egress_allow_cidrs`); loopback, private,
  link-local, multicast, reserved and cloud metadata addresses are refused;
* the connection goes to the address that was checked (the URL is rewritten to the IP, with the
  `Host` header and TLS SNI set to the name), so DNS cannot change the answer between check and use.

The response body is read up to a cap. Everything a fetch waits on, name resolution and every redirect
hop included, shares one budget: the execution's remaining deadline (capped by the operator timeout).
`getaddrinfo` has no timeout of its own and cannot be interrupted, so it runs on a small resolver pool
and the fetch stops waiting for it when the budget is spent; a hung DNS server costs a resolver thread,
never a guest's deadline. httpx's timeouts are per socket operation, so an upstream that drips a byte
at a time would never trip them: every connect, TLS handshake, write and read of a fetch gets at most
the time left before the fetch's deadline (runner/_egress_transport.py, under httpcore's connection pool).

Redirects: a hop to another origin (scheme, host or port) carries only headers that cannot hold
credentials (`_CROSS_ORIGIN_HEADERS`); Authorization, Cookie, API-key headers and the like stay with
the origin the guest sent them to. A 307/308 to another origin is not followed when the request has a
body (it would re-send the body there): the guest gets the redirect response and decides. No cookie
jar: a Set-Cookie from one guest's upstream never rides along on another guest's request.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin

import httpx

from runner._egress_transport import DeadlineBackend, DeadlineTransport

_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DROP_REQUEST_HEADERS = frozenset(
    {"host", "connection", "content-length", "transfer-encoding", "upgrade", "proxy-authorization", "te"}
)
# Request headers a hop to another origin keeps: content negotiation only, nothing that authenticates.
_CROSS_ORIGIN_HEADERS = frozenset(
    {"accept", "accept-encoding", "accept-language", "content-language", "content-type", "user-agent"}
)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# socket.getaddrinfo's shape, replaceable in tests by a resolver that hangs.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]
RESOLVER_THREADS = 8
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressError(Exception):
    """A fetch failed; `case` is the WIT `http-error` case (invalid-url, not-allowed, timeout, ...)."""

    def __init__(self, case: str, message: str = "") -> None:
        super().__init__(message or case)
        self.case = case
        self.message = message


@dataclass(frozen=True, kw_only=True)
class EgressPolicy:
    operator_allow: tuple[str, ...]
    allow_http: bool
    allow_private: bool
    allow_cidrs: tuple[IpNetwork, ...]
    resolve: dict[str, str]
    timeout_s: float
    max_response_bytes: int
    max_redirects: int


@dataclass(frozen=True, kw_only=True)
class FetchResult:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def host_matches(host: str, pattern: str) -> bool:
    """`api.x.com` matches `api.x.com`; `*.x.com` matches `a.x.com` and `a.b.x.com`, not `x.com`."""
    pattern = pattern.strip().lower()
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _plain(ip: IpAddress) -> IpAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_refusal(ip: IpAddress, policy: EgressPolicy) -> str | None:
    """Why connecting to `ip` is refused, or None when it is allowed."""
    ip = _plain(ip)
    if ip in _METADATA:
        return "a cloud metadata address"
    if any(ip in net for net in policy.allow_cidrs):
        return None
    if policy.allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified or not ip.is_global:
        return "a private or reserved address"
    return None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, (url.host or "").lower(), url.port or {"https": 443, "http": 80}.get(url.scheme))


class EgressClient:
    """One per runner process; `fetch` runs on executor threads (httpx.Client is thread-safe)."""

    def __init__(self, policy: EgressPolicy, *, resolver: Resolver = socket.getaddrinfo) -> None:
        self.policy = policy
        self._getaddrinfo = resolver
        # Bounded: lookups stuck on a dead DNS server hold at most these threads; later ones queue and
        # time out with their fetch instead of piling up threads.
        self._resolvers = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="egress-resolve")
        self._backend = DeadlineBackend()
        # A jar that accepts no cookie: this client serves every guest of the process.
        self._client = httpx.Client(
            transport=DeadlineTransport(self._backend),
            follow_redirects=False,
            trust_env=False,
            timeout=policy.timeout_s,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    def close(self) -> None:
        self._client.close()
        self._resolvers.shutdown(wait=False, cancel_futures=True)

    def _resolve(self, host: str, port: int, timeout_s: float) -> list[IpAddress]:
        fixed = self.policy.resolve.get(host)
        if fixed is not None:
            return [ipaddress.ip_address(fixed)]
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        lookup = self._resolvers.submit(self._getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = lookup.result(timeout=max(timeout_s, 0.0))
        except FutureTimeout:
            lookup.cancel()  # still queued: never runs; already running: finishes unobserved
            raise EgressError("timeout", f"resolving {host} took longer than the time left") from None
        except OSError as exc:
            raise EgressError("transport", f"cannot resolve {host}: {exc.strerror or exc}") from None
        return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))

    def _check(
        self, url: httpx.URL, egress: list[str], timeout_s: float | None = None
    ) -> tuple[str, IpAddress]:
        if url.scheme not in ("http", "https") or not url.host:
            raise EgressError("invalid-url", "only absolute http(s) URLs with a host")
        if url.scheme == "http" and not self.policy.allow_http:
            raise EgressError("not-allowed", "plain http is not allowed; use https")
        host = url.host.lower().rstrip(".")
        if not any(host_matches(host, p) for p in egress):
            raise EgressError("not-allowed", f"{host} is not in the extension's egress list")
        if not any(host_matches(host, p) for p in self.policy.operator_allow):
            raise EgressError("not-allowed", f"{host} is not allowed by operator policy")
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = self._resolve(host, port, self.policy.timeout_s if timeout_s is None else timeout_s)
        if not addresses:
            raise EgressError("transport", f"{host} has no address")
        for ip in addresses:
            reason = address_refusal(ip, self.policy)
            if reason is not None:
                raise EgressError("not-allowed", f"{host} resolves to {reason}")
        return host, addresses[0]

    def fetch(
        self,
        *,
        egress: list[str],
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout_s: float,
    ) -> FetchResult:
        """Perform one guest fetch under the policy; raises EgressError with the WIT error case."""
        if timeout_s <= 0:
            raise EgressError("timeout", "no time left before the deadline")
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise EgressError("invalid-url", str(exc)) from None
        send_headers = [(k, v) for k, v in headers if k.lower() not in _DROP_REQUEST_HEADERS]
        deadline = time.monotonic() + timeout_s  # one budget for every lookup and hop of this fetch
        for _hop in range(self.policy.max_redirects + 1):
            host, ip = self._check(target, egress, _left(deadline))
            left = _left(deadline)
            if left <= 0:
                raise EgressError("timeout", "no time left before the deadline")
            result = self._send(target, host, ip, method, send_headers, body, left)
            location = {k.lower(): v for k, v in result.headers}.get("location")
            if result.status not in _REDIRECTS or not location:
                return result
            try:
                nxt = httpx.URL(urljoin(str(target), location))
            except (httpx.InvalidURL, ValueError) as exc:
                raise EgressError("invalid-url", f"bad redirect location: {exc}") from None
            if result.status == 303 or (result.status in (301, 302) and method.upper() == "POST"):
                method, body = "GET", b""
            if _origin(nxt) != _origin(target):
                if body:  # a 307/308 keeps its body: sending it to another origin is the guest's call
                    return result
                send_headers = [(k, v) for k, v in send_headers if k.lower() in _CROSS_ORIGIN_HEADERS]
            target = nxt
        raise EgressError("not-allowed", f"more than {self.policy.max_redirects} redirects")

    def _send(
        self,
        url: httpx.URL,
        host: str,
        ip: IpAddress,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout_s: float,
    ) -> FetchResult:
        host_header = host if url.port is None else f"{host}:{url.port}"
        pinned = url.copy_with(host=str(ip))
        limit = self.policy.max_response_bytes
        try:
            # One request may take the operator's timeout at most, and never past the fetch's deadline.
            hop_deadline = time.monotonic() + min(timeout_s, self.policy.timeout_s)
            with (
                self._backend.deadline(hop_deadline),
                self._client.stream(
                    method.upper(),
                    pinned,
                    headers=[*headers, ("host", host_header)],
                    content=body or None,
                    timeout=min(timeout_s, self.policy.timeout_s),
                    extensions={"sni_hostname": host},
                ) as resp,
            ):
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():  # decoded: the cap bounds what the guest gets
                    size += len(chunk)
                    if size > limit:
                        raise EgressError("too-large", f"response body exceeds {limit} bytes")
                    chunks.append(chunk)
                return FetchResult(
                    status=resp.status_code,
                    headers=[
                        (k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in resp.headers.raw
                        if k.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
                    ],
                    body=b"".join(chunks),
                )
        except httpx.TimeoutException:
            raise EgressError("timeout", "the upstream did not answer in time") from None
        except httpx.HTTPError as exc:
            raise EgressError("transport", f"{type(exc).__name__}: {exc}"[:300]) from None


def _left(deadline: float) -> float:
    return deadline - time.monotonic()
