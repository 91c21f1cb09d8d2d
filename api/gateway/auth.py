"""The gateway's use of `api.auth`: bearer token → principal (shared with the operator API), then the
one tenant this call acts for.

Token lookup, hashing, caching (hits and misses, `gateway_token_ttl_s`; a revocation takes effect
within that time) and the constant-time admin-token check are `api.auth.TokenAuthenticator`'s. What is
gateway-specific lives here:

* Tenant: a tenant token's tenant is the only authority. `x-tenant-id` / `x-extplane-tenant`, when
  sent, must equal it (else 403 tenant_mismatch); they never select another tenant.
* Operator impersonation: a *global* token holding the `admin` scope (EXT_ADMIN_TOKEN, or an
  api_tokens row with tenant_id NULL) may call one tenant's extension by naming the tenant in
  `x-extplane-tenant` (`extctl call --tenant T` does this). The call is then marked as an operator
  call: the guest sees user kind `operator`, the gateway logs `operator_call` with the token and
  counts it in /metrics, and its execution_log row is written under that tenant like any call.
  A global token without `admin`, or without exactly one named tenant, is refused (403).
* Revocation: the RevokeToken workflow publishes `{"token_id"}` on TOKEN_INVALIDATE_CHANNEL;
  `on_token_message` drops that token's cached lookups, so its bearer calls and UI sessions fail at
  once. A lost message (Redis down) costs at most the token cache TTL; a resubscription drops every
  cached token, since messages published meanwhile are gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import structlog

from api.auth import ADMIN, Principal, TokenAuthenticator
from api.gateway.errors import Forbidden, Unauthorized
from schema.errors import ErrorCode
from schema.tenants import valid_tenant

log = structlog.get_logger(__name__)

TENANT_HEADERS = (b"x-tenant-id", b"x-extplane-tenant")
MAX_TOKEN_CHARS = 512


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    tenant_id: str
    operator: bool  # a global admin token acting for `tenant_id`

    def allows(self, scope: str) -> bool:
        return self.principal.has(scope)

    @property
    def subject(self) -> str:
        return self.principal.subject


def bearer_token(authorization: bytes | None) -> str:
    if not authorization:
        raise Unauthorized("missing Authorization: Bearer <token>")
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized("malformed Authorization header; expected Bearer <token>")
    return token


class GatewayAuth:
    def __init__(self, authenticator: TokenAuthenticator) -> None:
        self.authenticator = authenticator
        self.revocations = 0  # token invalidation messages applied

    def on_token_message(self, raw: bytes | str) -> None:
        try:
            token_id = str(json.loads(raw)["token_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("token_invalidation_malformed", size=len(raw))
            return
        self.revocations += 1
        self.authenticator.forget_token(token_id)

    def reset(self) -> None:
        """Resubscribed: revocations published meanwhile are lost, so no cached token is trusted."""
        self.authenticator.forget()

    async def authenticate(self, authorization: bytes | None, tenant_headers: list[bytes]) -> Caller:
        """The caller of this request with its tenant settled (fail-closed)."""
        principal = await self.authenticator.authenticate(bearer_token(authorization))
        claimed = {h.decode("latin-1").strip() for h in tenant_headers}
        if principal.tenant_id is not None:
            if claimed - {principal.tenant_id}:
                raise Forbidden(
                    "tenant header does not match the token's tenant", code=ErrorCode.TENANT_MISMATCH
                )
            return Caller(principal, principal.tenant_id, operator=False)
        if ADMIN not in principal.scopes:
            raise Forbidden("a global token needs the admin scope to call tenant extensions")
        if len(claimed) > 1:
            raise Forbidden("conflicting tenant headers", code=ErrorCode.TENANT_MISMATCH)
        tenant = next(iter(claimed), "")
        if not valid_tenant(tenant):
            raise Forbidden("a global admin token must name a valid tenant id in x-extplane-tenant")
        return Caller(principal, tenant, operator=True)
