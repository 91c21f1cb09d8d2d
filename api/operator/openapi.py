"""The operator API's OpenAPI document (`/openapi.json`, `/docs`): FastAPI's, completed so that it says
what the app answers, for every route, including routes added later, without anything in the route.

FastAPI documents each route's 200 and a 422 `HTTPValidationError`; the app answers a validation error
with 400 `invalid_request` (api/errors.py) and every error with one body, `ErrorBody`. So `complete`:

* drops the 422 validation responses and their schemas;
* adds, with `ErrorBody` as content, the errors an operation can answer (a status a route declares
  itself keeps its description and gets the body):

    every authenticated operation (`/v1/...`)   400 invalid_request (a parameter no layer can hold,
                                                a body that fails validation), 401 unauthenticated,
                                                403 forbidden / tenant_mismatch, 503 registry or
                                                control plane unavailable
    + a path parameter                          404 not_found
    + POST / PUT / PATCH / DELETE               409 conflict / version_exists / version_not_installable
    + an `Idempotency-Key` header               422 idempotency_key_reused (the key sent again with
                                                another change: the only 422 of the API)

* documents the `x-request-id` header every response carries (api/middleware.py);
* gives path parameters their rules by name, as every route names them: `tenant` the tenant-id rule
  (schema.tenants; `Principal.require_tenant` answers 400), `name` the extension-name rule and
  `version` the semver rule (schema.manifest; install changes answer 400, reads 404); and the
  `Idempotency-Key` header its rule (api/operator/changes.py answers 400); `key_id` the trust-key id
  shape (a revoke of any other id is 404); `rollout_id` the Idempotency-Key rule (400 otherwise);
  `schedule` the manifest's schedule-name rule (any other name is 404).

tests/api/test_openapi.py checks these properties; tests/api/contract/test_schemathesis.py checks the document
against the running app.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from api.errors import ErrorBody
from api.operator.changes import IDEMPOTENCY_KEY_RE
from api.operator.fields import SEMVER_PATTERN
from api.operator.routes.trust import KEY_ID_RE
from schema.manifest import MAX_NAME_CHARS, MAX_VERSION_CHARS, NAME_RE, SCHEDULE_NAME_RE
from schema.tenants import MAX_TENANT_CHARS, TENANT_RE, TENANT_RULE

REF_PREFIX = "#/components/schemas/"
ERROR_SCHEMA = "ErrorBody"
_MUTATING = frozenset({"post", "put", "patch", "delete"})
_METHODS = frozenset({"get", "head", "options", "trace"}) | _MUTATING
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
IDEMPOTENCY_HEADER = "idempotency-key"

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "invalid_request (or another input code): a parameter or body the API refuses",
    401: "unauthenticated: no bearer token, or one that is unknown, revoked or expired",
    403: "forbidden (a scope the token lacks) or tenant_mismatch (another tenant's resource)",
    404: "not_found: a named thing does not exist (or is not visible to the caller)",
    409: "conflict, version_exists or version_not_installable: the change contradicts current state",
    422: "idempotency_key_reused: the Idempotency-Key was sent before with another change",
    503: "registry_unavailable or control_plane_unavailable: retry later",
}


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    if not operation.get("security"):
        return []
    statuses = [400, 401, 403, 503]
    params = operation.get("parameters", [])
    if "{" in path:
        statuses.append(404)
    if method in _MUTATING:
        statuses.append(409)
    if any(p["in"] == "header" and p["name"].lower() == IDEMPOTENCY_HEADER for p in params):
        statuses.append(422)
    return statuses


def _is_validation_response(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == REF_PREFIX + "HTTPValidationError")


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF_PREFIX + ERROR_SCHEMA}}}


def _request_id_header() -> dict[str, Any]:
    return {
        "x-request-id": {
            "description": "the request id (the caller's sane `x-request-id`, or a new one)",
            "schema": {"type": "string"},
        }
    }


# Path parameter name -> (description, pattern, max length).
PATH_RULES: dict[str, tuple[str, str, int]] = {
    "tenant": (f"tenant id: {TENANT_RULE}", TENANT_RE, MAX_TENANT_CHARS),
    "name": ("extension name: lowercase reverse-domain, e.g. com.acme.hello", NAME_RE, MAX_NAME_CHARS),
    "version": ("semantic version, e.g. 1.2.0", SEMVER_PATTERN, MAX_VERSION_CHARS),
    "key_id": ("trust key id: ed25519:<32 lowercase hex>", KEY_ID_RE, 40),
    "prefix": ("namespace: spelled like an extension name, e.g. com.acme", NAME_RE, MAX_NAME_CHARS),
    "rollout_id": (
        "rollout id: the Idempotency-Key that started it, or the generated one",
        IDEMPOTENCY_KEY_RE,
        128,
    ),
    "schedule": ("schedule name: as the manifest declares it, e.g. nightly-report", SCHEDULE_NAME_RE, 63),
}
# Query parameter name -> its schema, where the API checks the value (400 invalid_request otherwise):
# `tenant` in api.operator.params for every route, `since` and `action` in the audit route.
QUERY_RULES: dict[str, dict[str, Any]] = {
    "tenant": {"type": "string", "pattern": TENANT_RE, "minLength": 1, "maxLength": MAX_TENANT_CHARS},
    "since": {"type": "string", "format": "date-time"},
    "action": {"type": "string", "pattern": r"^[a-z0-9_.-]{1,100}\*?$"},
}


def _parameter_rule(param: dict[str, Any]) -> None:
    if param["in"] == "header" and param["name"].lower() == IDEMPOTENCY_HEADER:
        param["description"] = "repeat a change safely: the same key again returns the first result"
        param["schema"] = {"type": "string", "pattern": IDEMPOTENCY_KEY_RE}
        return
    if param["in"] == "query" and param["name"] in QUERY_RULES:
        param["schema"] = {**param.get("schema", {}), **QUERY_RULES[param["name"]]}
        param["schema"].pop("anyOf", None)
        return
    rule = PATH_RULES.get(param["name"])
    if param["in"] != "path" or rule is None:
        return
    description, pattern, max_length = rule
    param["description"] = description
    param["schema"] = {
        **param.get("schema", {}),
        "type": "string",
        "pattern": pattern,
        "minLength": 1,
        "maxLength": max_length,
    }


def _complete_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    validation = responses.get("422")
    if validation is not None and _is_validation_response(validation):
        del responses["422"]
    for status in _error_statuses(path, method, operation):
        response = responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status]})
        response.setdefault("content", _error_content())
    for code, response in responses.items():
        if code.startswith(("4", "5")) and "content" not in response:
            response["content"] = _error_content()
        response.setdefault("headers", {}).update(_request_id_header())
    for param in operation.get("parameters", []):
        _parameter_rule(param)


def _error_schemas() -> dict[str, Any]:
    _, top = models_json_schema([(ErrorBody, "serialization")], ref_template=REF_PREFIX + "{model}")
    defs: dict[str, Any] = top["$defs"]
    return defs


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` (FastAPI's document, changed in place) as the app answers; see the module docstring."""
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            if method in _METHODS:
                _complete_operation(path, method, operation)
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_error_schemas())
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve `complete(...)` of FastAPI's document (rebuilt when FastAPI rebuilds its own, i.e. when
    routes are added)."""
    base: Callable[[], dict[str, Any]] = app.openapi
    cache: dict[str, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        doc = base()
        if cache.get("base") is not doc:
            cache["base"] = doc
            cache["done"] = complete(copy.deepcopy(doc))
        return cache["done"]

    app.openapi = openapi  # type: ignore[method-assign]
