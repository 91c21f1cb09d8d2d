"""Request-body field types shared by the operator routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from schema.jsontext import unstorable
from schema.manifest import MAX_NAME_CHARS, MAX_VERSION_CHARS, NAME_RE, SEMVER_RE
from schema.payloads.tokens import SCOPES
from schema.tenants import MAX_TENANT_CHARS, TENANT_RE, TENANT_RULE


def _storable(text: str) -> str:
    # A NUL or lone surrogate would be accepted here and then fail the activity that stores it, on
    # every retry; refuse it while the caller is still listening (400 invalid_request names the field).
    unfit = unstorable(text)
    if unfit is not None:
        raise ValueError(unfit[1])
    return text


StorableText = Annotated[str, AfterValidator(_storable)]


# Documented in the OpenAPI schema only: the routes check these themselves, with messages that name the
# rule (`Principal.require_tenant`, the scope check of `POST /v1/tokens`, api/operator/install_checks.py),
# so validation here would only replace those messages with a regex.
TenantId = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": TENANT_RE, "maxLength": MAX_TENANT_CHARS, "description": TENANT_RULE}
    ),
]
Scope = Annotated[str, WithJsonSchema({"type": "string", "enum": list(SCOPES)})]
# schema.manifest compiles SEMVER_RE with re.ASCII; a JSON Schema `\d` also matches other scripts' digits.
SEMVER_PATTERN = SEMVER_RE.replace("\\d", "[0-9]")
ExtensionName = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": NAME_RE, "maxLength": MAX_NAME_CHARS}),
]
Version = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": SEMVER_PATTERN, "maxLength": MAX_VERSION_CHARS}),
]


def _date_time_text(value: object) -> object:
    # Lax pydantic reads a number as a Unix time; the documented type is an RFC 3339 string only.
    if isinstance(value, int | float):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2027-01-01T00:00:00Z")
    return value


DateTimeText = Annotated[datetime, BeforeValidator(_date_time_text)]
