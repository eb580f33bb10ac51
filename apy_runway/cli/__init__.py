"""The command line (floor 8, the top): main.py (the `apy-runway` parser and the
registry of commands), one flag module per floor below (landing.py,
warehouse.py, operations.py, board.py: each command's help, flags and run
function), common.py (what they share), run_all.py, refresh.py + hourly.py and
rehearse.py + rehearsal.py (the commands that chain the stages). Only a
command's run function imports its stage.
"""

from apy_runway.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
