"""What an Idempotency-Key is bound to: the fingerprint of the install change it first named.

The install entity workflow remembers each request id with its result and this fingerprint, and refuses
the same id with a different one (`422 idempotency_key_reused`, naming the parts that differ). It lives
in the workflow because that is where request ids are already deduplicated: every API process sees it,
concurrent requests with one key are compared in the workflow's single order, and it is carried over
continue-as-new with the remembered results. (The API may not write the registry, ARCHITECTURE.md.)

A fingerprint maps part name -> digest, one entry per part the request sets:

* `operation` in clear;
* `version`, `config`, `rate_limit_rps`, `rate_limit_burst`, `debug_enabled`, `accept`, `deny`: the
  first 128 bits of a SHA-256 of their canonical JSON (their values travel in the same request anyway);
  `config_merge` only when set (so requests that predate it keep their fingerprint);
* `drop_schedules`: like the plain parts, of the sorted, deduplicated names (their order says
  nothing), and only when given;
* `secrets`: `k<v>:` + the first 128 bits of an HMAC-SHA256 of the canonical JSON of the plain secret
  map (names and values), keyed by HKDF(`FINGERPRINT_INFO`) of master key version `v`, the lowest in
  the keyring. Sealed secrets cannot be compared (sealing is randomized: the same values seal
  differently every time), and an unkeyed hash of a short secret could be brute-forced from a decoded
  history. The lowest version stays the same while rotations add keys; a retry that straddles the
  retirement of that key is refused as different (send it with a new key).

Parts are compared by name, so a part only one side sets counts as different.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from core.codec import derive_key
from core.crypto import Keyring
from schema.install_rules import GrantSet
from schema.payloads.install import InstallRequest

FINGERPRINT_INFO = b"extplane/idempotency-fingerprint/v1"
_HEX_CHARS = 32  # 128 bits: ample to tell two requests apart, small in the entity's state
_PLAIN_PARTS = ("version", "config", "rate_limit_rps", "rate_limit_burst", "debug_enabled", "accept", "deny")


def _canonical(value: Any) -> bytes:
    # ASCII escapes: any text encodes, whatever the caller sent (a lone surrogate in a secret value).
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def fingerprint(
    request: InstallRequest, *, secrets: Mapping[str, str] | None, keyring: Keyring | None
) -> dict[str, str]:
    """The fingerprint of `request`, whose secrets (if any) are `secrets` in clear."""
    parts = {"operation": request.operation.value}
    for name in _PLAIN_PARTS:
        value = getattr(request, name)
        if isinstance(value, GrantSet):
            value = value.as_json()
        if value is not None and value != "":
            parts[name] = hashlib.sha256(_canonical(value)).hexdigest()[:_HEX_CHARS]
    if request.config_merge:
        parts["config_merge"] = "1"
    if request.drop_schedules is not None:
        names = sorted(set(request.drop_schedules))
        parts["drop_schedules"] = hashlib.sha256(_canonical(names)).hexdigest()[:_HEX_CHARS]
    if secrets:
        if keyring is None:  # the caller sealed the secrets with it, so this is a programming error
            raise ValueError("secrets need the master keyring to be fingerprinted")
        version = min(keyring.keys)
        key = derive_key(keyring, version, FINGERPRINT_INFO)
        mac = hmac.new(key, _canonical(dict(secrets)), hashlib.sha256).hexdigest()[:_HEX_CHARS]
        parts["secrets"] = f"k{version}:{mac}"
    return parts
