"""Bearer-token authentication and scope checks, shared by the operator API and the gateway.

Tokens (CONTRACT.md "HTTP"):
* `EXT_ADMIN_TOKEN` (ApiSettings.admin_token) is a bootstrap global admin token, compared in constant
  time; it lets an operator create the first real tokens.
* every other token is looked up by the sha256 hex of the bearer string in `api_tokens`
  (registry.read_operator.token_by_hash). Only the hash is ever stored or cached.

A bearer string that cannot be a token (`well_formed`: what `POST /v1/tokens` mints, `ext_` and
32-128 url-safe characters) is refused with 401 before it is hashed or looked up. Lookups are cached
in-process for `ttl` seconds (misses for `negative_ttl`, in their own LRU), concurrent lookups of one
token share a single registry read, and an optional budget bounds the reads that unknown tokens may
start (api.token_cache). A revocation takes effect within `ttl`; expiry is evaluated on every request.
`current()` re-reads a principal's token uncached, for long-lived sessions that re-authorize.
`forget_token(id)` drops one token at once (a revocation: gateways receive it over Redis pub/sub).

Identity (`Principal.actor`, what workflows record as the Actor of a change): the token's identity
(`alice`, or `acme/alice` for a tenant's token; schema.payloads.tokens.identity_of), `token:<id>` for
tokens created before names existed, `bootstrap` for EXT_ADMIN_TOKEN. `subject` stays the internal key
("admin" or "token:<id>") of UI sessions, debug sessions and execution_log rows.

An app exposes its authenticator as `app.state.authenticator`; routes depend on `PrincipalDep`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from api.token_cache import LookupBudget, LookupCache
from core.errors import Forbidden, InvalidInput, Unauthorized
from registry.read_operator import TokenRecord, token_by_hash, token_by_id
from schema.errors import ErrorCode
from schema.payloads.tokens import BOOTSTRAP_ACTOR, SCOPES
from schema.tenants import TENANT_RULE, valid_tenant

ADMIN = "admin"
ALL_SCOPES = frozenset(SCOPES)
TOKEN_PREFIX = "ext_"
# `mint_token` makes "ext_" + secrets.token_urlsafe(32) (43 characters). Shorter and longer bodies are
# accepted within bounds for tokens written by other means (fixtures, earlier tooling); nothing else
# can match a stored hash, so anything else is refused before hashing or a registry read.
TOKEN_RE = re.compile(rf"{TOKEN_PREFIX}[A-Za-z0-9_-]{{32,128}}")


def mint_token() -> str:
    """A new bearer token (`POST /v1/tokens`): 256 random bits, url-safe, of the shape TOKEN_RE checks."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def well_formed(token: str) -> bool:
    """Whether `token` has the shape of an API token (the bootstrap admin token is checked apart)."""
    return TOKEN_RE.fullmatch(token) is not None


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling: a global token (`tenant_id` None) or a token of one tenant."""

    subject: str  # "admin" (bootstrap token) or "token:<id>"
    scopes: frozenset[str]
    tenant_id: str | None = None
    token_id: str | None = None
    identity: str | None = None  # the named token's identity; None for the bootstrap and older tokens

    @property
    def is_global(self) -> bool:
        return self.tenant_id is None

    @property
    def actor(self) -> str:
        """What workflows record as the actor of a change (audit rows, the Actor search attribute);
        never the token itself."""
        if self.subject == ADMIN:
            return BOOTSTRAP_ACTOR
        return self.identity or self.subject

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
        lookups_per_s: float | None = None,
        lookup_burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin = admin_token.get_secret_value().encode()
        self._pool = pool
        budget = None
        if lookups_per_s is not None:
            burst = lookup_burst if lookup_burst is not None else max(1, int(lookups_per_s))
            budget = LookupBudget(lookups_per_s, burst, clock=clock)
        self.cache: LookupCache[TokenRecord] = LookupCache(
            ttl=ttl,
            negative_ttl=ttl if negative_ttl is None else negative_ttl,
            max_entries=max_entries,
            budget=budget,
            clock=clock,
        )

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        # Constant time against the bootstrap token; an empty admin token never matches.
        if self._admin and hmac.compare_digest(token.encode(), self._admin):
            return Principal(subject=ADMIN, scopes=frozenset({ADMIN}))
        if not well_formed(token):
            self.cache.counts["malformed"] += 1
            raise Unauthorized("malformed token")
        digest = token_hash(token)
        record = await self.cache.get(
            digest, lambda: self._read(lambda pool: token_by_hash(pool, digest)), budgeted=True
        )
        return _principal(record)

    async def current(self, principal: Principal) -> Principal:
        """`principal` as the registry has it now, read uncached: the token's current scopes, or 401
        when it was revoked, expired or deleted since (a long-lived debug stream re-checks with this)."""
        if principal.subject == ADMIN:
            if not self._admin:
                raise Unauthorized("the bootstrap admin token is no longer configured")
            return principal
        if principal.token_id is None:
            raise Unauthorized("unknown token")
        return _principal(await token_by_id(await self._pool(), principal.token_id))

    async def session_valid(self, subject: str) -> bool:
        """Whether a UI session minted for `subject` may still be used: its token still exists, is not
        revoked and not expired. Cached like authentication, so a revocation reaches open sessions
        within the same TTL that bounds it for bearer calls."""
        if subject == ADMIN:
            return bool(self._admin)  # the bootstrap token: valid for as long as it is configured
        token_id = subject.removeprefix("token:")
        if token_id == subject:
            return False
        # Session subjects come from HMAC-signed cookies, not from the caller: outside the lookup budget.
        record = await self.cache.get(
            "id:" + token_id, lambda: self._read(lambda pool: token_by_id(pool, token_id)), budgeted=False
        )
        now = datetime.now(UTC)
        return (
            record is not None
            and record.revoked_at is None
            and (record.expires_at is None or record.expires_at > now)
        )

    async def _read(
        self, load: Callable[[asyncpg.Pool], Awaitable[TokenRecord | None]]
    ) -> TokenRecord | None:
        return await load(await self._pool())

    def forget(self, digests: Iterable[str] = ()) -> None:
        """Drop cached lookups (all when `digests` is empty)."""
        self.cache.forget(list(digests))

    def forget_token(self, token_id: str) -> None:
        """Drop every cached lookup of one token (by hash and by id): it was revoked. Cached by its
        hash, which revocation messages never carry, so entries are matched by the record's id."""
        self.cache.forget_where(lambda key, record: key == "id:" + token_id or record.token_id == token_id)


def _principal(record: TokenRecord | None) -> Principal:
    if record is None:
        raise Unauthorized("unknown token")
    if record.revoked_at is not None:
        raise Unauthorized("token revoked")
    if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
        raise Unauthorized("token expired")
    return Principal(
        subject=f"token:{record.token_id}",
        scopes=frozenset(record.scopes) & ALL_SCOPES,
        tenant_id=record.tenant_id,
        token_id=record.token_id,
        identity=record.identity,
    )


_bearer = HTTPBearer(auto_error=False, description="an extplane API token")


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    authenticator: TokenAuthenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(credentials.credentials if credentials else None)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
