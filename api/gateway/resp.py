"""A minimal Redis (RESP2) client for the hot path: EVALSHA of the rate-limit script, and SET NX (the
one-time redemption of UI tickets).

Why not redis-py here: measured on this machine, one EVALSHA through redis.asyncio cost ~210 µs of CPU
and ~600 µs wall; the same command as one pre-encoded write and three line reads costs ~65 µs CPU and
~260 µs wall (bench/gateway.py context; the numbers are in the gateway report). redis-py stays in use
for everything else (the pub/sub listener, tests).

Connections are pooled LIFO. A pooled connection that fails before any reply byte is retried once on a
fresh one (the server dropped it while idle; the command never ran). `NOSCRIPT` loads the script and
retries. Supports `redis://[user:password@]host[:port][/db]`, `rediss://` (TLS) and
`unix:///path/to.sock[?db=N]`. Every failure is a `RespError`; callers map it (the limiter fails closed).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from urllib.parse import parse_qs, unquote, urlsplit


class RespError(Exception):
    """Redis unreachable, timed out, or answered with an error or something unexpected."""


class _Stale(Exception):
    pass


def _command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class RespClient:
    def __init__(
        self, url: str, *, timeout_s: float, max_connections: int = 32, client_name: str = ""
    ) -> None:
        parts = urlsplit(url)
        self._timeout = timeout_s
        self._unix: str | None = None
        self._ssl: ssl.SSLContext | None = None
        db = parts.path.strip("/") if parts.scheme in ("redis", "rediss") else ""
        if parts.scheme == "unix":
            self._unix = parts.path
            db = parse_qs(parts.query).get("db", [""])[0]
        elif parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
        if parts.scheme == "rediss":
            self._ssl = ssl.create_default_context()
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        hello: list[bytes] = []
        if parts.password is not None:
            user = [unquote(parts.username).encode()] if parts.username else []
            hello.append(_command(b"AUTH", *user, unquote(parts.password).encode()))
        if db and db != "0":
            hello.append(_command(b"SELECT", db.encode()))
        if client_name:  # shows in CLIENT LIST: which process holds which connection
            hello.append(_command(b"CLIENT", b"SETNAME", client_name.encode()))
        self._hello = hello
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def evalsha(self, script: str, keys: list[str], args: list[str]) -> list[int]:
        """Run `script` by its sha (loading it when Redis does not know it); an integer-array reply."""
        sha = hashlib.sha1(script.encode()).hexdigest().encode()
        body = [b"%d" % len(keys), *(k.encode() for k in keys), *(a.encode() for a in args)]
        try:
            async with asyncio.timeout(self._timeout), self._slots:
                reply = await self._call(_command(b"EVALSHA", sha, *body))
                if isinstance(reply, RespError) and str(reply).startswith("NOSCRIPT"):
                    await self._call(_command(b"SCRIPT", b"LOAD", script.encode()))
                    reply = await self._call(_command(b"EVALSHA", sha, *body))
        except TimeoutError:
            raise RespError(f"redis did not answer within {self._timeout:.3f}s") from None
        if isinstance(reply, RespError):
            raise reply
        if not isinstance(reply, list) or not all(isinstance(v, int) for v in reply):
            raise RespError("unexpected reply to EVALSHA")
        return reply

    async def set_nx(self, key: str, ttl_ms: int) -> bool:
        """`SET key 1 NX PX ttl_ms`: True when this call created the key, False when it existed."""
        try:
            async with asyncio.timeout(self._timeout), self._slots:
                reply = await self._call(_command(b"SET", key.encode(), b"1", b"NX", b"PX", b"%d" % ttl_ms))
        except TimeoutError:
            raise RespError(f"redis did not answer within {self._timeout:.3f}s") from None
        if isinstance(reply, RespError):
            raise reply
        if reply not in (b"OK", None):
            raise RespError("unexpected reply to SET NX")
        return reply == b"OK"

    async def _call(self, payload: bytes) -> object:
        if self._idle:
            try:
                return await self._roundtrip(self._idle.pop(), payload)
            except _Stale:
                pass
        try:
            return await self._roundtrip(await self._connect(), payload)
        except _Stale as exc:
            raise RespError("redis closed the connection") from exc

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if self._unix is not None:
                reader, writer = await asyncio.open_unix_connection(self._unix)
            else:
                reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._ssl)
        except OSError as exc:
            raise RespError(f"redis unreachable: {type(exc).__name__}") from exc
        try:
            for command in self._hello:
                writer.write(command)
                reply = await _read(reader)
                if isinstance(reply, RespError):
                    raise reply
        except BaseException as exc:
            writer.close()
            if isinstance(exc, (ConnectionError, OSError)):
                raise RespError(f"redis connection failed: {type(exc).__name__}") from exc
            raise
        return reader, writer

    async def _roundtrip(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], payload: bytes
    ) -> object:
        reader, writer = conn
        first = b""
        try:
            writer.write(payload)
            first = await reader.readline()
            if not first:
                raise _Stale()
            reply = await _read(reader, first)
        except (ConnectionError, OSError, _Stale) as exc:
            writer.close()
            if not first:
                raise _Stale() from exc  # nothing came back: the command did not run here
            raise RespError(f"redis connection failed: {type(exc).__name__}") from exc
        except BaseException:
            writer.close()  # cancelled or a protocol error mid-reply: never reuse this stream
            raise
        self._idle.append(conn)
        return reply

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


async def _read(reader: asyncio.StreamReader, line: bytes | None = None) -> object:
    """One RESP2 reply: integers, simple/bulk strings (bytes), arrays, errors (as RespError values)."""
    line = line if line is not None else await reader.readline()
    if not line.endswith(b"\r\n"):
        raise RespError("redis closed the connection mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b":":
        return int(rest)
    if kind == b"+":
        return rest
    if kind == b"-":
        return RespError(rest.decode("utf-8", "replace"))
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else (await reader.readexactly(n + 2))[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [await _read(reader) for _ in range(n)]
    raise RespError(f"unexpected RESP reply type {kind!r}")
