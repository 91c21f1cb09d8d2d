"""The bundle manifest (`manifest.json`), per CONTRACT.md.

`parse_manifest(data)` is the single entry point: it returns a `Manifest` or raises `ManifestError`
whose `issues` each name the offending field as a dotted path (`api.endpoints[1].path`), so a
publisher sees exactly what to fix. Unknown fields are rejected at every level.
The exported JSON Schema (`manifest.schema.json`, next to this module) is generated from this model;
a test fails when the checked-in copy drifts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schema.capabilities import ALL_CAPABILITIES, Capability
from schema.cron import CronError, parse_cron
from schema.jsontext import dotted, unstorable

NAME_RE = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$"
PUBLISHER_RE = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
# Semantic Versioning 2.0.0, the official regular expression.
SEMVER_RE = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# The last label starts with a letter, as every top-level domain does (RFC 3696 section 2): this refuses
# IPv4 literals such as 169.254.169.254, so an allowlist names hosts, never (internal) addresses.
TLD_LABEL = r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
EGRESS_RE = rf"^(?:\*\.)?(?:{HOST_LABEL}\.)+{TLD_LABEL}$"
PATH_SEGMENT_RE = re.compile(r"^(?::[a-zA-Z_][a-zA-Z0-9_]*|[A-Za-z0-9._~!$&'()*+,;=@-]+)$")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

MAX_NAME_CHARS = 200
MAX_VERSION_CHARS = 128
MAX_TIMEOUT_MS = 300_000
MAX_MEMORY_MB = 4096
MAX_ENDPOINTS = 256
MAX_MANIFEST_BYTES = 256 * 1024
MAX_CONFIG_SCHEMA_DEPTH = 64
MAX_SCHEDULES = 50
MAX_SCHEDULE_BODY_CHARS = 100_000
SCHEDULE_NAME_RE = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
SCHEDULABLE_METHODS = ("GET", "POST")

RUNTIME = "wasm-component@1"

# ASCII: Python's \d would also match other scripts' digits, which the manifest's validator refuses.
_NAME = re.compile(NAME_RE, re.ASCII)
_SEMVER = re.compile(SEMVER_RE, re.ASCII)


def valid_name(name: str) -> bool:
    """Whether `name` is a name a manifest may have (so an extension could be published under it)."""
    return len(name) <= MAX_NAME_CHARS and _NAME.fullmatch(name) is not None


def valid_version(version: str) -> bool:
    """Whether `version` is a version a manifest may have (semver, at most MAX_VERSION_CHARS)."""
    return len(version) <= MAX_VERSION_CHARS and _SEMVER.fullmatch(version) is not None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Endpoint(_Strict):
    """One declared route. Only declared endpoints are routed by the gateway."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: Annotated[
        str, Field(min_length=1, max_length=512, description="starts with '/'; ':name' matches one segment")
    ]

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with '/'")
        if any(ch.isspace() for ch in v):
            raise ValueError("must not contain whitespace")
        if v == "/":
            return v
        segments = v[1:].split("/")
        for seg in segments:
            if seg in ("", ".", ".."):
                raise ValueError("must not contain empty, '.' or '..' segments")
            if not PATH_SEGMENT_RE.match(seg):
                raise ValueError(f"segment {seg!r} has characters outside the URL path set")
        params = [s for s in segments if s.startswith(":")]
        if len(params) != len(set(params)):
            raise ValueError("repeats a ':param' name")
        return v


class Api(_Strict):
    endpoints: Annotated[list[Endpoint], Field(min_length=1, max_length=MAX_ENDPOINTS)]

    @field_validator("endpoints")
    @classmethod
    def _unique(cls, v: list[Endpoint]) -> list[Endpoint]:
        seen: set[tuple[str, str]] = set()
        for ep in v:
            key = (ep.method, ep.path)
            if key in seen:
                raise ValueError(f"duplicate endpoint {ep.method} {ep.path}")
            seen.add(key)
        return v


