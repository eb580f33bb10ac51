"""The data stages, one module (or package) per command: generate, fetch,
ingest, build, publish, score and check-leakage.

Each exposes ``add_arguments(parser)`` and ``run(args, paths) -> int`` plus
plain functions that `run_all` calls directly. May import the standard
library, third-party libraries, `inference`, `apy_runway.foundation` and
`models_py`; never `apy_runway.cli` or `apy_runway.run_all`.
"""
