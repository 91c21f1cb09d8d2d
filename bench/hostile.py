"""A hostile run: `python -m bench.hostile [--only a,b]` (also part of `make bench`).

Starts a full stack (cli.devstack.Stack, every service embedded, every app a real process; see
bench/_hostile_stack.py for its two tenants), measures a benign call of the victim tenant alone, then
runs each attack of bench/_attacks.py (issue 11's red-team findings) while the victim keeps calling.

Prints, per attack: contained or not (and why), and the victim's p50 and failed calls while it ran
against the victim's p50 alone; then `contained N/N`. The exit status is 1 when an attack was not
contained. No figure here is asserted anywhere: the tests prove each fix, this shows the whole.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

from bench._attacks import ATTACKS
from bench._hostile_stack import Hostile, prepare, probe
from bench._probe import ProbeResult
from bench.report import Row
from tests.faults.harness import FaultStack, clean_environ

BASELINE_S = 3.0
APP_SETTINGS = {
    # Heartbeats every 2 s, so a revoked debug viewer is noticed within the bench's patience.
    "EXT_DEBUG_HEARTBEAT_SECONDS": "2",
    # Fuel for 10x the deadline, so that the deadline, not fuel, is what ends a spinning guest.
    "EXT_FUEL_PER_MS": "20000000",
}


@dataclass(frozen=True)
class Outcome:
    name: str
    item: str
    contained: bool
    detail: str
    seconds: float
    victim_p50_ms: float
    victim_calls: int
    victim_failures: int


async def _baseline(h: Hostile) -> ProbeResult:
    p = probe(h)
    await p.start()
    await asyncio.sleep(BASELINE_S)
    return await p.stop()


async def run(only: set[str]) -> tuple[ProbeResult, list[Outcome]]:
    root = Path(tempfile.mkdtemp(prefix="extplane-hostile-"))
    fs = FaultStack(root / "stack", clean_environ())
    try:
        # The apps inherit this process's environment.
        with patch.dict(os.environ, APP_SETTINGS):
            await asyncio.to_thread(fs.up)
        h = await prepare(fs)
        alone = await _baseline(h)
        outcomes: list[Outcome] = []
        for name, item, attack in ATTACKS:
            if only and name not in only:
                continue
            sys.stderr.write(f"attack {name} (item {item}) ...\n")
            victim = probe(h)
            await victim.start()
            t0 = time.perf_counter()
            try:
                contained, detail = await attack(h)
            except Exception as exc:  # an attack that breaks the harness is not contained
                contained, detail = False, f"{type(exc).__name__}: {str(exc)[:200]}"
            seconds = time.perf_counter() - t0
            seen = await victim.stop()
            outcomes.append(
                Outcome(
                    name=name,
                    item=item,
                    contained=contained,
                    detail=detail,
                    seconds=seconds,
                    victim_p50_ms=seen.p50_ms(),
                    victim_calls=len(seen.latencies),
                    victim_failures=seen.failures,
                )
            )
        return alone, outcomes
    finally:
        await asyncio.to_thread(fs.down)
        shutil.rmtree(root, ignore_errors=True)


def report(alone: ProbeResult, outcomes: list[Outcome]) -> str:
    lines = [
        f"victim alone: p50 {alone.p50_ms():.1f} ms over {len(alone.latencies)} calls "
        f"({alone.failures} failed)",
        f"{'attack':<22}{'item':>6}  {'contained':<10}{'victim p50':>12}{'ratio':>8}{'failed':>9}  detail",
    ]
    base = alone.p50_ms()
    for o in outcomes:
        lines.append(
            f"{o.name:<22}{o.item:>6}  {'yes' if o.contained else 'NO':<10}{o.victim_p50_ms:>9.1f} ms"
            f"{o.victim_p50_ms / base:>7.2f}x{o.victim_failures:>5}/{o.victim_calls:<4} {o.detail}"
        )
    n = sum(o.contained for o in outcomes)
    lines.append(f"contained {n}/{len(outcomes)}")
    return "\n".join(lines)


def rows() -> list[Row]:
    """Figures for `python -m bench`; raises when an attack was not contained."""
    alone, outcomes = asyncio.run(run(set()))
    sys.stderr.write(report(alone, outcomes) + "\n")
    base = alone.p50_ms()
    out = [Row("victim p50, no attack", base, "ms")]
    for o in outcomes:
        out.append(
            Row(
                f"victim p50 during {o.name} (item {o.item})",
                o.victim_p50_ms,
                "ms",
                base,
                extra={"contained": o.contained, "failed": o.victim_failures, "detail": o.detail},
            )
        )
    n = sum(o.contained for o in outcomes)
    out.append(Row("attacks contained", float(n), f"of {len(outcomes)}"))
    missed = [o.name for o in outcomes if not o.contained]
    if missed:
        raise RuntimeError(f"not contained: {', '.join(missed)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated attack names")
    args = parser.parse_args()
    for key in ("EXT_GATEWAY_URL", "EXT_API_URL", "EXT_RUNNER_URL", "EXT_ADMIN_TOKEN"):
        os.environ.pop(key, None)
    alone, outcomes = asyncio.run(run({n for n in args.only.split(",") if n}))
    sys.stdout.write(report(alone, outcomes) + "\n")
    sys.exit(0 if all(o.contained for o in outcomes) else 1)


if __name__ == "__main__":
    main()
