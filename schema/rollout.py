"""Rules of a fleet rollout, pure so the operator API refuses bad input before a workflow starts and
the workflow applies the same rules deterministically: wave sizes and the regression check.

Waves are cumulative: `1,10,50%` means 1 install after the first wave, 10 after the second, half of
the selected installs after the third; a last wave to 100% is added when the given ones stop short.
A percentage rounds up (1% of 5 installs is 1). Waves that would add nobody (`5,5` or `1` of one
install followed by `50%`) are dropped.
"""

from __future__ import annotations

import math
import re

from schema.payloads.rollout import MAX_WAVES, RolloutThresholds, WaveMetrics

_WAVE = re.compile(r"^(?:(\d{1,9})|(\d{1,3}(?:\.\d{1,3})?)%)$")


def check_waves(specs: list[str]) -> str:
    """Why `specs` is not a wave list (empty when it is)."""
    if not specs:
        return "waves must name at least one wave"
    if len(specs) > MAX_WAVES:
        return f"at most {MAX_WAVES} waves"
    last_count, last_pct = 0, 0.0
    for spec in specs:
        m = _WAVE.fullmatch(spec.strip())
        if m is None:
            return f"wave {spec!r} is neither a count (10) nor a percentage (50%)"
        if m.group(1) is not None:
            count = int(m.group(1))
            if count < 1 or count < last_count:
                return f"wave {spec!r}: counts are cumulative, >= 1 and non-decreasing"
            last_count = count
        else:
            pct = float(m.group(2))
            if not 0 < pct <= 100 or pct < last_pct:
                return f"wave {spec!r}: percentages are cumulative, in (0, 100] and non-decreasing"
            last_pct = pct
    return ""


def wave_bounds(specs: list[str], total: int) -> list[int]:
    """Cumulative install counts at the end of each wave; the last is `total` ([] when total is 0)."""
    bounds: list[int] = []
    for spec in specs:
        s = spec.strip()
        n = math.ceil(float(s[:-1]) * total / 100) if s.endswith("%") else int(s)
        n = min(n, total)
        if n > (bounds[-1] if bounds else 0):
            bounds.append(n)
    if total and (not bounds or bounds[-1] < total):
        bounds.append(total)
    return bounds


def regression(m: WaveMetrics, th: RolloutThresholds) -> str:
    """Why a wave regressed (empty when it did not). With fewer than `min_calls` calls on the new
    version there is no evidence either way and the wave passes."""
    if m.new_calls < th.min_calls:
        return ""
    rise = m.new_error_rate - m.old_error_rate
    if rise > th.max_error_rate_increase:
        return (
            f"error rate {m.new_error_rate:.2%} on the new version vs {m.old_error_rate:.2%} before "
            f"(allowed increase {th.max_error_rate_increase:.2%})"
        )
    if m.old_p99_ms > 0 and m.new_p99_ms > m.old_p99_ms * th.max_p99_ratio:
        return (
            f"p99 {m.new_p99_ms:.1f} ms on the new version vs {m.old_p99_ms:.1f} ms before "
            f"(allowed ratio {th.max_p99_ratio:g})"
        )
    return ""
