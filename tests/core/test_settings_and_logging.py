"""Outside dev, placeholder secrets and dev shortcuts are refused; logs never carry secrets: secret-looking
keys are redacted, tracebacks name no local variable, credentials in text are masked."""

from __future__ import annotations

import ast
import json
import logging
import traceback
from typing import Any

import pytest
import structlog
from pydantic import SecretStr, ValidationError

from api.gateway.ui import _signing_key
from api.operator.settings import OperatorSettings
from core.crypto import Keyring
from core.logging import REDACTED, configure_logging, scrub
from core.settings import ApiSettings, CommonSettings, RunnerSettings


@pytest.mark.parametrize("cls", [ApiSettings, RunnerSettings])
def test_weak_runner_secret_is_refused_in_prod(cls: type[ApiSettings] | type[RunnerSettings]) -> None:
    with pytest.raises(ValidationError, match="EXT_RUNNER_AUTH"):
        cls(env="prod", runner_auth="changeme")
    cls(env="dev", runner_auth="changeme")
    ui: dict[str, Any] = {"ui_session_secret": "u" * 32} if cls is ApiSettings else {}
    cls(env="prod", runner_auth="a-long-random-value-1234567890", **ui)


def test_secret_keys_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json", level="info")
    try:
        structlog.get_logger("t").info("secrets_set", secret_value="hunter2", api_token="tok", tenant="t1")
        err = capsys.readouterr().err.strip().splitlines()[-1]
        line = json.loads(err)
        assert line["secret_value"] == REDACTED and line["api_token"] == REDACTED
        assert line["tenant"] == "t1" and "hunter2" not in err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_tracebacks_name_no_local_variable(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """structlog's defaults render locals (rich's show_locals, ExceptionDictTransformer): a secret held
    in a local of a failing frame, or a scope with its headers, would be written out."""
    configure_logging(fmt=fmt, level="info")
    try:
        plaintext = {"api_key": "sk-live-plaintext-value"}  # noqa: F841 - the local that must not print
        scope = {"headers": [(b"authorization", b"Bearer tok-in-scope-0123456789")]}  # noqa: F841
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            structlog.get_logger("t").exception("unhandled_error")
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        err = capsys.readouterr().err
        assert err.count("RuntimeError") >= 2, err  # the traceback itself is still there
        assert "sk-live-plaintext-value" not in err and "tok-in-scope" not in err, err
        if fmt == "json":  # one object per line, the traceback as structured frames (no "locals")
            records = [json.loads(line) for line in err.splitlines()]
            assert all(r["exception"][0]["frames"] for r in records), records
            assert all("locals" not in f for r in records for f in r["exception"][0]["frames"])
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


def test_scrub_masks_credentials_in_text() -> None:
    text = scrub(
        "headers=[(b'authorization', b'Bearer abcdefghijkl'), (b'x-runner-auth', b'runner-secret-1')] "
        "{'cookie': 'ext_ui=sess-1234'} Authorization: Bearer plain-token-123 x-runner-auth=raw-456"
    )
    for value in ("abcdefghijkl", "runner-secret-1", "sess-1234", "plain-token-123", "raw-456"):
        assert value not in text, text
    assert text.count(REDACTED) == 5, text


def test_keyring_repr_names_versions_only() -> None:
    ring = Keyring.parse(f"{Keyring.generate_entry(1)},{Keyring.generate_entry(2)}")
    assert repr(ring) == "Keyring(versions=[1, 2])"
    assert all(repr(k)[2:12] not in repr(ring) for k in ring.keys.values())


STRONG = "s" * 32


def test_prod_logs_are_json() -> None:
    assert CommonSettings(env="prod").log_format == "json"
    assert CommonSettings(env="dev").log_format == "console"
    with pytest.raises(ValidationError, match="EXT_LOG_FORMAT=console is for dev/test"):
        CommonSettings(env="prod", log_format="console")


def test_gateway_needs_its_own_ui_session_secret_in_prod() -> None:
    with pytest.raises(ValidationError, match="EXT_UI_SESSION_SECRET"):
        ApiSettings(env="prod", runner_auth=STRONG)
    with pytest.raises(ValidationError, match="EXT_UI_SESSION_SECRET"):
        ApiSettings(env="prod", runner_auth=STRONG, ui_session_secret="changeme")
    ApiSettings(env="prod", runner_auth=STRONG, ui_session_secret="u" * 32)
    ApiSettings(env="dev")  # dev derives it (api.gateway.ui)
    # The operator API shares ApiSettings but signs no UI session.
    OperatorSettings(env="prod", runner_auth=STRONG, master_keys=Keyring.generate_entry(1))


def test_ui_signing_key_is_never_derived_from_runner_auth_outside_dev() -> None:
    prod = ApiSettings.model_construct(
        env="prod", runner_auth=SecretStr(STRONG), ui_session_secret=SecretStr("")
    )
    with pytest.raises(ValueError, match="EXT_UI_SESSION_SECRET is required outside dev"):
        _signing_key(prod)
    dev = ApiSettings(env="dev", runner_auth=STRONG)
    assert _signing_key(dev) != _signing_key(
        ApiSettings(env="dev", runner_auth=STRONG, ui_session_secret="u" * 32)
    )


def test_runner_egress_is_denied_by_default_in_prod() -> None:
    assert RunnerSettings(env="prod", runner_auth=STRONG).egress_allow == []
    assert RunnerSettings(env="dev").egress_allow == ["*"]
    allowed = RunnerSettings(
        env="prod", runner_auth=STRONG, egress_allow=["api.example.com", "*.example.org"]
    )
    assert allowed.egress_allow == ["api.example.com", "*.example.org"]
    with pytest.raises(ValidationError, match="EXT_EGRESS_ALLOW must name the hosts"):
        RunnerSettings(env="prod", runner_auth=STRONG, egress_allow=["*"])
    with pytest.raises(ValidationError, match="EXT_EGRESS_ALLOW_PRIVATE is for dev/test only"):
        RunnerSettings(env="prod", runner_auth=STRONG, egress_allow_private=True)
    assert RunnerSettings(env="test", egress_allow_private=True).egress_allow_private


def test_a_refused_setting_does_not_quote_the_input() -> None:
    with pytest.raises(ValidationError) as info:
        ApiSettings(env="prod", runner_auth="x" * 20 + "tail-of-a-secret", ui_session_secret="changeme")
    assert "tail-of-a-secret" not in str(info.value)


def _failing() -> None:
    cause = {"a": 1}
    try:
        cause["b"]
    except KeyError as exc:
        raise RuntimeError("wrapped " + str(len(cause))) from exc


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_logging_a_traceback_parses_no_source(
    fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's traceback text ast.parse()s each frame's line for its `^^^^` carets, and its AST
    conversion has module-wide state (gh-106905): a server thread logging a traceback broke an
    ast.parse in the test's own thread. Logged tracebacks keep frames, lines and causes, no carets."""
    parsed: list[str] = []
    real_parse = ast.parse

    def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(str(source))
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting)
    configure_logging(fmt=fmt, level="info")
    try:
        try:
            _failing()
        except RuntimeError:
            structlog.get_logger("t").exception("unhandled_error")
            logging.getLogger("temporalio.activity").exception("Completing activity as failed")
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert parsed == []
    if fmt == "console":
        assert err.count("RuntimeError: wrapped 1") == 2 and err.count("KeyError: 'b'") == 2, err
        assert 'cause["b"]' in err and "^^^" not in err, err
    else:
        assert err.count('"exc_type": "RuntimeError"') == 2 and err.count('"exc_type": "KeyError"') == 2
    # The standard library's own rendering does parse: without the formatter above, this would fail.
    traceback.format_exception(*_exc_info())
    assert parsed


def _exc_info() -> tuple[type[BaseException], BaseException, Any]:
    try:
        _failing()
    except RuntimeError as exc:
        return type(exc), exc, exc.__traceback__
    raise AssertionError("unreachable")
