"""Bearer-token authentication and scope checks, shared by the operator API and the gateway.

Tokens (CONTRACT.md "HTTP"):
* `EXT_ADMIN_TOKEN` (ApiSettings.admin_token) is a bootstrap global admin token, compared in constant
  time; it lets an operator create the first real tokens.
* every other token is looked up by the sha256 hex of the bearer string in `api_tokens`
  (registry.read_operator.token_by_hash). Only the hash is ever stored or cached.

Lookups are cached in-process for `ttl` seconds (also misses, so a flood of bad tokens does not reach
Postgres), so a revocation takes effect within that time. Expiry is evaluated on every request.

An app exposes its authenticator as `app.state.authenticator`; routes depend on `PrincipalDep`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from core.errors import Forbidden, InvalidInput, Unauthorized
from registry.read_operator import TokenRecord, token_by_hash, token_by_id
from schema.errors import ErrorCode
from schema.payloads.tokens import SCOPES
from schema.tenants import TENANT_RULE, valid_tenant

ADMIN = "admin"
ALL_SCOPES = frozenset(SCOPES)


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling: a global token (`tenant_id` None) or a token of one tenant."""

    subject: str  # "admin" (bootstrap token) or "token:<id>"
    scopes: frozenset[str]
    tenant_id: str | None = None
    token_id: str | None = None

    @property
    def is_global(self) -> bool:
        return self.tenant_id is None

    @property
    def actor(self) -> str:
        """What workflows record as the actor of a change."""
        return self.subject

    def has(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def require(self, *any_of: str) -> None:
        """Raise 403 forbidden unless the principal holds one of `any_of` (admin holds all)."""
        if not any(self.has(s) for s in any_of):
            raise Forbidden(f"this token lacks the scope {' or '.join(any_of)}")

    def require_tenant(self, tenant_id: str | None) -> None:
        """Raise 403 tenant_mismatch when a tenant token acts on another tenant (or on none), and 400 for a
        tenant id no tenant can have (every tenant-scoped route passes through here first)."""
        if tenant_id is not None and not valid_tenant(tenant_id):
            raise InvalidInput(f"tenant id must be {TENANT_RULE}")
        if self.tenant_id is not None and tenant_id != self.tenant_id:
            raise Forbidden(
                f"this token belongs to tenant {self.tenant_id!r}", code=ErrorCode.TENANT_MISMATCH
            )

    def require_global(self, what: str) -> None:
        if self.tenant_id is not None:
            raise Forbidden(f"{what} needs a global token; this one belongs to tenant {self.tenant_id!r}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


PoolProvider = Callable[[], Awaitable[asyncpg.Pool]]


class TokenAuthenticator:
    """Turn an `Authorization` header into a Principal, or raise 401 unauthenticated."""

    def __init__(
        self,
        *,
        admin_token: SecretStr,
        pool: PoolProvider,
        ttl: float = 5.0,
        negative_ttl: float | None = None,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin = admin_token.get_secret_value().encode()
        self._pool = pool
        self._ttl = ttl
        self._negative_ttl = ttl if negative_ttl is None else negative_ttl
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, TokenRecord | None]] = OrderedDict()

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        # Constant time against the bootstrap token; an empty admin token never matches.
        if self._admin and hmac.compare_digest(token.encode(), self._admin):
            return Principal(subject=ADMIN, scopes=frozenset({ADMIN}))
        record = await self._lookup(token_hash(token))
        if record is None:
            raise Unauthorized("unknown token")
        now = datetime.now(UTC)
        if record.revoked_at is not None:
            raise Unauthorized("token revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthorized("token expired")
        return Principal(
            subject=f"token:{record.token_id}",
            scopes=frozenset(record.scopes) & ALL_SCOPES,
            tenant_id=record.tenant_id,
            token_id=record.token_id,
        )

    async def session_valid(self, subject: str) -> bool:
        """Whether a UI session minted for `subject` may still be used: its token still exists, is not
        revoked and not expired. Cached like authentication, so a revocation reaches open sessions
        within the same TTL that bounds it for bearer calls."""
        if subject == ADMIN:
            return bool(self._admin)  # the bootstrap token: valid for as long as it is configured
        token_id = subject.removeprefix("token:")
        if token_id == subject:
            return False
        record = await self._cached("id:" + token_id, lambda pool: token_by_id(pool, token_id))
        now = datetime.now(UTC)
        return (
            record is not None
            and record.revoked_at is None
            and (record.expires_at is None or record.expires_at > now)
        )

    async def _lookup(self, digest: str) -> TokenRecord | None:
        return await self._cached(digest, lambda pool: token_by_hash(pool, digest))

    async def _cached(
        self, key: str, load: Callable[[asyncpg.Pool], Awaitable[TokenRecord | None]]
    ) -> TokenRecord | None:
        # Keys are sha256 hex digests, or "id:<uuid>" for session checks: the two never collide.
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = await load(await self._pool())
        self._cache[key] = (now + (self._ttl if record is not None else self._negative_ttl), record)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return record

    def forget(self, digests: Iterable[str] = ()) -> None:
        """Drop cached lookups (all when `digests` is empty)."""
        keys = list(digests)
        if not keys:
            self._cache.clear()
        for k in keys:
            self._cache.pop(k, None)


_bearer = HTTPBearer(auto_error=False, description="an extplane API token")


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    authenticator: TokenAuthenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(credentials.credentials if credentials else None)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
