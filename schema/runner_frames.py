"""The framed gateway → runner hop (`frame://host:port` in EXT_RUNNER_URL, EXT_FRAME_PORT on the runner).

Why a second protocol beside `POST /v1/execute`: the profile in docs/performance.md put ~55–60 % of
the runner's CPU for a cheap guest in its HTTP server (uvicorn + Starlette + their event-loop work),
not in the guest. The hop has one peer and one request shape, so it needs no HTTP: a frame is a
fixed binary head and the same JSON envelope / answer bytes as the HTTP body.

    connect      runner → gateway   MAGIC (4) + nonce (16 random bytes)
                 gateway → runner   HMAC-SHA256(EXT_RUNNER_AUTH, MAGIC + nonce)  (32)
                 runner → gateway   one byte: HELLO_OK, or HELLO_REFUSED and the runner closes
    request      gateway → runner   u32 big-endian length + ExecuteRequest JSON
    answer       runner → gateway   u16 HTTP-like status + u32 length + ExecuteResponse JSON

The status codes and answer bodies are exactly those of `POST /v1/execute` (schema.envelope), so the
gateway maps both hops with one function. One call at a time per connection (no pipelining): a
request sent while another is running is a protocol error and closes the connection. A gateway that
closes the connection mid-call abandons the call, as with HTTP. The challenge makes the shared secret
never travel, and a recorded handshake useless on another connection.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

MAGIC = b"EXF1"
NONCE_BYTES = 16
MAC_BYTES = 32
HELLO_OK = b"\x00"
HELLO_REFUSED = b"\x01"
REQUEST_HEAD = struct.Struct(">I")
ANSWER_HEAD = struct.Struct(">HI")


def handshake_mac(secret: bytes, nonce: bytes) -> bytes:
    """What the gateway answers to the runner's challenge `nonce`."""
    return hmac.new(secret, MAGIC + nonce, hashlib.sha256).digest()


def request_frame(envelope: bytes) -> bytes:
    return REQUEST_HEAD.pack(len(envelope)) + envelope


def answer_frame(status: int, body: bytes) -> bytes:
    return ANSWER_HEAD.pack(status, len(body)) + body
