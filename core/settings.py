"""Settings of every extplane process, read from `EXT_*` environment variables.

Each entry point builds its settings once and passes them down; nothing reads settings at import time.
Outside `EXT_ENV=dev|test` (that is, in prod) the dev shortcuts are refused at start, and what is left
unset takes the safe value (the reference system shipped with `local-runner-key`-style defaults that
production then ran with):

    every process   placeholder secrets refused; logs are JSON (EXT_LOG_FORMAT defaults to json,
                    console is refused)
    gateway         EXT_UI_SESSION_SECRET required (dev derives it from EXT_RUNNER_AUTH, which every
                    runner holds: any runner could mint UI sessions)
    runner          egress denied unless EXT_EGRESS_ALLOW names hosts (the dev default is `*`); a `*`
                    entry, EXT_EGRESS_ALLOW_PRIVATE and EXT_EGRESS_ALLOW_HTTP are refused
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.affinity import parse_cpus, usable
from schema.namespaces import NamespacePolicy
from schema.schedules import DEFAULT_MAX_PER_TENANT, DEFAULT_MIN_INTERVAL_S
from schema.temporal import CONTROL_TASK_QUEUE, compile_task_queue_for

MIN_SECRET_LENGTH = 16
# The published dev default: long enough for the length rule, so it is listed explicitly.
DEV_RUNNER_AUTH = "dev-runner-auth-not-for-prod"
WEAK_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "local-runner-key", "dev", "password", "admin", DEV_RUNNER_AUTH}
)
# EXT_RUNNER_URL value for the co-located mode: guests run inside the gateway process (runner.local).
LOCAL_RUNNER = "local:"
DEV_ENVS = ("dev", "test")


def is_weak_secret(value: str) -> bool:
    return value.lower() in WEAK_SECRETS or len(value) < MIN_SECRET_LENGTH


def _is_dev_input(data: Any) -> bool:
    """The environment named by raw settings input (before validation; `env` defaults to dev)."""
    return not isinstance(data, dict) or data.get("env", "dev") in DEV_ENVS


class CommonSettings(BaseSettings):
    """What every process needs: where the services are and which environment this is."""

    # hide_input_in_errors: a refused setting's error (printed when a process fails to start) must not
    # quote the input, which for a model validator is every setting, secrets included.
    model_config = SettingsConfigDict(
        env_prefix="EXT_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    env: Literal["dev", "test", "prod"] = "dev"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/extplane"
    redis_url: str = "redis://127.0.0.1:6379/0"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    data_dir: Path = Path(".extplane/data")
    log_format: Literal["console", "json"] = "console"
    log_level: str = "info"
    # Debug stream (docs/debug-stream.md): Redis streams `{prefix}{tenant}:{extension}`, written by
    # the runner, read by the gateway. Empty URL: EXT_REDIS_URL.
    debug_redis_url: str = ""
    debug_stream_prefix: str = "ext-debug:"
    debug_stream_maxlen: int = 2000

    @model_validator(mode="before")
    @classmethod
    def _prod_log_format(cls, data: Any) -> Any:
        # An unset format is JSON in prod: one object per line for the log pipeline, and no console
        # rendering of exceptions.
        if not _is_dev_input(data):
            return {"log_format": "json", **data}
        return data

    @model_validator(mode="after")
    def _prod_logs_are_json(self) -> Self:
        if not self.is_dev and self.log_format != "json":
            raise ValueError("EXT_LOG_FORMAT=console is for dev/test: logs are JSON outside dev")
        return self

    @property
    def debug_redis(self) -> str:
        return self.debug_redis_url or self.redis_url

    @property
    def is_dev(self) -> bool:
        return self.env in DEV_ENVS

    def require_strong(self, name: str, value: SecretStr) -> None:
        """Refuse a placeholder secret outside dev/test."""
        if not self.is_dev and is_weak_secret(value.get_secret_value()):
            raise ValueError(
                f"{name} is missing or a placeholder; set a random value of >= {MIN_SECRET_LENGTH} chars"
            )


class ApiSettings(CommonSettings):
    """Operator API and gateway."""

    admin_token: SecretStr = SecretStr("")
    # Comma-separated, round robin: http://host:port (HTTP hop), frame://host:port (the framed hop to
    # a runner's EXT_FRAME_PORT) or unix:/path. Or `local:` alone: guests run in this gateway process
    # (runner.local, configured by the runner's EXT_ settings; docs/deploy.md, co-located mode).
    runner_url: str = "http://127.0.0.1:8091"
    # Where the gateway fetches iframe UI files (the runner's HTTP port). Empty: the first http:// or
    # unix: entry of runner_url; required when every entry is frame://.
    runner_ui_url: str = ""
    runner_auth: SecretStr = SecretStr(DEV_RUNNER_AUTH)
    max_bundle_bytes: int = 200 * 1024 * 1024
    max_body_bytes: int = 10 * 1024 * 1024
    rate_limit_rps: float = 50.0
    rate_limit_burst: int = 100
    gateway_timeout_ms: int = 30_000
    # Gateway (api.gateway). The runner enforces the manifest's timeout; the gateway waits that long plus
    # this grace (capped by gateway_timeout_ms) before answering 504 itself.
    gateway_timeout_grace_ms: int = 1_000
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_workers: int = 1
    # SO_REUSEPORT on the gateway's socket: several single-worker gateway processes (each pinned with
    # EXT_CPUS in co-located mode) share one port and the kernel spreads connections over them.
    gateway_reuse_port: bool = False
    # Request line + headers, bounded in the HTTP protocol layer before they are buffered (431).
    gateway_max_header_bytes: int = 32 * 1024
    # In-process caches: the TTL is only a backstop, Redis pub/sub invalidation is the normal path.
    gateway_install_ttl_s: float = 60.0
    gateway_install_negative_ttl_s: float = 5.0
    gateway_install_cache_entries: int = 10_000
    gateway_token_ttl_s: float = 10.0  # also the bound on how long a revoked token keeps working
    gateway_token_negative_ttl_s: float = 5.0
    gateway_token_cache_entries: int = 10_000
    # Registry reads that unknown bearer tokens may start, per gateway process (a token bucket): past it
    # an uncached token gets 503 registry_unavailable without a query. Cached tokens are not affected.
    gateway_token_lookups_per_s: float = 200.0
    gateway_token_lookup_burst: int = 400
    # Rate limiter and pub/sub: fail fast (the limiter fails closed with 503).
    gateway_redis_timeout_ms: int = 500
    # Keep-alive connections to each runner; idle ones older than this are dropped well before the
    # runner's own keep-alive timeout (EXT_KEEP_ALIVE_S, 5 s) can close one under a reuse. A request
    # once written is never resent, so that race would cost a 502: keep idle_s below the runner's.
    # All connections in use: 503 runner_busy at once (no queue at the gateway).
    gateway_runner_connections: int = 64
    gateway_runner_idle_s: float = 2.0
    # Opening a connection to a runner; past it the call fails over to the next runner.
    gateway_runner_connect_timeout_ms: int = Field(default=1_000, gt=0)
    # The fraction of a runner's capacity one tenant may hold at once: here of each runner's
    # connections, in the runner of its threads and of its admitted slots (same variable,
    # EXT_TENANT_SHARE). Beyond it: 503 runner_busy. 1.0 turns fair sharing off.
    tenant_share: float = Field(default=0.5, gt=0.0, le=1.0)
    # execution_log: bounded queue, batched writes off the request path; overflow is dropped and counted.
    gateway_log_queue: int = 10_000
    gateway_log_batch: int = 500
    gateway_log_flush_ms: int = 200
    # Debug stream sessions (api.gateway.debug_stream): replay, heartbeats, a hard session limit.
    debug_max_session_seconds: float = 900.0
    debug_tail_default: int = 200
    debug_tail_max: int = 2000
    debug_heartbeat_seconds: float = 15.0
    debug_retry_max_seconds: float = 5.0
    debug_max_sessions: int = 200
    # Extension UIs (api.gateway.ui, docs/ui.md): the host page's session cookie and `?token=` tickets
    # are HMAC-signed with this key (shared by all gateway processes). Required outside dev; in dev an
    # empty one is derived from runner_auth.
    ui_session_secret: SecretStr = SecretStr("")
    ui_session_ttl_s: int = 900
    # (name, content hash) -> published, verified, not revoked: cached this long (misses: 5 s).
    ui_version_ttl_s: float = 30.0

    # Whether this process serves extension UIs (the gateway). The operator API shares these settings
    # but signs no UI session, so it needs no UI session secret.
    serves_ui: ClassVar[bool] = True

    @property
    def runner_urls(self) -> list[str]:
        return [u for u in (u.strip() for u in self.runner_url.split(",")) if u]

    @property
    def colocated(self) -> bool:
        """EXT_RUNNER_URL=local:: guests run in this process (runner.local)."""
        return self.runner_urls == [LOCAL_RUNNER]

    @property
    def runner_http_url(self) -> str:
        """The runner base URL for HTTP-only routes (iframe UI files)."""
        if self.runner_ui_url:
            return self.runner_ui_url
        for url in self.runner_urls:
            if not url.startswith(("frame://", LOCAL_RUNNER)):
                return url
        raise ValueError(
            "EXT_RUNNER_UI_URL is required when no EXT_RUNNER_URL entry is http:// or unix: "
            "(extension UI files are served by a runner's HTTP port)"
        )

    @model_validator(mode="after")
    def _strong(self) -> Self:
        self.require_strong("EXT_RUNNER_AUTH", self.runner_auth)
        if LOCAL_RUNNER in self.runner_urls and not self.colocated:
            raise ValueError(
                "EXT_RUNNER_URL=local: runs guests in this process and cannot be mixed with other runners"
            )
        if self.admin_token.get_secret_value():
            self.require_strong("EXT_ADMIN_TOKEN", self.admin_token)
        if self.serves_ui:
            self.runner_http_url  # noqa: B018 -- fails at start rather than at the first UI request
            self.require_strong("EXT_UI_SESSION_SECRET", self.ui_session_secret)
        return self


class RunnerSettings(CommonSettings):
    """The wasmtime runner (`python -m runner`).

    Operator maxima clamp what an execute envelope asks for. Egress is deny-by-default: a guest may reach
    a host only if the manifest's egress list names it AND `egress_allow` does, and the host resolves to
    a public address (or one inside `egress_allow_cidrs`); cloud metadata addresses are never reachable.
    """

    host: str = "127.0.0.1"
    port: int = 8091
    # The framed execute hop (schema.runner_frames; gateways list it as frame://host:PORT), on `host`
    # beside the HTTP port, which still serves /v1/execute, /healthz, /metrics and /ext-ui. Unset: off.
    frame_port: int | None = Field(default=None, ge=0, le=65535)
    # Framed connections served at once, a thread each (idle ones sleep in recv); beyond, closed at
    # accept. Gateways hold up to EXT_GATEWAY_RUNNER_CONNECTIONS each per runner.
    frame_max_connections: int = Field(default=512, ge=1)
    runner_auth: SecretStr = SecretStr(DEV_RUNNER_AUTH)
    # CPUs this process and its threads run on (core.affinity; "0", "0-3"); empty: any it may use.
    # One runner per CPU, each pinned, is the fast layout (docs/performance.md).
    cpus: str = ""
    # "1:<base64 32 bytes>,2:..." as for the worker; the runner only unwraps (core.crypto).
    master_keys: SecretStr = SecretStr("")
    max_timeout_ms: int = 30_000
    max_memory_mb: int = 256
    fuel_per_ms: int = 2_000_000
    max_fuel: int = 60_000_000_000
    epoch_tick_ms: int = 5
    threads: int = 4
    queue_depth: int = 64
    # One tenant holds at most this fraction of the threads and of threads + queue_depth (at least
    # one of each); beyond it its calls get 503 runner_busy while other tenants are still served.
    tenant_share: float = Field(default=0.5, gt=0.0, le=1.0)
    # uvicorn's keep-alive timeout; the gateway drops idle connections sooner (gateway_runner_idle_s).
    keep_alive_s: int = 5
    component_cache_bytes: int = 512 * 1024 * 1024
    # Matches the gateway's body cap (ApiSettings.max_body_bytes): a body the gateway admits must not
    # fail in the runner.
    max_request_bytes: int = 10 * 1024 * 1024
    max_response_bytes: int = 1024 * 1024
    # Per request: guest stdout/stderr beyond this is dropped (the event says truncated).
    max_output_bytes: int = 8 * 1024
    max_log_events: int = 100
    secrets_cache_entries: int = 1024
    storage_max_value_bytes: int = 64 * 1024
    storage_max_keys: int = 10_000
    storage_max_bytes: int = 10 * 1024 * 1024
    storage_timeout_ms: int = 2_000
    # Dev default `*` (the manifest's list alone decides); unset outside dev means no egress at all.
    egress_allow: list[str] = Field(default_factory=lambda: ["*"])
    egress_allow_http: bool = False
    egress_allow_private: bool = False
    egress_allow_cidrs: list[str] = Field(default_factory=list)
    # Static name resolution (like curl --resolve): host -> IP, checked like any DNS answer.
    egress_resolve: dict[str, str] = Field(default_factory=dict)
    egress_timeout_ms: int = 10_000
    egress_max_response_bytes: int = 1024 * 1024
    egress_max_redirects: int = 3
    # Redis debug sink: events wait in a bounded buffer (drop-oldest) for one publisher thread.
    debug_sink: Literal["redis", "memory"] = "redis"
    debug_buffer_events: int = 10_000
    debug_batch_events: int = 256
    debug_retry_max_seconds: float = 5.0
    # Iframe UIs (/ext-ui, runner._ui): the only origin allowed to frame them (CSP frame-ancestors).
    # Empty means 'self': right when the gateway passes /ext-ui through on its own origin.
    gateway_url: str = ""
    ui_cache_bundles: int = 32
    # Co-located mode only (runner.local, runner._inline): a call runs on the gateway's event loop
    # thread, without a thread hand-off, once its install's last calls each took under this much
    # CPU time and it grants neither storage nor http. 0: every call on the guest threads.
    local_inline_us: int = Field(default=2_000, ge=0)

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: str) -> str:
        if value.strip():
            try:
                usable(parse_cpus(value))
            except ValueError as exc:
                raise ValueError(f"EXT_CPUS={value!r}: {exc}") from None
        return value.strip()

    @property
    def cpu_set(self) -> frozenset[int] | None:
        """The CPUs EXT_CPUS pins this runner to; None: not pinned."""
        return parse_cpus(self.cpus) if self.cpus else None

    @model_validator(mode="before")
    @classmethod
    def _prod_egress(cls, data: Any) -> Any:
        if not _is_dev_input(data):
            return {"egress_allow": [], **data}
        return data

    @model_validator(mode="after")
    def _strong(self) -> Self:
        self.require_strong("EXT_RUNNER_AUTH", self.runner_auth)
        if self.is_dev:
            return self
        if self.egress_allow_http:
            raise ValueError("EXT_EGRESS_ALLOW_HTTP is for dev/test only: egress is https outside dev")
        if "*" in self.egress_allow:
            raise ValueError(
                "EXT_EGRESS_ALLOW must name the hosts guests may reach (exact or '*.domain') outside dev, "
                "not '*'"
            )
        if self.egress_allow_private:
            raise ValueError(
                "EXT_EGRESS_ALLOW_PRIVATE is for dev/test only: allow private ranges one by one with "
                "EXT_EGRESS_ALLOW_CIDRS"
            )
        return self


class WorkerSettings(CommonSettings):
    """The Temporal worker: activities hold the registry, blob store and keyring."""

    # "1:<base64 32 bytes>,2:<base64 32 bytes>"; the highest version wraps new data keys.
    master_keys: SecretStr = SecretStr("")
    rotation_schedule_cron: str = "0 3 * * 0"
    # Task queues this worker polls; tests use a uuid queue. The compile queue is derived from the
    # control queue (schema.temporal.compile_task_queue_for) so workflows need no settings.
    control_task_queue: str = CONTROL_TASK_QUEUE
    # Which queues this process serves: "control", "compile", or both (comma-separated).
    worker_queues: str = "control,compile"
    # Blob store root (bundles, artifacts, staged uploads); default `<data_dir>/blobs`.
    blob_dir: Path | None = None
    compile_threads: int = 2
    max_concurrent_activities: int = 50
    # A new name in a namespace nobody registered: `claim` (its first publish claims the namespace for
    # the publisher, audited) or `strict` (refused until an admin registers it; for production).
    namespace_policy: NamespacePolicy = NamespacePolicy.CLAIM
    # Manifest schedules (schema.schedules): the shortest interval a cron may fire at, and how many
    # schedules all installs of one tenant may declare together.
    schedule_min_interval_s: int = Field(default=DEFAULT_MIN_INTERVAL_S, ge=60)
    schedule_max_per_tenant: int = Field(default=DEFAULT_MAX_PER_TENANT, ge=0)
    # Scheduled runs call a runner like the gateway does: its http:// or unix: URL and shared secret.
    runner_url: str = "http://127.0.0.1:8091"
    runner_auth: SecretStr = SecretStr(DEV_RUNNER_AUTH)

    @property
    def blob_root(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def compile_task_queue(self) -> str:
        return compile_task_queue_for(self.control_task_queue)

    @property
    def runner_http_urls(self) -> list[str]:
        """The http:// and unix: entries of runner_url, in order (a shared EXT_RUNNER_URL may list
        frame:// entries for gateways; scheduled runs use HTTP and fail over between these)."""
        urls = [
            u for u in (u.strip() for u in self.runner_url.split(",")) if u and not u.startswith("frame://")
        ]
        if not urls:
            raise ValueError("EXT_RUNNER_URL has no http:// or unix: entry for scheduled runs")
        return urls

    @model_validator(mode="after")
    def _keys(self) -> Self:
        if not self.is_dev and not self.master_keys.get_secret_value():
            raise ValueError("EXT_MASTER_KEYS is missing; set '<version>:<base64 32 bytes>' entries")
        self.require_strong("EXT_RUNNER_AUTH", self.runner_auth)
        self.runner_http_urls  # noqa: B018 -- fails at start rather than at the first scheduled run
        return self
