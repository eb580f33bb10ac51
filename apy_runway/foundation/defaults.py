"""The defaults a command's flags show, each in one place: the stages take
their keyword defaults from here and the command line (apy_runway/cli/) shows
them in --help. Standard library only, so `apy-runway --help` never imports
numpy, DuckDB or urllib3 to print a number."""

from __future__ import annotations

from datetime import date
from pathlib import Path

# --------------------------------------------------------------------------- the repository

REPO_ROOT = Path(__file__).resolve().parents[2]
# The dbt project: check-leakage's default --project-dir; the CLI's description
# reads the label horizon from its vars.
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

# --------------------------------------------------------------------------- the writer lock

# Seconds a writer waits for another to finish before it refuses (interactive
# commands); deploy/'s timers pass --wait 600.
DEFAULT_WAIT = 0.0
# Seconds a dbt build waits for readers (board, show, score: DuckDB read-only,
# a shared file lock) to close the warehouse before it refuses, naming one.
READER_WAIT = 60.0

# --------------------------------------------------------------------------- HTTP (fetch, collect)

DEFAULT_BASE_URL = "https://yields.llama.fi"
DEFAULT_DELAY = 1.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 2.0
DEFAULT_TIMEOUT = 60.0  # seconds one connect or read may wait
DEFAULT_DEADLINE = 60.0  # seconds for a whole request: connect, headers and body
DEFAULT_MAX_CHART_MB = 50.0
DEFAULT_MAX_POOLS_MB = 200.0
MAX_RETRY_AFTER = 300.0  # a longer Retry-After is waited this long

# --------------------------------------------------------------------------- generate

# Defaults: ~2.0M hourly rows (~85k pool-days) after launches, deaths and gaps.
# Generate ~3 s, ingest ~10 s, dbt build ~30 s, train ~2 min on 2 cores, while a
# year leaves ~10 months of labelled days for a time split (train / purge / test)
# and gives cliffs, deaths and late launches room to happen. Fewer pools make the
# test AUC noisy (pool-level confidence intervals widen); more mostly cost train time.
DEFAULT_POOLS = 300
DEFAULT_DAYS = 365
DEFAULT_SEED = 42
DEFAULT_START = date(2024, 1, 1)
DEFAULT_CHUNK_POOLS = 250
FREQUENCIES = ("hourly", "daily")

# --------------------------------------------------------------------------- ingest, collect

# The memory DuckDB may use; it spills to disk past it. A file is validated
# alone, so this bounds ingest at any history length.
DEFAULT_MEMORY_LIMIT = "1GB"
# New pools whose /chart history one collect back-fills (the rest are queued).
DEFAULT_BACKFILL_MAX = 20

# --------------------------------------------------------------------------- board

DEFAULT_HISTORY_DAYS = 365
DEFAULT_POOLS_PER_SHARD = 64
DEFAULT_SERVED_PER_POOL = 400
