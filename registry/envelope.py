"""The install as the hot path uses it, and the execute envelope (schema.envelope) in bytes.

Shared by the gateway (a tenant's call) and the scheduled-run activity (a schedule's call), so both
send the runner the same grants, limits and sealed secrets for an install.

Everything that depends only on the install — context ids, config, limits, grants, egress, sealed
secrets, the digests of the bundle's precompiled artifacts — is validated against `schema.envelope`
once, when the install is cached, and kept as pre-serialized JSON fragments. A call then only
serializes what is its own (request id, method, path, query, headers, user) and splices the base64
body in as bytes, which keeps a 10 MiB body from being copied through a JSON encoder.

`model(...)` is the same envelope as the validated model, for a runner in the gateway's own process
(EXT_RUNNER_URL=local:): the install's parts were validated when it was cached, the call's own
(`HttpCall`, `CallUser`) are validated here, and the whole is assembled without a second pass.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from registry.read_gateway import GatewayInstall
from schema.envelope import (
    MAX_REQUEST_ID,
    ArtifactDigest,
    CallContext,
    CallUser,
    ExecLimits,
    ExecuteRequest,
    Grants,
    HttpCall,
    SealedSecrets,
)
from schema.manifest import endpoint_matches


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _config_strings(config: dict[str, object]) -> dict[str, str]:
    # The envelope carries config as strings (the guest reads text); JSON-encode anything else.
    return {str(k): v if isinstance(v, str) else _dumps(v) for k, v in config.items()}


@dataclass(frozen=True, slots=True)
class CallFields:
    """What of an envelope is the call's own; the install supplies the rest."""

    request_id: str
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body_b64: bytes
    user: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class PreparedInstall:
    install: GatewayInstall
    by_method: dict[str, tuple[str, ...]]  # method -> declared path templates
    rps: float
    burst: int
    timeout_ms: int
    # x-ext-* lines for the runner request head (reference plan item A2): the runner and anything
    # between can see which install state a call was made against without parsing the envelope.
    runner_headers: bytes
    _context_head: bytes  # '{"context":{...static fields...,"request_id":'
    _tail: bytes  # ',"limits":...,"capabilities":...,"egress":...,"secrets":...,"artifacts":...'
    _context: CallContext  # validated, with a placeholder request_id
    _parts: dict[str, Any]  # the other validated install parts, by ExecuteRequest field

    @property
    def active(self) -> bool:
        return self.install.active

    @property
    def revision(self) -> int:
        return self.install.revision

    def match(self, method: str, path: str) -> str | None:
        """The declared template that `method path` hits, or None (HEAD is matched as GET)."""
        for template in self.by_method.get("GET" if method == "HEAD" else method, ()):
            if endpoint_matches(template, path) is not None:
                return template
        return None

    def envelope(
        self,
        *,
        request_id: str,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body_b64: bytes,
        user: dict[str, str] | None,
    ) -> bytes:
        return self.encode(CallFields(request_id, method, path, query, headers, body_b64, user))

    def encode(self, call: CallFields) -> bytes:
        """The envelope of `call` against this install, as JSON bytes."""
        request = _dumps(
            {"method": call.method, "path": call.path, "query": call.query, "headers": call.headers}
        )
        return b"".join(
            (
                self._context_head,
                _dumps(call.request_id).encode(),
                b'},"request":',
                request[:-1].encode(),
                b',"body_b64":"',
                call.body_b64,
                b'"}',
                self._tail,
                b',"user":',
                _dumps(call.user).encode(),
                b"}",
            )
        )

    def model(self, call: CallFields) -> ExecuteRequest:
        """The envelope `encode(call)` encodes, as the model the runner would parse from it. Raises
        pydantic.ValidationError (a ValueError) for a call outside the envelope's bounds."""
        request = HttpCall(
            method=call.method,
            path=call.path,
            query=call.query,
            headers=call.headers,
            body_b64=call.body_b64.decode("ascii"),
        )
        if not 1 <= len(call.request_id) <= MAX_REQUEST_ID:  # CallContext.request_id's bounds
            raise ValueError(f"request_id must be 1 to {MAX_REQUEST_ID} characters")
        return ExecuteRequest.model_construct(
            context=self._context.model_copy(update={"request_id": call.request_id}),
            request=request,
            user=CallUser(**call.user) if call.user is not None else None,
            **self._parts,
        )


def prepare(install: GatewayInstall, *, default_rps: float, default_burst: int) -> PreparedInstall:
    """Validate the install's static envelope parts once; raises pydantic.ValidationError if invalid."""
    context = CallContext(
        tenant_id=install.tenant_id,
        extension=install.extension,
        install_id=install.install_id,
        version=install.version,
        content_hash=install.content_hash,
        request_id="-",
        revision=install.revision,
        config=_config_strings(install.config),
        config_version=install.config_version,
        secrets_version=install.secrets_version,
    )
    limits = ExecLimits(timeout_ms=install.timeout_ms, memory_mb=install.memory_mb)
    secrets = SealedSecrets(**asdict(install.secrets)) if install.secrets is not None else None
    artifacts = {fp: ArtifactDigest(sha256=sha, size=size) for fp, sha, size in install.artifacts}
    # The full model validates cross-field limits (egress count, ...) before we trust the fragments.
    parts: dict[str, Any] = {
        "limits": limits,
        "capabilities": Grants(granted=list(install.granted_capabilities)),
        "egress": list(install.egress),
        "secrets": secrets,
        "artifacts": artifacts,
    }
    ExecuteRequest(context=context, request=HttpCall(method="GET", path="/"), **parts)
    ctx = context.model_dump(mode="json", exclude={"request_id"})
    head = '{"context":' + _dumps(ctx)[:-1] + ',"request_id":'
    tail = "".join(
        (
            ',"limits":',
            limits.model_dump_json(),
            ',"capabilities":',
            _dumps({"granted": list(install.granted_capabilities)}),
            ',"egress":',
            _dumps(list(install.egress)),
            ',"secrets":',
            secrets.model_dump_json() if secrets is not None else "null",
            ',"artifacts":',
            _dumps({fp: a.model_dump() for fp, a in artifacts.items()}),
        )
    )
    by_method: dict[str, list[str]] = {}
    for method, template in install.endpoints:
        by_method.setdefault(method, []).append(template)
    rps = install.rate_limit_rps if install.rate_limit_rps is not None else default_rps
    burst = install.rate_limit_burst if install.rate_limit_burst is not None else default_burst
    return PreparedInstall(
        install=install,
        by_method={m: tuple(t) for m, t in by_method.items()},
        rps=rps,
        burst=burst,
        timeout_ms=limits.timeout_ms,
        runner_headers=(
            f"x-ext-install-id: {install.install_id}\r\n"
            f"x-ext-revision: {install.revision}\r\n"
            f"x-ext-config-version: {install.config_version}\r\n"
            f"x-ext-secrets-version: {install.secrets_version}\r\n"
        ).encode(),
        _context_head=head.encode(),
        _tail=tail.encode(),
        _context=context,
        _parts=parts,
    )
