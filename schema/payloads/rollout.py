"""Fleet rollout of one extension version, in waves (`WorkflowType.ROLLOUT`, id `rollout/<rollout id>`).

One RolloutWorkflow per rollout. It selects the installs once, then per wave: upgrades the wave's
installs through their install entity (Update INSTALL_APPLY_UPDATE, request id
`rollout-<id>-<wave>-upgrade`), soaks, compares the wave's execution_log error rate and p99 on the new
version against the same installs on their old version in an equal window before the upgrade, and
continues as new. A regression (or a refused upgrade) halts the rollout and rolls back every install it
upgraded (request id `rollout-<id>-<wave>-rollback`, the wave the install was upgraded in).

Updates: ROLLOUT_PAUSE_UPDATE, ROLLOUT_RESUME_UPDATE, ROLLOUT_ABORT_UPDATE (RolloutControl ->
RolloutStatus); query ROLLOUT_STATUS_QUERY -> RolloutStatus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

DEFAULT_WAVES = ("1", "10%", "100%")
DEFAULT_SOAK_SECONDS = 300.0
# An absolute increase of the error rate (0.02 = two percentage points) that counts as a regression.
DEFAULT_MAX_ERROR_RATE_INCREASE = 0.02
# The new p99 may be at most this many times the old one.
DEFAULT_MAX_P99_RATIO = 1.5
# Fewer calls than this on the new version in a wave's soak: too little evidence, the wave passes.
DEFAULT_MIN_CALLS = 1
MAX_WAVES = 20


class RolloutPhase(StrEnum):
    """The `RolloutState` search attribute and `RolloutStatus.state`."""

    RUNNING = "running"  # selecting installs or upgrading a wave
    SOAKING = "soaking"  # waiting out a wave's soak period
    PAUSED = "paused"  # held between waves by a pause
    ROLLING_BACK = "rolling_back"
    COMPLETED = "completed"  # every selected install upgraded, no regression
    ROLLED_BACK = "rolled_back"  # a regression or a refused upgrade; upgraded installs are back
    ABORTED = "aborted"  # an operator abort; upgraded installs rolled back unless asked not to

    @property
    def terminal(self) -> bool:
        return self in (RolloutPhase.COMPLETED, RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED)


@dataclass(frozen=True, kw_only=True)
class RolloutThresholds:
    max_error_rate_increase: float = DEFAULT_MAX_ERROR_RATE_INCREASE
    max_p99_ratio: float = DEFAULT_MAX_P99_RATIO
    min_calls: int = DEFAULT_MIN_CALLS


@dataclass(frozen=True, kw_only=True)
class RolloutTarget:
    """One install the rollout moves, with the version it was at when selected."""

    tenant_id: str
    install_id: str
    from_version: str


@dataclass(frozen=True, kw_only=True)
class InstallOutcome:
    tenant_id: str
    install_id: str
    wave: int
    # upgraded | rolled_back | skipped (gone or no-op) | failed
    result: str
    error: str = ""
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class WaveMetrics:
    """execution_log of one wave's installs: new version since the upgrade vs old version before."""

    new_calls: int = 0
    new_errors: int = 0
    new_p99_ms: float = 0.0
    old_calls: int = 0
    old_errors: int = 0
    old_p99_ms: float = 0.0

    @property
    def new_error_rate(self) -> float:
        return self.new_errors / self.new_calls if self.new_calls else 0.0

    @property
    def old_error_rate(self) -> float:
        return self.old_errors / self.old_calls if self.old_calls else 0.0


@dataclass(frozen=True, kw_only=True)
class WaveReport:
    wave: int
    installs: int
    upgraded_at: str  # ISO-8601, when the wave's upgrades were sent
    metrics: WaveMetrics | None = None
    regression: str = ""  # why the wave failed its check; empty when it passed


@dataclass(frozen=True, kw_only=True)
class RolloutProgress:
    """Everything a run carries over continue-as-new."""

    targets: list[RolloutTarget] = field(default_factory=list)
    # Cumulative install counts at the end of each wave (bounds[-1] == len(targets)).
    bounds: list[int] = field(default_factory=list)
    selected: bool = False
    next_wave: int = 0  # index of the wave the next run upgrades
    paused: bool = False
    outcomes: list[InstallOutcome] = field(default_factory=list)
    waves: list[WaveReport] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class RolloutInput:
    rollout_id: str
    extension: str
    version: str
    # None: every tenant with an install of `extension`.
    tenants: list[str] | None = None
    # Cumulative wave sizes: "N" installs or "P%" of the selected installs, non-decreasing; a final
    # 100% wave is added when the last one does not reach every install.
    waves: list[str] = field(default_factory=lambda: list(DEFAULT_WAVES))
    soak_seconds: float = DEFAULT_SOAK_SECONDS
    thresholds: RolloutThresholds = field(default_factory=RolloutThresholds)
    actor: str = "system"
    progress: RolloutProgress | None = None


@dataclass(frozen=True, kw_only=True)
class RolloutStatus:
    rollout_id: str
    extension: str
    version: str
    state: RolloutPhase
    wave: int  # waves finished so far
    waves_total: int
    installs_total: int
    upgraded: int  # installs at the new version by this rollout right now
    rolled_back: int
    failed: int
    paused: bool = False
    reason: str = ""
    waves: list[WaveReport] = field(default_factory=list)
    outcomes: list[InstallOutcome] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class RolloutControl:
    """Argument of pause/resume/abort. `rollback` (abort only): roll back what was upgraded."""

    actor: str = "system"
    reason: str = ""
    rollback: bool = True


# --- activities -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SelectTargetsInput:
    extension: str
    version: str
    tenants: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class SelectTargetsResult:
    targets: list[RolloutTarget]


@dataclass(frozen=True, kw_only=True)
class WaveTarget:
    """A target with the wave it was upgraded in: the wave names the request id."""

    wave: int
    target: RolloutTarget


@dataclass(frozen=True, kw_only=True)
class ApplyWaveInput:
    """Upgrade (or roll back, to each target's from_version) a batch through the install entities."""

    rollout_id: str
    extension: str
    operation: str  # "upgrade" | "rollback"
    version: str = ""  # the upgrade's target version
    targets: list[WaveTarget] = field(default_factory=list)
    actor: str = "system"


@dataclass(frozen=True, kw_only=True)
class ApplyWaveResult:
    outcomes: list[InstallOutcome]
    at: str  # ISO-8601 time the changes were sent (the start of the wave's metrics window)


@dataclass(frozen=True, kw_only=True)
class MeasureWaveInput:
    extension: str
    version: str
    targets: list[RolloutTarget]
    since: str  # ISO-8601


def rollout_request_id(rollout_id: str, wave: int, operation: str) -> str:
    """The install entity dedupes by request id: a retried or replayed send is a no-op."""
    return f"rollout-{rollout_id}-{wave}-{operation}"
