"""structlog set-up: one call per entry point; stdlib loggers (uvicorn, asyncpg, temporalio) go
through the same processors.

What never reaches a log line, whichever process or renderer:
  * local variables of a traceback. structlog's defaults render them (ConsoleRenderer with rich
    installed, and ExceptionDictTransformer for JSON), and a frame's locals are where plaintext secrets,
    the keyring and the ASGI scope with its `Authorization` header live. Tracebacks here are frames and
    messages only;
  * values of secret-looking keys (`redact`);
  * credentials inside text (`scrub`): bearer tokens and the values of credential headers, wherever a
    message or an exception's text carries them (e.g. a repr of request headers).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

_SECRET_KEY = re.compile(
    r"secret|token|key_material|password|passphrase|authorization|ciphertext|cookie|credential|headers",
    re.IGNORECASE,
)
REDACTED = "[redacted]"

_CREDENTIAL_HEADERS = r"authorization|proxy-authorization|cookie|set-cookie|x-runner-auth|x-api-key"
# `(b'authorization', b'Bearer x')`, `'cookie': 'a=b'`, `"x-runner-auth": "..."`: the quoted value.
_QUOTED_HEADER = re.compile(
    rf"""(?i)(b?['"](?:{_CREDENTIAL_HEADERS})['"]\s*[,:=]\s*b?)(['"])(?:\\.|(?!\2).)*\2"""
)
# `Authorization: Bearer x`, `x-runner-auth=...` in plain text: up to the end of the value.
_PLAIN_HEADER = re.compile(
    rf"(?i)\b((?:{_CREDENTIAL_HEADERS})\s*[:=]\s*)(?![\s'\"\[])(?!(?:bearer|basic)\s)[^\s,;'\"]+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?!\[redacted\])[A-Za-z0-9._~+/=-]+")


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in list(event.keys()):
        if k != "event" and _SECRET_KEY.search(k):
            event[k] = REDACTED
    return event


def scrub(text: str) -> str:
    """Mask credentials in rendered text (the last step before a line is written)."""
    text = _QUOTED_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _PLAIN_HEADER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def _scrubbed(renderer: Callable[..., Any]) -> Callable[..., str]:
    def render(logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        out = renderer(logger, name, event)
        return scrub(out if isinstance(out, str) else out.decode())

    return render


def plain_traceback(sio: TextIO, exc_info: Any) -> None:
    """The standard library's traceback text (frames and messages, no locals) without Python 3.11's
    `^^^^` lines. Computing those ast.parse()s each frame's source line, and CPython 3.11's AST
    conversion keeps module-wide state (gh-106905): a thread logging a traceback could make an
    ast.parse in another thread of the process fail (pytest's assertion rewriting, hypothesis)."""
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if not isinstance(exc, BaseException):
        return
    shown = traceback.TracebackException.from_exception(exc)
    for part in _chain(shown, set()):
        for frame in part.stack:
            frame.colno = frame.end_colno = None  # no column range: no caret line, no parse
    sio.write("\n" + "".join(shown.format()).rstrip("\n"))


def _chain(shown: traceback.TracebackException, seen: set[int]) -> Iterator[traceback.TracebackException]:
    """`shown` and every exception it prints with it: causes, contexts, exception-group members."""
    if id(shown) in seen:
        return
    seen.add(id(shown))
    yield shown
    for linked in (shown.__cause__, shown.__context__, *(getattr(shown, "exceptions", None) or ())):
        if linked is not None:
            yield from _chain(linked, seen)


def renderers(fmt: str) -> list[Any]:
    """The processors that turn an event dict into its line: JSON (prod) or console (dev)."""
    if fmt == "json":
        return [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            _scrubbed(structlog.processors.JSONRenderer()),
        ]
    # plain_traceback: the standard library's format (no locals), instead of rich's show_locals=True.
    return [_scrubbed(structlog.dev.ConsoleRenderer(colors=False, exception_formatter=plain_traceback))]


def configure_logging(*, fmt: str = "console", level: str = "info") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers(fmt)],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
