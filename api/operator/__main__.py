"""`python -m api.operator --port N`: settings from the environment, uvicorn on 127.0.0.1."""

from __future__ import annotations

import argparse

import uvicorn

from api.operator.app import create_app
from api.operator.settings import OperatorSettings
from core.logging import configure_logging
from core.process import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.operator", description="extplane operator API")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    settings = OperatorSettings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    run_main(main)
