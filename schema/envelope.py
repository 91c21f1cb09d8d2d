"""The execute envelope: what the gateway sends to the runner (`POST /v1/execute`) and what comes back.

The gateway builds `ExecuteRequest` from the resolved install and the tenant's HTTP call; the runner
answers `ExecuteResponse`. Bodies travel base64-encoded. Secrets travel sealed (`SealedSecrets`, the
fields of `core.crypto.SecretEnvelope`); only the runner opens them. `artifacts` carries the registry's
record of the bundle's precompiled artifacts (`bundles.precompiled`): a deserialized artifact is native
code, so the runner (which cannot read Postgres) uses one only if its bytes hash to the sha256 recorded
when the publish workflow compiled it, and otherwise compiles the hash-checked bundle itself.

HTTP status of the runner's answer (the gateway maps runner failures to 502/503/504 for the tenant):

    200  the handler ran and returned a response, whatever its own status (a handler's 500 is a 200
         here, with `status: 500` inside). `error` is null.
    400  invalid_request     the envelope is malformed, too large, or names an unknown capability
    401  unauthenticated     missing or wrong `x-runner-auth`
    404  module_not_found    no bundle under `context.content_hash`, or it has no `dist/main.wasm`
    422  module_rejected     the bundle does not hash to its content hash, or is not a component of the
                             `extplane:extension/runner` world (it cannot be instantiated)
    500  guest_trap          the guest trapped (unreachable, stack overflow, out-of-bounds, host fault)
    500  fuel_exhausted      the guest used up its fuel budget
    500  memory_exhausted    the guest hit its memory limit
    500  response_too_large  the handler's response exceeds the runner's cap
    500  internal            a runner bug or a secret that does not decrypt
    503  runner_busy         no slot: every thread and queue slot is taken, or the tenant holds its
                             share of them, or no thread came free before the deadline; the guest
                             never ran (safe to retry)
    504  deadline_exceeded   the guest ran past `limits.timeout_ms` (counted from admission)

Every non-200 answer carries `error: {code, message}`; `metrics` is filled whenever the guest ran.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_HEADERS = 256
MAX_REQUEST_ID = 200
MAX_ARTIFACTS = 16
# runner.compile.engine_fingerprint() values (also bundles.blobstore's fingerprint rule).
ENGINE_FINGERPRINT_PATTERN = r"^[a-z0-9_-][a-z0-9._-]{0,127}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallContext(_Model):
    """Who is calling which install at which version; the guest reads most of it via `context`."""

    tenant_id: Annotated[str, Field(min_length=1, max_length=200)]
    extension: Annotated[str, Field(min_length=1, max_length=200)]
    install_id: Annotated[str, Field(min_length=1, max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=128)]
    content_hash: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    request_id: Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_ID)]
    # The install's revision: bumps on every install workflow, so caches keyed by it self-invalidate.
    revision: Annotated[int, Field(ge=0)] = 0
    config: dict[str, str] = {}
    config_version: Annotated[int, Field(ge=0)] = 0
    secrets_version: Annotated[int, Field(ge=0)] = 0


class HttpCall(_Model):
    """The tenant's HTTP request, below the extension's route prefix."""

    method: Annotated[str, Field(min_length=1, max_length=16)]
    path: Annotated[str, Field(min_length=1, max_length=2048)]
    query: Annotated[str, Field(max_length=8192)] = ""
    headers: Annotated[list[tuple[str, str]], Field(max_length=MAX_HEADERS)] = []
    body_b64: str = ""


class ExecLimits(_Model):
    """What the manifest asks for; the runner clamps each value by its operator maxima."""

    timeout_ms: Annotated[int, Field(ge=1, le=300_000)] = 5000
    memory_mb: Annotated[int, Field(ge=1, le=4096)] = 64
    fuel: Annotated[int | None, Field(ge=1)] = None


class Grants(_Model):
    """Capabilities the install grants (the runner adds schema.capabilities defaults)."""

    granted: list[str] = []


class SealedSecrets(_Model):
    """The fields of core.crypto.SecretEnvelope: ciphertext plus wrapped data key, never plaintext."""

    install_id: str
    secrets_version: Annotated[int, Field(ge=0)]
    ciphertext_b64: str
    nonce_b64: str
    wrapped_key_b64: str
    master_key_version: Annotated[int, Field(ge=0)]


class ArtifactDigest(_Model):
    """One precompiled artifact as the publish workflow recorded it: lowercase hex sha256 and size."""

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=1)]


EngineFingerprint = Annotated[str, Field(pattern=ENGINE_FINGERPRINT_PATTERN)]


class CallUser(_Model):
    id: str
    email: str = ""
    name: str = ""
    kind: str = ""


class ExecuteRequest(_Model):
    context: CallContext
    request: HttpCall
    limits: ExecLimits = ExecLimits()
    capabilities: Grants = Grants()
    # The manifest's egress list (hosts or `*.domain`); the runner intersects it with operator policy.
    egress: Annotated[list[str], Field(max_length=64)] = []
    secrets: SealedSecrets | None = None
    user: CallUser | None = None
    # The bundle's precompiled artifacts by engine fingerprint; none means the runner compiles.
    artifacts: Annotated[dict[EngineFingerprint, ArtifactDigest], Field(max_length=MAX_ARTIFACTS)] = {}


class ExecError(_Model):
    code: str
    message: str


class ExecMetrics(_Model):
    duration_ms: float
    fuel_consumed: int = 0


class ExecuteResponse(_Model):
    status: int = 0
    headers: list[tuple[str, str]] = []
    body_b64: str = ""
    error: ExecError | None = None
    metrics: ExecMetrics | None = None
