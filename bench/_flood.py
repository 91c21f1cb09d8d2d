"""Load for bench/deadlines.py, in its own process: `python -m bench._flood URL TOKEN PATH CONNS SECONDS`.

`CONNS` raw HTTP/1.1 keep-alive connections call `GET PATH` back to back, retrying at once whatever
the answer, for `SECONDS` after all of them are open; the calls then in flight are abandoned. Prints
`ready` once the connections are open, then one JSON line of answer counts ("504 handler_timeout": n).
A separate, lightly importing process: the load neither delays the measuring client's event loop nor
starts seconds late on a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import Counter
from urllib.parse import urlsplit


class RawGet:
    """One keep-alive connection repeating one GET; `call()` gives "status" or "status error_code"."""

    def __init__(self, url: str, token: str, path: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.request = (
            f"GET {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\nauthorization: Bearer {token}\r\n\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def call(self) -> str:
        try:
            if self.writer is None:
                await self.open()
            assert self.reader is not None and self.writer is not None
            self.writer.write(self.request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1].decode()
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, StopIteration, ValueError):
            self.close()
            return "connection error"
        if status.startswith("2"):
            return status
        try:
            return f"{status} {json.loads(body)['error']}"
        except (ValueError, KeyError, TypeError):
            return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _main(url: str, token: str, path: str, conns: int, seconds: float) -> Counter[str]:
    clients = [RawGet(url, token, path) for _ in range(conns)]
    await asyncio.gather(*(c.open() for c in clients))
    print("ready", flush=True)
    statuses: Counter[str] = Counter()

    async def worker(client: RawGet) -> None:
        while True:
            statuses[await client.call()] += 1

    # At the end the calls in flight are abandoned: their connections close with the process.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await asyncio.gather(*(worker(c) for c in clients))
    return statuses


if __name__ == "__main__":
    url, token, path, conns, seconds = sys.argv[1:6]
    print(json.dumps(dict(asyncio.run(_main(url, token, path, int(conns), float(seconds))))), flush=True)
