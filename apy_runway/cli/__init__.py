"""The command line: the `apy-runway` parser, run-all and refresh (floor 8, the top)."""

from apy_runway.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
