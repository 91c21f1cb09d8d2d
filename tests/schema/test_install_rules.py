"""schema.install_rules: grants of install/upgrade/rollback and the rollback target (pure rules)."""

from __future__ import annotations

from typing import Any

from schema.install_rules import GrantSet, change_grant, install_grant, ran_before, rollback_target

DEFAULTS = ["cap:context.read", "cap:log.emit", "cap:user.read"]
HTTP = "cap:http.fetch"
KV = "cap:storage.kv"


def doc(*caps: str, egress: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"capabilities": list(caps), "egress": list(egress)}


def test_install_grants_what_is_requested_minus_deny() -> None:
    d = install_grant(doc(HTTP, KV, egress=("a.example", "b.example")), GrantSet.of([KV], ["b.example"]))
    assert d.problem == ""
    assert d.requested == GrantSet.of([*DEFAULTS, HTTP, KV], ["a.example", "b.example"])
    assert d.granted == GrantSet.of([*DEFAULTS, HTTP], ["a.example"])


def test_deny_of_a_default_or_of_what_is_not_requested_is_a_problem() -> None:
    assert "default" in install_grant(doc(KV), GrantSet.of(["cap:log.emit"], [])).problem
    assert "does not request" in install_grant(doc(KV), GrantSet.of([HTTP], [])).problem
    assert "egress x.example" in install_grant(doc(KV), GrantSet.of([], ["x.example"])).problem


def test_upgrade_adding_a_capability_and_a_host_needs_exactly_their_acceptance() -> None:
    current, target = doc(KV), doc(KV, HTTP, egress=("api.example",))
    now = install_grant(current, None).granted
    refused = change_grant(current, now, target, accept=None, deny=None)
    assert refused.diff == refused.missing == GrantSet.of([HTTP], ["api.example"])
    fewer = change_grant(current, now, target, accept=GrantSet.of([HTTP], []), deny=None)
    assert fewer.missing == GrantSet.of([], ["api.example"]) and fewer.problem == ""
    more = change_grant(current, now, target, accept=GrantSet.of([HTTP, KV], ["api.example"]), deny=None)
    assert "does not add: cap:storage.kv" in more.problem
    ok = change_grant(current, now, target, accept=GrantSet.of([HTTP], ["api.example"]), deny=None)
    assert (ok.problem, bool(ok.missing)) == ("", False)
    assert ok.granted == GrantSet.of([*DEFAULTS, HTTP, KV], ["api.example"])


def test_denying_what_a_change_adds_replaces_accepting_it() -> None:
    current, target = doc(KV), doc(KV, HTTP, egress=("api.example",))
    now = install_grant(current, None).granted
    d = change_grant(
        current, now, target, accept=GrantSet.of([HTTP], []), deny=GrantSet.of([], ["api.example"])
    )
    assert (d.problem, bool(d.missing)) == ("", False)
    assert d.granted == GrantSet.of([*DEFAULTS, HTTP, KV], [])


def test_a_standing_denial_is_kept_and_needs_no_new_consent() -> None:
    current = doc(KV, HTTP, egress=("api.example",))
    now = install_grant(current, GrantSet.of([HTTP], ["api.example"])).granted
    target = doc(KV, HTTP, egress=("api.example", "new.example"))
    d = change_grant(current, now, target, accept=None, deny=None)
    assert d.missing == GrantSet.of([], ["new.example"])
    d = change_grant(current, now, target, accept=GrantSet.of([], ["new.example"]), deny=None)
    assert d.granted == GrantSet.of([*DEFAULTS, KV], ["new.example"])


def test_a_change_that_asks_for_less_needs_no_consent() -> None:
    current = doc(KV, HTTP, egress=("api.example",))
    d = change_grant(current, install_grant(current, None).granted, doc(KV), accept=None, deny=None)
    assert (d.problem, bool(d.missing), bool(d.diff)) == ("", False, False)
    assert d.granted == GrantSet.of([*DEFAULTS, KV], [])


def test_what_a_rollback_shrank_away_needs_consent_again() -> None:
    old, new = doc(KV), doc(KV, HTTP)
    back_at_old = install_grant(old, None).granted  # granted after rolling back from `new`
    assert change_grant(old, back_at_old, new, accept=None, deny=None).missing == GrantSet.of([HTTP], [])


def test_rollback_target_walks_back_through_history_not_forth() -> None:
    moves: list[tuple[str, str | None, str | None]] = [
        ("install", None, "1.0.0"),
        ("upgrade", "1.0.0", "3.0.0"),
        ("upgrade", "3.0.0", "2.0.0"),
    ]
    assert rollback_target(moves) == "3.0.0"  # the previous in history, not the previous semver
    moves.append(("rollback", "2.0.0", "3.0.0"))
    assert rollback_target(moves) == "1.0.0"  # not back up to 2.0.0
    moves.append(("set_config", "3.0.0", "3.0.0"))
    moves.append(("rollback", "3.0.0", "1.0.0"))
    assert rollback_target(moves) is None
    assert rollback_target([("install", None, "1.0.0"), ("install", "1.0.0", "1.0.0")]) is None


def test_ran_before_knows_every_version_of_the_history() -> None:
    moves: list[tuple[str, str | None, str | None]] = [
        ("install", None, "1.0.0"),
        ("upgrade", "1.0.0", "2.0.0"),
    ]
    assert ran_before(moves, "1.0.0") and ran_before(moves, "2.0.0")
    assert not ran_before(moves, "1.5.0")
