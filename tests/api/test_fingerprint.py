"""The fingerprint an Idempotency-Key is bound to (no services: pure functions)."""

from __future__ import annotations

import hashlib

from api.operator.fingerprint import fingerprint
from core.codec import seal_secrets
from schema.install_rules import GrantSet
from schema.payloads.install import InstallOperation as Op
from schema.payloads.install import InstallRequest
from tests.workflows.helpers import fixed_keyring

SECRET = "hunter2"


def _request(op: Op = Op.SET_SECRETS, **kw: object) -> InstallRequest:
    return InstallRequest(request_id="k", operation=op, **kw)  # type: ignore[arg-type]


def test_the_same_secrets_give_the_same_fingerprint_although_they_seal_differently() -> None:
    keyring = fixed_keyring(1)
    secrets = {"api_key": SECRET}
    one = _request(secrets=seal_secrets(keyring, secrets))
    two = _request(secrets=seal_secrets(keyring, secrets))
    assert one.secrets != two.secrets  # sealing is randomized
    assert fingerprint(one, secrets=secrets, keyring=keyring) == fingerprint(
        two, secrets=secrets, keyring=keyring
    )
    other = fingerprint(one, secrets={"api_key": SECRET + "!"}, keyring=keyring)
    assert other["secrets"] != fingerprint(one, secrets=secrets, keyring=keyring)["secrets"]


def test_the_secrets_part_is_keyed_and_stable_across_a_rotation() -> None:
    secrets = {"api_key": SECRET}
    before = fingerprint(_request(), secrets=secrets, keyring=fixed_keyring(1))
    after = fingerprint(_request(), secrets=secrets, keyring=fixed_keyring(1, 2))  # a rotation adds v2
    assert before == after and before["secrets"].startswith("k1:")
    # Another keyring (another deployment) gives another digest: it is not a plain hash of the values.
    assert fingerprint(_request(), secrets=secrets, keyring=fixed_keyring(3))["secrets"] != before["secrets"]
    text = repr(before)
    for plain in (SECRET, '{"api_key":"hunter2"}'):
        assert plain not in text and hashlib.sha256(plain.encode()).hexdigest()[:32] not in text


def test_parts_are_set_only_for_what_the_request_carries() -> None:
    assert fingerprint(_request(Op.ENABLE), secrets=None, keyring=None) == {"operation": "enable"}
    fp = fingerprint(_request(Op.SET_DEBUG, debug_enabled=False), secrets=None, keyring=None)
    assert set(fp) == {"operation", "debug_enabled"}  # False is a value, not an omission
    a = fingerprint(_request(Op.SET_CONFIG, config={"a": 1, "b": [1, 2]}), secrets=None, keyring=None)
    b = fingerprint(_request(Op.SET_CONFIG, config={"b": [1, 2], "a": 1}), secrets=None, keyring=None)
    assert a == b  # canonical JSON: key order does not matter
    c = fingerprint(_request(Op.SET_CONFIG, config={"a": 1, "b": [2, 1]}), secrets=None, keyring=None)
    assert c["config"] != a["config"]


def test_consent_and_config_merge_are_parts_of_the_fingerprint() -> None:
    plain = fingerprint(_request(Op.UPGRADE, version="2.0.0"), secrets=None, keyring=None)
    accept = GrantSet.of(["cap:http.fetch"], ["api.example.com"])
    accepted = fingerprint(_request(Op.UPGRADE, version="2.0.0", accept=accept), secrets=None, keyring=None)
    assert set(accepted) - set(plain) == {"accept"}  # the same key with another consent is refused
    merge = fingerprint(_request(Op.SET_CONFIG, config={}, config_merge=True), secrets=None, keyring=None)
    replace = fingerprint(_request(Op.SET_CONFIG, config={}), secrets=None, keyring=None)
    assert set(merge) - set(replace) == {"config_merge"}


def test_drop_schedules_is_a_part_of_the_fingerprint_whatever_its_order() -> None:
    plain = fingerprint(_request(Op.UPGRADE, version="2.0.0"), secrets=None, keyring=None)

    def dropping(*names: str) -> dict[str, str]:
        req = _request(Op.UPGRADE, version="2.0.0", drop_schedules=list(names))
        return fingerprint(req, secrets=None, keyring=None)

    assert set(dropping("a", "b")) - set(plain) == {"drop_schedules"}
    assert dropping("a", "b") == dropping("b", "a", "a")
    assert dropping("a")["drop_schedules"] != dropping("a", "b")["drop_schedules"]
    # An empty list is given (the operator agrees to drop nothing): not the same as leaving it out.
    assert "drop_schedules" in dropping()
