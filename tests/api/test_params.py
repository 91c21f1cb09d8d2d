"""Every path and query parameter of every operator route refuses text no layer behind it can hold (a
NUL, invalid UTF-8 such as a percent-encoded lone surrogate, an over-long value) with 400
invalid_request naming the parameter: never a 500 from Postgres, never the value echoed back.

The routes are discovered from the app, so a route added later is covered without touching this file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from api.operator.app import create_app
from api.operator.params import MAX_PARAM_CHARS
from api.operator.settings import OperatorSettings
from tests.api.conftest import ADMIN, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

# A value each path parameter could really have, so only the parameter under test is bad.
SAMPLE = {
    "tenant": "acme",
    "name": "com.acme.x",
    "version": "1.0.0",
    "key_id": "ed25519:00",
    "workflow_id": "install/acme/com.acme.x",
    "prefix": "com.acme",
    "token_id": "00000000-0000-0000-0000-000000000000",
    "rollout_id": "r-1",
    "schedule": "nightly",
}
# A `{workflow_id:path}` may hold slashes: the bad part goes after a realistic prefix.
PREFIX = {"workflow_id": "install/acme/"}
# Percent-encoded as a client sends them; the expected fragment of the message for each.
BAD = {
    "nul": ("a%00b", "NUL"),
    "surrogate": ("a%ED%A0%80b", "UTF-8"),
    "invalid_utf8": ("a%FFb", "UTF-8"),
    "too_long": ("a" * (MAX_PARAM_CHARS + 1), f"longer than {MAX_PARAM_CHARS}"),
}


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # OpenAPI template, e.g. /v1/tenants/{tenant}/installs
    param: str
    where: str  # "path" | "query"

    def url(self, bad: str) -> str:
        values = {p: SAMPLE[p] for p in _path_params(self.path)}
        if self.where == "path":
            values[self.param] = PREFIX.get(self.param, "") + bad
        url = self.path.format(**values)
        return f"{url}?{self.param}={bad}" if self.where == "query" else url


def _path_params(template: str) -> list[str]:
    return [part.split("}")[0] for part in template.split("{")[1:]]


def _cases() -> list[Case]:
    """Every (route, path or query parameter), from the app's OpenAPI document: the public list of
    what the app routes, whatever the router internals of the FastAPI version."""
    doc = create_app(make_settings()).openapi()
    return [
        Case(method.upper(), path, param["name"], param["in"])
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        for param in operation.get("parameters", [])
        if param["in"] in ("path", "query")
    ]


CASES = _cases()


def test_the_discovery_sees_the_routes_of_the_issue() -> None:
    """The red-team run found 500s on the read routes with query or path parameters."""
    got = {(c.method, c.path, c.param) for c in CASES}
    for expected in [
        ("GET", "/v1/installs", "tenant"),
        ("GET", "/v1/audit", "extension"),
        ("GET", "/v1/debug-sessions", "tenant"),
        ("GET", "/v1/tenants/{tenant}/executions", "extension"),
        ("GET", "/v1/extensions/{name}/versions/{version}", "version"),
        ("GET", "/v1/operations/{workflow_id}", "workflow_id"),
        ("POST", "/v1/trust/keys/{key_id}/revoke", "reason"),
        ("PUT", "/v1/tenants/{tenant}/installs/{name}/config", "name"),
    ]:
        assert expected in got, expected
    assert set(SAMPLE) >= {c.param for c in CASES if c.where == "path"}


@pytest.fixture
async def api(settings: OperatorSettings) -> AsyncIterator[httpx.AsyncClient]:
    # No worker polls this queue: a request the checks let through must not wait long for one.
    app = create_app(settings.model_copy(update={"wait_seconds": 2.0}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api", timeout=60) as c:
        yield c
    await app.state.resources.aclose()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path} {c.where}:{c.param}")
async def test_unfit_parameters_are_400_naming_the_parameter(api: httpx.AsyncClient, case: Case) -> None:
    body: dict[str, object] | None = {} if case.method in ("POST", "PUT", "PATCH") else None
    wrong = []
    for kind, (bad, fragment) in sorted(BAD.items()):
        resp = await api.request(case.method, case.url(bad), json=body, headers=ADMIN)
        out = resp.json()
        if not (
            resp.status_code == 400
            and out["error"] == "invalid_request"
            and out["message"].startswith(f"{case.where} parameter {case.param!r} ")
            and fragment in out["message"]
            and out["details"] == {"parameter": case.param}
        ):
            wrong.append((kind, resp.status_code, out))
        # Never the value back: not the text around the NUL, not its replacement, not the long run.
        assert "a\x00b" not in resp.text and "\ufffd" not in resp.text and "aaaaaaaa" not in resp.text
    assert not wrong, wrong


async def test_text_that_is_fine_passes_the_check(api: httpx.AsyncClient) -> None:
    """Non-ASCII text, a U+FFFD the client really sent, a value at the limit: the route answers."""
    for value in ["%C3%A9t%C3%A9", "%EF%BF%BD", "a" * MAX_PARAM_CHARS, "", "a+b"]:
        resp = await api.get(f"/v1/audit?extension={value}", headers=ADMIN)
        assert (resp.status_code, resp.json()) == (200, []), (value, resp.text)


async def test_a_bad_name_or_a_parameter_no_route_declares(api: httpx.AsyncClient) -> None:
    resp = await api.get("/v1/audit?ex%00t=1", headers=ADMIN)
    assert (
        resp.status_code == 400
        and resp.json()["message"] == "a query parameter name is not text this API accepts"
    )
    # Undeclared parameters are ignored by the route but still never reach a log as a NUL.
    resp = await api.get("/v1/audit?utm=%00", headers=ADMIN)
    assert resp.status_code == 400 and resp.json()["message"].startswith(
        "query parameter 'utm' contains a NUL"
    )
    resp = await api.get("/v1/audit?a%20b=%00", headers=ADMIN)
    assert resp.status_code == 400 and resp.json()["message"].startswith("a query parameter contains a NUL")
    assert "details" not in resp.json()


async def test_a_tenant_filter_no_tenant_can_have_is_400_on_every_route(api: httpx.AsyncClient) -> None:
    """The spec gives query `tenant` the tenant pattern, so the API answers like it (not `200 []`)."""
    routes = sorted({c.path for c in CASES if c.where == "query" and c.param == "tenant"})
    assert "/v1/installs" in routes and "/v1/tokens" in routes
    for path in routes:
        for bad in ["", "-acme", "a%20b", "a" * 129]:
            resp = await api.get(f"{path}?tenant={bad}", headers=ADMIN)
            out = resp.json()
            assert resp.status_code == 400 and out["details"] == {"parameter": "tenant"}, (path, bad, out)
        assert (await api.get(f"{path}?tenant=acme", headers=ADMIN)).status_code == 200, path
