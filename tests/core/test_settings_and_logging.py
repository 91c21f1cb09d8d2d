"""Placeholder secrets are refused outside dev; secret-looking log keys are redacted."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from pydantic import ValidationError

from core.logging import REDACTED, configure_logging
from core.settings import ApiSettings, RunnerSettings


@pytest.mark.parametrize("cls", [ApiSettings, RunnerSettings])
def test_weak_runner_secret_is_refused_in_prod(cls: type[ApiSettings] | type[RunnerSettings]) -> None:
    with pytest.raises(ValidationError, match="EXT_RUNNER_AUTH"):
        cls(env="prod", runner_auth="changeme")
    cls(env="dev", runner_auth="changeme")
    cls(env="prod", runner_auth="a-long-random-value-1234567890")


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
