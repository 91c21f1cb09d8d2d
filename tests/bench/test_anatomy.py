"""bench.anatomy: py-spy collapsed stacks -> per-category samples (pure text; py-spy is not needed)."""

from __future__ import annotations

from pathlib import Path

from bench.anatomy import Frame, aggregate, categorize, parse_collapsed, parse_frame, read, table

SITE = "/w/.venv/lib/python3.11/site-packages"
LIB = "/py/lib/python3.11"
APP = "/w/wt"
LOOP_ROOT = f"_run_module_as_main (<frozen runpy>:198);Runner.run ({LIB}/asyncio/runners.py:118)"
GW = (
    f"{LOOP_ROOT};GatewayApp._ext ({APP}/api/gateway/app.py:151);"
    f"GatewayApp._handle ({APP}/api/gateway/app.py:250)"
)
GUEST_THREAD = (
    f"Thread._bootstrap ({LIB}/threading.py:1002);_worker ({LIB}/concurrent/futures/thread.py:83);"
    f"create_app.<locals>.run_sync ({APP}/runner/_app.py:160);Runtime.run ({APP}/runner/_engine.py:130)"
)


def stack(text: str) -> list[Frame]:
    return [parse_frame(f) for f in text.split(";")]


def test_frames_and_lines_parse_as_py_spy_writes_them() -> None:
    assert parse_frame(f"Store.__init__ ({SITE}/wasmtime/_store.py:22)") == Frame(
        "Store.__init__", f"{SITE}/wasmtime/_store.py"
    )
    assert parse_frame("epoll_pwait (/usr/lib/x86_64-linux-gnu/libc.so.6)").native
    assert not parse_frame("_run_code (<frozen runpy>:88)").native
    assert parse_frame('process 12:"python -m runner"') == Frame('process 12:"python -m runner"', "")
    lines = [f"{GW};authenticate ({APP}/api/auth.py:80) 7\n", "garbage\n", "\n", f"{LOOP_ROOT} 3"]
    parsed = list(parse_collapsed(lines))
    assert [count for _, count in parsed] == [7, 3]
    assert parsed[0][0][-1] == Frame("authenticate", f"{APP}/api/auth.py")


def test_the_leaf_most_claimed_frame_decides() -> None:
    assert categorize(stack(f"{GW};authenticate ({APP}/api/auth.py:80)")) == "auth"
    # json under the gateway's reply mapping is serialization, not the app frame above it
    mapping = f"{GW};map_runner_reply ({APP}/api/gateway/http.py:140);loads ({LIB}/json/__init__.py:346)"
    assert categorize(stack(mapping)) == "serialization"
    assert categorize(stack(GW)) == "app"
    assert categorize(stack(LOOP_ROOT)) == "loop"
    assert categorize(stack(f"{GW};frobnicate (/elsewhere/thing.py:1)")) == "app"
    assert categorize(stack("frobnicate (/elsewhere/thing.py:1)")) == "other"


def test_asyncio_streams_belong_to_whoever_called_them() -> None:
    write = f"StreamWriter.write ({LIB}/asyncio/streams.py:340)"
    hop = f"{GW};RunnerClient._roundtrip ({APP}/api/gateway/runner_client.py:175);{write}"
    limiter = f"{GW};RespClient.evalsha ({APP}/api/gateway/resp.py:90);{write}"
    assert categorize(stack(hop)) == "hop"
    assert categorize(stack(limiter)) == "limiter"
    assert categorize(stack(f"{LOOP_ROOT};{write}")) == "loop"


def test_wasmtime_calls_split_into_guest_instantiate_and_conversion() -> None:
    ffi = f"wasmtime_component_func_call ({SITE}/wasmtime/_bindings.py:3000)"
    call = f"{GUEST_THREAD};call_bounded ({APP}/runner/_adapter.py:205)"
    # the ctypes wrapper is transparent: the closure that calls into wasm is the guest's time
    assert categorize(stack(f"{call};enter_wasm ({SITE}/wasmtime/component/_enter.py:30)")) == "guest"
    assert (
        categorize(stack(f"{call};call_bounded.<locals>.run ({APP}/runner/_adapter.py:196);{ffi}")) == "guest"
    )
    lift = f"{call};RecordType.convert_from_c ({SITE}/wasmtime/component/_types.py:400)"
    assert categorize(stack(lift)) == "conversion"
    store = f"{GUEST_THREAD};Store.__init__ ({SITE}/wasmtime/_store.py:22)"
    assert (
        categorize(stack(store + f";wasmtime_store_new ({SITE}/wasmtime/_bindings.py:10)")) == "instantiate"
    )
    link = f"{GUEST_THREAD};Linker.instantiate ({SITE}/wasmtime/component/_linker.py:95)"
    assert categorize(stack(link)) == "instantiate"


def test_native_leaves_tell_waiting_from_running() -> None:
    blocked = (
        f"{GUEST_THREAD[: GUEST_THREAD.index(';create_app')]};PyThread_acquire_lock_timed (libpython3.11.so)"
    )
    assert categorize(stack(blocked + ";0x7f00 (/usr/lib/libc.so.6)")) == "idle"
    assert categorize(stack(f"{LOOP_ROOT};uv__io_poll (linux.c);epoll_pwait (/usr/lib/libc.so.6)")) == "idle"
    assert categorize(stack(f"{GW};take_gil (ceval_gil.c)")) == "gil"
    # a native frame that is not a wait is transparent: the Python caller decides
    send = f"{LOOP_ROOT};RequestResponseCycle.send ({SITE}/uvicorn/protocols/http/httptools_impl.py:500)"
    assert categorize(stack(f"{send};UVStream__try_write (loop.c);write (/usr/lib/libc.so.6)")) == "framework"
    assert categorize(stack("0x7f00 (/usr/lib/libc.so.6)")) == "other"


def test_aggregate_shares_leave_waiting_out_and_table_renders(tmp_path: Path) -> None:
    raw = tmp_path / "runner.txt"
    raw.write_text(
        f"{GW};authenticate ({APP}/api/auth.py:80) 30\n"
        f"{GW} 10\n"
        f"{LOOP_ROOT};uv__io_poll (linux.c);epoll_pwait (/usr/lib/libc.so.6) 60\n"
    )
    anatomy = read(raw)
    assert anatomy.total == 40  # running samples only
    assert anatomy.share("auth") == 0.75 and anatomy.share("app") == 0.25
    assert anatomy.share("idle") == 0.6  # of all samples
    assert anatomy.top("auth") == [("authenticate (api/auth.py)", 30)]
    same = aggregate(parse_collapsed(raw.read_text().splitlines()))
    assert same.samples == anatomy.samples
    text = table({"runner": anatomy}, cpu_us_per_request={"runner": 200.0})
    assert "| auth | 75.0% (150 µs) |" in text
    assert "| (idle, not CPU) | 60.0% of all |" in text
    assert "40 running samples, 200 µs CPU/req" in text
    assert "| framework |" not in text  # categories nobody sampled are left out