class Schedule(_Strict):
    """A recurring call of one declared endpoint (a Temporal Schedule per install, times in UTC)."""

    name: Annotated[str, Field(pattern=SCHEDULE_NAME_RE, description="unique in the manifest")]
    cron: Annotated[
        str, Field(max_length=128, description="five fields, UTC: minute hour day-of-month month day-of-week")
    ]
    endpoint: Annotated[
        str, Field(max_length=520, description="'GET /path' or 'POST /path' of a declared endpoint")
    ]
    body: Annotated[dict[str, Any] | list[Any] | None, Field(description="JSON sent to a POST endpoint")] = (
        None
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        try:
            parse_cron(v)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        method, _, path = v.partition(" ")
        if method not in SCHEDULABLE_METHODS or not path.startswith("/"):
            raise ValueError("must be 'GET /path' or 'POST /path'")
        if any(seg.startswith(":") for seg in path.split("/")):
            raise ValueError("must name an endpoint without ':params' (a schedule has no values for them)")
        return v

    @field_validator("body")
    @classmethod
    def _body(cls, v: dict[str, Any] | list[Any] | None) -> dict[str, Any] | list[Any] | None:
        if v is not None and len(json.dumps(v, separators=(",", ":"))) > MAX_SCHEDULE_BODY_CHARS:
            raise ValueError(f"is longer than {MAX_SCHEDULE_BODY_CHARS} characters as JSON")
        return v

    @model_validator(mode="after")
    def _body_needs_post(self) -> Schedule:
        if self.body is not None and self.method != "POST":
            raise _FieldError("body", "is only sent to a POST endpoint")
        return self

    @property
    def method(self) -> str:
        return self.endpoint.partition(" ")[0]

    @property
    def path(self) -> str:
        return self.endpoint.partition(" ")[2]


class Ui(_Strict):
    type: Literal["iframe"]
    entry: Annotated[str, Field(min_length=1, max_length=512)]

    @field_validator("entry")
    @classmethod
    def _entry(cls, v: str) -> str:
        _check_relative_path(v)
        if not v.startswith("ui/"):
            raise ValueError("must be a file under ui/")
        return v


class Limits(_Strict):
    # strict: JSON `"5000"` or `true` must not silently become a number (lax mode would coerce both).
    timeout_ms: Annotated[int, Field(ge=1, le=MAX_TIMEOUT_MS, strict=True)] = 5000
    memory_mb: Annotated[int, Field(ge=1, le=MAX_MEMORY_MB, strict=True)] = 64


class Manifest(_Strict):
    """Validated `manifest.json`. Field order and names follow CONTRACT.md."""

    name: Annotated[
        str, Field(pattern=NAME_RE, max_length=MAX_NAME_CHARS, description="reverse-domain extension id")
    ]
    publisher: Annotated[str, Field(pattern=PUBLISHER_RE)]
    version: Annotated[str, Field(pattern=SEMVER_RE, max_length=MAX_VERSION_CHARS)]
    runtime: Literal["wasm-component@1"]
    capabilities: Annotated[list[Capability], Field(max_length=len(Capability))] = []
    api: Api | None = None
    ui: Ui | None = None
    egress: Annotated[
        list[Annotated[str, Field(pattern=EGRESS_RE, max_length=253)]], Field(max_length=64)
    ] = []
    limits: Limits = Limits()
    config_schema: dict[str, Any] | None = None
    schedules: Annotated[list[Schedule], Field(max_length=MAX_SCHEDULES)] = []

    @field_validator("capabilities", mode="before")
    @classmethod
    def _known_caps(cls, v: Any) -> Any:
        # Report unknown capabilities by name rather than as a long enum mismatch.
        if isinstance(v, list):
            for i, cap in enumerate(v):
                if isinstance(cap, str) and cap not in ALL_CAPABILITIES:
                    raise _IndexedError(i, f"unknown capability {cap!r}")
            if len(v) != len(set(map(str, v))):
                raise ValueError("lists a capability twice")
        return v

    @field_validator("egress")
    @classmethod
    def _egress_unique(cls, v: list[str]) -> list[str]:
        if len(v) != len(set(v)):
            raise ValueError("lists a host twice")
        return v

    @field_validator("config_schema")
    @classmethod
    def _config_schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        if _nesting_depth(v) > MAX_CONFIG_SCHEMA_DEPTH:
            # jsonschema checks a schema recursively: a few KB of nesting would exhaust the stack.
            raise ValueError(f"is nested deeper than {MAX_CONFIG_SCHEMA_DEPTH} levels")
        try:
            jsonschema.Draft202012Validator.check_schema(v)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"is not a valid JSON Schema: {exc.message}") from None
        except RecursionError:
            raise ValueError("is nested too deeply to check") from None
        if v.get("type", "object") != "object":
            raise ValueError("must describe an object (type: object)")
        return v

    @model_validator(mode="after")
    def _cross_field(self) -> Manifest:
        if self.egress and Capability.HTTP_FETCH not in self.capabilities:
            raise _FieldError("egress", "needs capability cap:http.fetch")
        if Capability.UI_PROXY in self.capabilities and self.ui is None:
            raise _FieldError("ui", "is required when capability cap:ui.proxy is requested")
        declared = {(ep.method, ep.path) for ep in (self.api.endpoints if self.api else [])}
        names: set[str] = set()
        for i, sched in enumerate(self.schedules):
            if sched.name in names:
                raise _FieldError(("schedules", i, "name"), f"repeats the schedule name {sched.name!r}")
            names.add(sched.name)
            if (sched.method, sched.path) not in declared:
                raise _FieldError(("schedules", i, "endpoint"), f"{sched.endpoint} is not in api.endpoints")
        return self


