"""Request-body field types shared by the operator routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from schema.jsontext import unstorable
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
# rule (`Principal.require_tenant`, the scope check of `POST /v1/tokens`), so validation here would only
# replace those messages with a regex.
TenantId = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": TENANT_RE, "maxLength": MAX_TENANT_CHARS, "description": TENANT_RULE}
    ),
]
Scope = Annotated[str, WithJsonSchema({"type": "string", "enum": list(SCOPES)})]
