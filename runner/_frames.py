"""The runner's framed listener (EXT_FRAME_PORT): the execute hop without HTTP (schema.runner_frames).

One thread per gateway connection, blocking sockets, and the guest runs on that same thread
(`Executor.run_here`): reading a frame, admission, the guest and writing the answer involve no event
loop and no hand-off between threads. docs/performance.md measured the runner's event loop and thread
hand-off as most of its CPU for a cheap guest; the HTTP port keeps them (uvicorn needs its loop).
Admission, deadlines, limits and answers are those of `POST /v1/execute`: both hops share one
`Executor` and one `Admission`, so at most EXT_THREADS guests run whichever hop brought them. A
connection thread beyond those waits in the admission queue (or is refused 503 runner_busy); an idle
connection's thread sleeps in `recv`. At most `max_connections` connections are served at once; one
more is closed at accept, before its handshake.

While a call runs, the connection is watched as the HTTP app watches its: the gateway sends nothing
while it waits (one call at a time), so a readable socket (EOF, a reset, or bytes) means it left or
broke the protocol; either way the call is abandoned (it leaves the queue, or its guest ends at its
next deadline check) and the connection is closed without an answer.
"""

from __future__ import annotations

import hmac
import os
import select
import socket
import threading
import time
from collections.abc import Callable

import structlog

from runner._execute import Answer
from runner._invocation import Cancel
from schema.runner_frames import (
    HELLO_OK,
    HELLO_REFUSED,
    MAC_BYTES,
    MAGIC,
    NONCE_BYTES,
    REQUEST_HEAD,
    answer_frame,
    handshake_mac,
)

log = structlog.get_logger(__name__)

RunHere = Callable[[bytes, Cancel], "Answer | None"]
_HANDSHAKE_S = 5.0
_ACCEPT_RETRY_S = 0.05
_GONE = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


class SocketWatch:
    """Whether a framed caller left mid-call: its socket became readable (it must send nothing while
    it waits). Once seen, it stays set: the connection is closed after the call."""

    __slots__ = ("_gone", "_poll")

    def __init__(self, sock: socket.socket) -> None:
        self._poll = select.poll()
        self._poll.register(sock, _GONE)
        self._gone = False

    def is_set(self) -> bool:
        if not self._gone and self._poll.poll(0):
            self._gone = True
        return self._gone


class FrameServer:
    def __init__(
        self,
        run: RunHere,
        *,
        auth: bytes,
        max_envelope: int,
        idle_s: float,
        oversize: bytes,
        max_connections: int,
    ) -> None:
        self._run = run
        self._auth = auth
        self._max_envelope = max_envelope
        self._idle_s = idle_s
        self._oversize = oversize  # the 400 answer body for an envelope over max_envelope
        self._max_connections = max_connections
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}
        self._closing = threading.Event()
        self._served = 0

    def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (port 0 picks a free one)."""
        listener = socket.create_server((host, port), backlog=1024)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name="frame-accept", daemon=True)
        self._acceptor.start()
        bound: int = listener.getsockname()[1]
        log.info("frame_listener_started", host=host, port=bound)
        return bound

    def close(self, *, join_s: float) -> None:
        """Stop accepting, end every connection (a running call is abandoned: its caller's socket is
        shut), and wait up to `join_s` for their threads."""
        self._closing.set()
        if self._listener is not None:
            _shut(self._listener)  # wakes accept()
            self._listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=join_s)
        with self._lock:
            open_now = list(self._open.items())
        for conn, _thread in open_now:
            _shut(conn)
        for _conn, thread in open_now:
            thread.join(timeout=join_s)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                conn, _addr = self._listener.accept()
            except OSError:
                if self._closing.is_set():
                    return
                time.sleep(_ACCEPT_RETRY_S)  # e.g. EMFILE: keep serving once descriptors free up
                continue
            with self._lock:
                full = len(self._open) >= self._max_connections
                if not full:
                    self._served += 1
                    thread = threading.Thread(
                        target=self._serve, args=(conn,), name=f"frame-{self._served}", daemon=True
                    )
                    self._open[conn] = thread
            if full:
                log.warning("frame_connection_refused", reason="max_connections", limit=self._max_connections)
                conn.close()
                continue
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._hello(conn):
                self._calls(conn)
        except OSError:
            pass  # the gateway went away (or the runner is stopping); nothing to answer
        except Exception:
            # A runner bug: logged (frames and message, no locals); the gateway sees the connection
            # close without an answer (502), as for any call whose answer never came.
            log.exception("frame_connection_failed")
        finally:
            with self._lock:
                self._open.pop(conn, None)
            conn.close()

    def _hello(self, conn: socket.socket) -> bool:
        nonce = os.urandom(NONCE_BYTES)
        conn.settimeout(_HANDSHAKE_S)
        conn.sendall(MAGIC + nonce)
        mac = _recv_exactly(conn, MAC_BYTES)
        if mac is None:
            return False
        if not hmac.compare_digest(mac, handshake_mac(self._auth, nonce)):
            log.warning("frame_handshake_refused")
            conn.sendall(HELLO_REFUSED)
            return False
        conn.sendall(HELLO_OK)
        return True

    def _calls(self, conn: socket.socket) -> None:
        watch = SocketWatch(conn)
        # One timeout for every wait on the gateway: between calls (keep-alive), for the rest of a
        # frame once its head came, and for the gateway to take an answer.
        conn.settimeout(self._idle_s)
        while not self._closing.is_set():
            head = _recv_exactly(conn, REQUEST_HEAD.size)
            if head is None:
                return  # idle past the keep-alive, or the gateway closed between calls
            (length,) = REQUEST_HEAD.unpack(head)
            if length > self._max_envelope:
                # The body is not read: the stream position is lost, so answer and close.
                conn.sendall(answer_frame(400, self._oversize))
                return
            raw = _recv_exactly(conn, length)
            if raw is None:
                return
            answer = self._run(raw, watch)
            if answer is None:
                return  # EOF (abandoned) or bytes sent mid-call (protocol error): no answer
            conn.sendall(answer_frame(*answer))


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None at EOF or timeout."""
    try:
        data = conn.recv(size)
        if len(data) == size:
            return data
        parts, got = [data], len(data)
        while data and got < size:
            data = conn.recv(size - got)
            parts.append(data)
            got += len(data)
    except TimeoutError:
        return None
    return b"".join(parts) if got == size else None


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by its peer
