"""Tenant ids: what an operator may name a tenant.

A tenant id becomes part of Temporal workflow ids (`install/{tenant}/{extension}`), Redis keys
(`ext-debug:{tenant}:{extension}`), bucket keys and Postgres rows, so it must be unambiguous in all of
them: letters, digits, `.`, `_` and `-`, starting with a letter or digit, at most 128 characters. That
admits slugs (`acme`), UUIDs and most external ids while excluding `/`, `:`, whitespace, control
characters and anything Postgres cannot store.
"""

from __future__ import annotations

import re

MAX_TENANT_CHARS = 128
TENANT_RE = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_TENANT_CHARS - 1}}}$"
_TENANT = re.compile(TENANT_RE)
TENANT_RULE = "1-128 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"


def valid_tenant(tenant: str) -> bool:
    return _TENANT.fullmatch(tenant) is not None
