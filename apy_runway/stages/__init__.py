"""The data stages, one module (or package) per command: generate, fetch,
ingest, build, publish, score, check-leakage and board (board_data.py shapes
its data; board_site/ holds its static pages, scripts and the vendored chart
library).

Each exposes ``add_arguments(parser)`` and ``run(args, paths) -> int`` plus
plain functions that `run_all` calls directly. May import the standard
library, third-party libraries, `inference`, `apy_runway.foundation` and
`models_py`; never `apy_runway.cli` or `apy_runway.run_all`.
"""
