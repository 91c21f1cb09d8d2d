"""Service-free checks of the debug sink and the event encoding shared by runner and gateway."""

from __future__ import annotations

import time

from api.gateway.debug_stream import Viewer, decode, sse_frame
from runner._debug import DebugEvent
from runner._debug_redis import RedisDebugSink, encode, stream_key


def _event(i: int, **over: object) -> DebugEvent:
    values: dict[str, object] = {
        "ts": 1700000000.5 + i,
        "level": "info",
        "stream": "log",
        "tenant": "t-1",
        "extension": "com.acme.x",
        "install_id": "inst",
        "request_id": f"req-{i}",
        "version": "1.0.0",
        "content_hash": "sha256:" + "0" * 64,
        "message": f"m{i} ü",
        "truncated": False,
    }
    values.update(over)
    return DebugEvent(**values)  # type: ignore[arg-type]


def test_emit_never_blocks_and_drops_oldest_when_full() -> None:
    sink = RedisDebugSink("redis://127.0.0.1:1/0", buffer_events=3)  # never started: nothing drains
    started = time.perf_counter()
    for i in range(5):
        sink.emit(_event(i))
    assert time.perf_counter() - started < 0.5
    assert (sink.buffered(), sink.dropped) == (3, 2)
    assert [e.request_id for e in sink._buffer] == ["req-2", "req-3", "req-4"]
    sink.close()
    assert (sink.buffered(), sink.dropped, sink.published) == (0, 5, 0)


def test_entry_round_trip_and_key() -> None:
    event = _event(7, truncated=True, stream="stderr")
    fields = {k.encode(): v.encode() for k, v in encode(event).items()}
    doc = decode(b"1700000000000-3", fields)
    assert doc == {
        "id": "1700000000000-3",
        "ts": 1700000007.5,
        "level": "info",
        "stream": "stderr",
        "tenant": "t-1",
        "extension": "com.acme.x",
        "install_id": "inst",
        "request_id": "req-7",
        "version": "1.0.0",
        "content_hash": "sha256:" + "0" * 64,
        "message": "m7 ü",
        "truncated": True,
    }
    assert stream_key("ext-debug:", "t-1", "com.acme.x") == "ext-debug:t-1:com.acme.x"
    frame = sse_frame({"a": 1}, event="warning", entry_id="1-0").decode()
    assert frame == 'id: 1-0\nevent: warning\ndata: {"a":1}\n\n'


def test_viewer_matches_only_its_tenant_extension_and_filters() -> None:
    from api.auth import Principal
    from api.gateway.auth import Caller

    caller = Caller(
        Principal(subject="token:x", scopes=frozenset({"ext:debug"}), tenant_id="t-1"), "t-1", False
    )
    base = {"tenant": "t-1", "extension": "com.acme.x", "install_id": "INST-1", "request_id": "Req-9"}
    viewer = Viewer(
        caller=caller,
        extension="com.acme.x",
        install_id="inst-1",
        key="ext-debug:t-1:com.acme.x",
        install_filter=None,
        request_filter=None,
        tail=10,
    )
    assert viewer.matches(base)
    assert not viewer.matches({**base, "tenant": "t-2"})
    assert not viewer.matches({**base, "extension": "com.acme.y"})
    filtered = Viewer(
        caller=caller,
        extension="com.acme.x",
        install_id="inst-1",
        key="k",
        install_filter="inst-1",
        request_filter="req-9",
        tail=10,
    )
    assert filtered.matches(base)  # filters compare case-insensitively
    assert not filtered.matches({**base, "request_id": "req-8"})
    assert filtered.filters == {"tail": 10, "install": "inst-1", "request": "req-9"}
