"""Shared pieces of the fuzz tests: hypothesis profiles and JSON-ish strategies.

Profiles (pick one with EXT_FUZZ_PROFILE; CI=1 selects `fuzz-ci` by default):
  fuzz       the default: a bounded number of examples so the suite stays fast, random seeds
  fuzz-ci    the same counts, derandomized (a given commit always runs the same examples)
  fuzz-deep  50x the examples, for a long local session (`EXT_FUZZ_PROFILE=fuzz-deep pytest tests/fuzz`)

No example database: failures print their reproduction (`@reproduce_failure` / the falsifying
example), and the suite never writes a .hypothesis directory into the work tree.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("fuzz", max_examples=300, **_COMMON)
settings.register_profile("fuzz-ci", max_examples=300, derandomize=True, **_COMMON)
settings.register_profile("fuzz-deep", max_examples=15_000, **_COMMON)

PROFILE = os.environ.get("EXT_FUZZ_PROFILE") or ("fuzz-ci" if os.environ.get("CI") else "fuzz")
FUZZ = settings.get_profile(PROFILE)


def scaled(n: int) -> settings:
    """FUZZ with `n` examples, scaled like the profile (fuzz-deep runs 50x)."""
    factor = FUZZ.max_examples // 300 or 1
    return settings(FUZZ, max_examples=n * factor)


# ---------------------------------------------------------------------------------------- JSON
SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", " ", "/", "..", "ui/index.html", "cap:log.emit", "1.0.0", "GET", "\ud800", "\x00"]),
)

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)

# JSON that json.dumps can write and json.loads reads back as the same value (no NaN/inf).
STRICT_JSON: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