@dataclass(frozen=True)
class ManifestIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ManifestError(ValueError):
    """The manifest is invalid. `issues` lists every problem with its field path."""

    code = "invalid_manifest"

    def __init__(self, issues: list[ManifestIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


class _FieldError(ValueError):
    """Raised by cross-field validators to point at a specific field."""

    def __init__(self, field: str | tuple[str | int, ...], message: str) -> None:
        self.path: tuple[str | int, ...] = (field,) if isinstance(field, str) else field
        super().__init__(message)


class _IndexedError(ValueError):
    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


def _nesting_depth(value: Any) -> int:
    """How many containers deep `value` nests (iterative: safe on any depth)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _check_relative_path(v: str) -> None:
    if v.startswith("/") or "\\" in v or re.match(r"^[A-Za-z]:", v):
        raise ValueError("must be a relative path")
    parts = v.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError("must not contain empty, '.' or '..' segments")
    if any(p.startswith(".") for p in parts):
        raise ValueError("must not contain hidden segments")


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before", "function-plain", "function-wrap")):
            continue
        elif part in ("literal_error",) or "[" in part:
            # pydantic adds type tags such as `list[...]` to union locations; they are not field names.
            continue
        else:
            out += f".{part}" if out else part
    return out


_PATTERN_MESSAGES = {
    "name": "must be a lowercase reverse-domain name with at least two segments, e.g. com.acme.hello",
    "publisher": "must be a lowercase slug of letters, digits and '-', e.g. acme",
    "version": "must be a semantic version such as 1.2.3 or 1.2.3-rc.1",
    "schedules.name": "must be a lowercase slug of letters, digits and '-', at most 63 characters",
    "egress": (
        "must be a lowercase host name or '*.' + domain (not an IP address), without scheme, port or path"
    ),
}


def _issues_from(exc: ValidationError) -> list[ManifestIssue]:
    issues: list[ManifestIssue] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        cause = err.get("ctx", {}).get("error")
        message = str(err["msg"]).removeprefix("Value error, ")
        if isinstance(cause, _FieldError):
            loc = (*loc, *cause.path)  # the validator's own location, then the field it names
        elif isinstance(cause, _IndexedError):
            loc = (*loc, cause.index)
        if err["type"] == "string_pattern_mismatch":
            field = next((part for part in reversed(loc) if isinstance(part, str)), "")
            if loc[:1] == ("schedules",):
                field = f"schedules.{field}"
            message = _PATTERN_MESSAGES.get(field, message)
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "is required"
        issues.append(ManifestIssue(path=_loc_to_path(loc), message=message))
    return issues


def parse_manifest(data: Any) -> Manifest:
    """Validate decoded manifest JSON. Raises ManifestError naming each bad field."""
    if not isinstance(data, dict):
        raise ManifestError([ManifestIssue(path="", message="manifest must be a JSON object")])
    unfit = unstorable(data)
    if unfit is not None:
        raise ManifestError([ManifestIssue(path=dotted(unfit[0]), message=unfit[1])])
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(_issues_from(exc)) from None
    except RecursionError:
        raise ManifestError([ManifestIssue(path="", message="manifest is nested too deeply")]) from None


def parse_manifest_bytes(raw: bytes) -> Manifest:
    """Decode and validate `manifest.json` bytes (UTF-8 JSON, at most MAX_MANIFEST_BYTES)."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            [ManifestIssue(path="", message=f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")]
        )
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _JsonRejected as exc:
        raise ManifestError([ManifestIssue(path="", message=str(exc))]) from None
    except RecursionError:
        raise ManifestError([ManifestIssue(path="", message="manifest JSON is nested too deeply")]) from None
    except ValueError as exc:
        # UnicodeDecodeError, JSONDecodeError, and the int-digits limit (a number over 4300 digits).
        raise ManifestError(
            [ManifestIssue(path="", message=f"manifest is not valid UTF-8 JSON: {exc}")]
        ) from None
    return parse_manifest(data)


class _JsonRejected(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys are ambiguous (parsers disagree on which one wins): a signed manifest must mean
    # one thing to every reader, so refuse them instead of keeping the last.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonRejected(f"manifest JSON repeats the key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); Python's decoder accepts them by default.
    raise _JsonRejected(f"manifest JSON contains {name}, which is not valid JSON")


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of the manifest, as checked in at schema/manifest.schema.json."""
    doc = Manifest.model_json_schema(mode="validation")
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["$id"] = "https://extplane.dev/schemas/manifest.schema.json"
    return doc


def endpoint_matches(template: str, path: str) -> dict[str, str] | None:
    """Match a request path against an endpoint template; returns the ':param' values or None.

    Segments are compared after trimming the outer slashes; counts must be equal; a `:name`
    segment matches exactly one non-empty segment.
    """
    t_parts = template.strip("/").split("/") if template.strip("/") else []
    p_parts = path.strip("/").split("/") if path.strip("/") else []
    if len(t_parts) != len(p_parts):
        return None
    params: dict[str, str] = {}
    for t, p in zip(t_parts, p_parts, strict=True):
        if t.startswith(":"):
            if not p:
                return None
            params[t[1:]] = p
        elif t != p:
            return None
    return params
