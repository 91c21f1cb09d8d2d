"""schemathesis against the running operator API: its `/openapi.json` must describe what it answers.

The API is served by uvicorn in a thread of its own, with a real in-process worker (every control-plane
workflow), on a database of its own cloned from the migrated template, so nothing here is mocked.
schemathesis loads the document over HTTP and runs every check it has (`--checks all`: status codes,
content types, response schemas and headers, negative data rejected, positive data accepted, missing
headers, unsupported methods and their `Allow`, ignored auth, ...) on a few examples per operation, with
a fixed seed and no example database, so a run is the same every time.

Exclusions, each with its reason, are `OPERATIONS` and the text generation settings in `CONFIG` below;
everything else must pass as it is.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import schemathesis
import uvicorn

from api.operator.app import create_app
from core.codec import data_converter
from core.crypto import Keyring
from core.db import create_pool
from core.temporal import connect_temporal
from tests.api.conftest import ADMIN_TOKEN, control_workers, keyring, make_settings  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

MAX_EXAMPLES = 12
SEED = 20261202

# Positive data the schema cannot tell from bad: the API checks it semantically and answers 400.
_SEMANTIC_400 = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
OPERATIONS: list[dict[str, Any]] = [
    {
        # The content hash is needed in x-content-hash or ?content_hash= (one of two, which OpenAPI
        # parameters cannot say), the body must hash to it and the signature document must verify:
        # no schema can say which bytes those are.
        "include-path": "/v1/bundles",
        "checks": {"positive_data_acceptance": {"expected-statuses": _SEMANTIC_400}},
    },
    {
        # public_key_pem must parse as an Ed25519 public key (a string schema cannot say so).
        "include-path": "/v1/trust/keys",
        "include-method": "POST",
        "checks": {"positive_data_acceptance": {"expected-statuses": _SEMANTIC_400}},
    },
]


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class ServedApi:
    """The operator API and a worker on one event loop in a thread; `url` once both are up."""

    def __init__(self, *, db_url: str, temporal_address: str, redis_url: str, root: Path, keys: Keyring):
        master = ",".join(f"{v}:{base64.b64encode(k).decode()}" for v, k in keys.keys.items())
        self.task_queue = f"test-{uuid.uuid4().hex}"
        self.db_url = db_url
        self.temporal_address = temporal_address
        self.redis_url = redis_url
        self.data_dir = root / "data"
        self.keys = keys
        self.settings = make_settings(
            database_url=db_url,
            temporal_address=temporal_address,
            control_task_queue=self.task_queue,
            data_dir=self.data_dir,
            master_keys=master,
            wait_seconds=20.0,
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(self.settings), log_config=None, access_log=False, lifespan="on")
        )
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _main(self) -> None:
        pool = await create_pool(self.db_url, min_size=1, max_size=5)
        try:
            client = await connect_temporal(self.temporal_address, data_converter=data_converter(self.keys))
            async with control_workers(
                client,
                self.task_queue,
                pool=pool,
                data_dir=self.data_dir,
                redis_url=self.redis_url,
                keyring=self.keys,
            ):
                await self.server.serve(sockets=[self.sock])
        finally:
            await pool.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() / the test, not lost in the thread
            self.error = exc

    def start(self) -> None:
        self.thread.start()
        stopped = threading.Event()
        for _ in range(3000):
            if self.server.started or self.error is not None or not self.thread.is_alive():
                break
            stopped.wait(0.01)
        assert self.server.started, f"operator API did not start: {self.error!r}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="module")
async def scratch_db(template_db_url: str, database_server_url: str) -> Any:
    name = f"extplane_t_{uuid.uuid4().hex[:12]}"
    tpl = urlsplit(template_db_url).path.lstrip("/")
    admin = await asyncpg.connect(_with_db(database_server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
    finally:
        await admin.close()
    yield _with_db(database_server_url, name)
    admin = await asyncpg.connect(_with_db(database_server_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def served_api(
    scratch_db: str,
    temporal_address: str,
    worker_id_num: int,
    tmp_path_factory: pytest.TempPathFactory,
    keyring: Keyring,  # noqa: F811
) -> Iterator[ServedApi]:
    """One API and worker for every operation of the module (a server per operation would cost more
    than the examples). Its Redis db index is this xdist worker's, as tests/conftest.py gives it."""
    redis_url = urlunsplit(urlsplit(os.environ["EXT_TEST_REDIS_URL"])._replace(path=f"/{1 + worker_id_num}"))
    served = ServedApi(
        db_url=scratch_db,
        temporal_address=temporal_address,
        redis_url=redis_url,
        root=tmp_path_factory.mktemp("schemathesis"),
        keys=keyring,
    )
    served.start()
    try:
        yield served
    finally:
        served.stop()


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "auth": {"openapi": {"HTTPBearer": {"bearer": ADMIN_TOKEN}}},
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # Text Postgres cannot store, a NUL or a lone surrogate, is refused with 400 in every field
            # by design (docs/operator.md, tests/api/test_input_text.py and test_params.py test it);
            # JSON Schema has no way to say so for every string, so positive data leaves it out.
            "allow-x00": False,
            "codec": "utf-8",
        },
        "checks": {"enabled": True},
        "request-timeout": 60,
        "operations": OPERATIONS,
    }
)
# The document of an app with the same routes, loaded at import so pytest can make one test per operation
# (schemathesis' lazy fixture loader does not run under pytest 9); the first test below checks that the
# running API serves exactly this document at /openapi.json.
DOCUMENT = create_app(make_settings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def test_the_running_api_serves_the_document_under_test(served_api: ServedApi) -> None:
    resp = httpx.get(f"{served_api.url}/openapi.json", timeout=30)
    assert resp.status_code == 200
    assert resp.json() == DOCUMENT


@schema.parametrize()
def test_the_api_answers_as_its_openapi_document_says(
    case: schemathesis.Case[Any], served_api: ServedApi
) -> None:
    case.call_and_validate(base_url=served_api.url)
