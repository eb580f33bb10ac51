"""The one home of every fact two parts of apy-runway must agree on: the raw
contract, key, label and label-setting columns, class names, the shown
probability and the ONE confidence-bin function, eligibility, the staleness,
inactivity and shrink limits, the S3 layout between `publish` and the Lambda,
the document formats and their schema versions, and environment variable names.

The lowest floor (0): the standard library only (no numpy, pyarrow or duckdb),
so the Lambda ships it and everyone else imports it. Types are written as
strings (DuckDB's 'DOUBLE', numpy's 'float64') for the floor that owns the
engine. serverless.yml repeats the S3 keys and limits CloudFormation needs;
tests/test_contracts.py holds the two equal.
"""

from __future__ import annotations

from typing import Any

# --------------------------------------------------------------------------- raw contract

# The validated raw snapshot, in order: (column, DuckDB type). DefiLlama's own
# field names; APY in percent; one row per pool per UTC hour. `ingest` writes
# it, `generate` writes it, the dbt source `defillama.pool_snapshots` reads it.
RAW_CONTRACT: tuple[tuple[str, str], ...] = (
    ("timestamp", "TIMESTAMPTZ"),
    ("pool", "VARCHAR"),
    ("chain", "VARCHAR"),
    ("project", "VARCHAR"),
    ("symbol", "VARCHAR"),
    ("poolMeta", "VARCHAR"),
    ("tvlUsd", "DOUBLE"),
    ("apy", "DOUBLE"),
    ("apyBase", "DOUBLE"),
    ("apyReward", "DOUBLE"),
    ("stablecoin", "BOOLEAN"),
    ("ilRisk", "VARCHAR"),
    ("exposure", "VARCHAR"),
)
RAW_COLUMNS: tuple[str, ...] = tuple(name for name, _ in RAW_CONTRACT)
# An input file (CSV, parquet) without these columns is refused as a whole
# (a row missing a value is quarantined; a file missing the column is no
# snapshot export at all).
RAW_REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "pool", "apy")
# The only /pools fields ever read: static pool metadata. The rest of /pools is
# the current state or a model output / look-ahead summary (predictions, mu,
# sigma, apyPct*, outlier, apyMean30d, count) and must never become an input.
POOLS_METADATA_FIELDS: tuple[str, ...] = (
    "chain",
    "project",
    "symbol",
    "poolMeta",
    "stablecoin",
    "ilRisk",
    "exposure",
)

# The never-read fields of a /pools item: model outputs and look-ahead
# summaries. `collect` lands the response as served; ingest reads only
# POOLS_SNAPSHOT_FIELDS from it and never these (nor anything starting with
# apyPct).
POOLS_NEVER_READ_FIELDS: tuple[str, ...] = (
    "predictions",
    "mu",
    "sigma",
    "apyPct1D",
    "apyPct7D",
    "apyPct30D",
    "outlier",
    "apyMean30d",
    "count",
)
# Columns an export may carry that ingest knowingly does not read (DefiLlama's
# other /pools and /chart fields): any other column outside the raw contract is
# named in ingest's output, and one that differs from a contract column only in
# case or underscores (tvlUSD, tvl_usd) is an error naming both.
RAW_IGNORED_COLUMNS: tuple[str, ...] = (
    *POOLS_NEVER_READ_FIELDS,
    "il7d",
    "apyBase7d",
    "apyBaseInception",
    "apyMean7d",
    "apyPct30D",
    "volumeUsd1d",
    "volumeUsd7d",
    "rewardTokens",
    "underlyingTokens",
    "url",
    "status",
)
# What a /pools snapshot gives per pool: the raw contract without the
# timestamp (the snapshot's UTC hour is the timestamp of every row).
POOLS_SNAPSHOT_FIELDS: tuple[str, ...] = tuple(c for c in RAW_COLUMNS if c != "timestamp")
# A /pools response is refused as a whole when one of these is missing from
# every item (a changed or broken format); a row missing one is quarantined.
POOLS_SNAPSHOT_REQUIRED_FIELDS: tuple[str, ...] = ("pool", "apy")

# Plausibility at the edge: ingest quarantines a row whose value lies outside
# these bounds (inclusive), one reason per bound kind (REASON_*_OUT_OF_RANGE).
# APY in percent: -100 is everything lost; above 1e6 % is a broken feed, and
# a value beyond float32 (|x| > 3.4e38) could never be scored.
RAW_APY_RANGE: tuple[float, float] = (-100.0, 1e6)
RAW_APY_COLUMNS: tuple[str, ...] = ("apy", "apyBase", "apyReward")
# TVL in USD: 1e13 is ten times all of DeFi.
RAW_TVL_RANGE: tuple[float, float] = (0.0, 1e13)
# Snapshot times: from 2018-01-01 (before DefiLlama's first yields) to the
# ingest's own time plus RAW_MAX_FUTURE_DAYS (clock skew; a later row would
# move the data's end and make every other pool look dead).
RAW_MIN_TIMESTAMP = "2018-01-01T00:00:00+00:00"
RAW_MAX_FUTURE_DAYS = 1
# A number in a timestamp column is an epoch only with its unit said
# (`ingest --timestamp-unit`): seconds, milliseconds or microseconds per unit.
TIMESTAMP_UNITS: dict[str, int] = {"s": 1, "ms": 1_000, "us": 1_000_000}

# The raw store (data/raw/pool_snapshots/snapshot_date=YYYY-MM-DD/*.parquet)
# holds the raw contract plus the landing order of the file each row came
# from; the UTC day is the hive partition. Per (pool, hour) the row of the
# most recently landed file wins (staging keeps it).
RAW_LANDING_ORDER_COLUMN = "landing_order"
RAW_PARTITION_COLUMN = "snapshot_date"
# A completed day's raw files are compacted into one when its smaller files
# hold at least RAW_COMPACT_SMALL_SHARE of its largest file's bytes (the
# rewrite then pays for itself in reads), or once it holds RAW_COMPACT_MAX_FILES
# files: a back-fill adding a few pools' rows to a year of days leaves each of
# them alone instead of rewriting every day whole.
RAW_COMPACT_SMALL_SHARE = 0.25
RAW_COMPACT_MAX_FILES = 8

# --------------------------------------------------------------------------- shrink rule

# A snapshot, a build or a features file with fewer pools than this share of
# the previous one is refused (collect, publish, refresh and the hourly
# Lambda) unless the operator says --allow-shrink; the features document then
# carries FEATURES_ALLOW_SHRINK_FIELD = true in its header.
SHRINK_MIN_RATIO = 0.5


# The shrink rule compares with the largest pool count of this many hours back
# (collect: the collected hours; refresh: the accepted exports), so a count
# cannot be walked down one allowed step at a time.
SHRINK_WINDOW_HOURS = 24


# A snapshot with fewer pools than this share of the 24-hour largest, yet not
# shrunk (or let through by --allow-shrink), lands with an input note (health:
# input_warnings): a pool or two coming and going is ordinary, a tenth is news.
SHRINK_NOTE_RATIO = 0.9


def is_shrunk(count: int, previous: int | None) -> bool:
    """True when `count` pools is below SHRINK_MIN_RATIO of `previous`."""
    return previous is not None and previous > 0 and count < SHRINK_MIN_RATIO * previous


def is_notable_shrink(count: int, previous: int | None) -> bool:
    """True when `count` pools is below SHRINK_NOTE_RATIO of `previous`."""
    return previous is not None and previous > 0 and count < SHRINK_NOTE_RATIO * previous


# --------------------------------------------------------------------------- warehouse columns

KEY_COLUMNS: tuple[str, str] = ("pool_id", "snapshot_date")
LABEL_COLUMN = "is_apy_kept"
LABEL_WINDOW_END_COLUMN = "label_window_end_date"
# Label settings travel as columns of the training set (one value each), so a
# `--vars` override can never make Python retype them.
LABEL_SETTING_COLUMNS: tuple[str, ...] = (
    "horizon_days",
    "apy_drop_threshold",
    "apy_future_stat",
    "min_future_coverage",
    "dead_pool_is_dropped",
)

# --------------------------------------------------------------------------- classes and bins

LABEL_DOWN, LABEL_KEEP = 0, 1
CLASS_DOWN = "Down"
CLASS_KEEP = "Stable/Up"
CLASS_NAMES: dict[int, str] = {LABEL_DOWN: CLASS_DOWN, LABEL_KEEP: CLASS_KEEP}


def predicted_class_is_down(p_keep: Any) -> Any:
    """DefiLlama's rule: "Down" when p_down >= p_keep, i.e. p_keep <= 0.5.
    Works on a float or a numpy array alike."""
    return p_keep <= 0.5


def predicted_probability(p_keep: Any) -> Any:
    """The probability users see, 100 x max(p_down, p_keep), on the 50..100
    scale. Works on a float or a numpy array alike (0.5 + |p - 0.5| is
    max(p, 1 - p) without a branch; exact for p >= 0.25)."""
    return 100.0 * (0.5 + abs(p_keep - 0.5))


def confidence_bin(probability: Any, cutpoints: Any) -> Any:
    """Confidence 1 / 2 / 3 of a shown probability (50..100) by two cut-points
    (the hour's, from hour_cutpoints). A value equal to a cut-point goes to the LOWER
    bin (probability <= cut). The one bin function: training, the report and
    the Lambda all call it. Works on a float (-> int) or a numpy array alike."""
    low, high = cutpoints[0], cutpoints[1]
    return 1 + (probability > low) * 1 + (probability > high) * 1


# An hour's cut-points are the spec's confidence levels (quantile levels chosen
# on the training run's held-out block) of the shown probabilities of every
# pool scored that hour, as DefiLlama's dashboard binned them: ranks within one
# hour are unmoved by a shift of the base rate between months. An hour (or a
# request) with fewer scored pools uses the spec's stored cut-points.
CONFIDENCE_HOUR_MIN_POOLS = 20


def hour_cutpoints(probabilities: Any, levels: Any, stored: Any) -> tuple[float, float]:
    """The two cut-points that bin one hour's shown probabilities (50..100):
    the `levels` quantiles (numpy's linear rule) of all of them, or the
    `stored` cut-points when levels is None or the hour has fewer than
    CONFIDENCE_HOUR_MIN_POOLS values. Pure Python: any sequence of numbers."""
    values = sorted(probabilities.tolist() if hasattr(probabilities, "tolist") else probabilities)
    if levels is None or len(values) < CONFIDENCE_HOUR_MIN_POOLS:
        return float(stored[0]), float(stored[1])
    return _quantile(values, float(levels[0])), _quantile(values, float(levels[1]))


def _quantile(ordered: list[float], level: float) -> float:
    position = level * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


# The words shown beside the 1 / 2 / 3 confidence bins (ours: DefiLlama's API
# gives only the number). The board shows them; the hourly output may carry them.
CONFIDENCE_WORDS: dict[int, str] = {1: "Low", 2: "Medium", 3: "High"}


# --------------------------------------------------------------------------- who is scored

# DefiLlama's eligibility: pools with apy <= 0 or fewer than 7 observed days are
# "not scored". Training and evaluation use eligible rows only.
MIN_APY_EXCLUSIVE = 0.0
MIN_OBSERVED_DAYS = 7
ELIGIBILITY: dict[str, float | int] = {
    "min_apy_exclusive": MIN_APY_EXCLUSIVE,
    "min_observed_days": MIN_OBSERVED_DAYS,
}


def describe_eligibility(eligibility: dict | None = None) -> str:
    """The rule in words, for reports and reasons."""
    rule = eligibility or ELIGIBILITY
    return (
        f"apy > {rule['min_apy_exclusive']:g} and at least "
        f"{int(rule['min_observed_days'])} observed days"
    )


# The published features are stale when their day ended this long before the
# scoring hour: flagged on every prediction and in the run's health.
FEATURES_STALE_AFTER_HOURS = 48.0
# A pool whose last snapshot is more than this many days before the scoring
# hour is inactive: not scored.
POOL_INACTIVE_AFTER_DAYS = 7

# Why a pool is not scored: one code per rule (the hourly output counts each;
# the record's `reason` says it in words, naming the value or the limit).
NOT_SCORED_INACTIVE = "inactive"
NOT_SCORED_APY_MISSING = "apy_missing"
NOT_SCORED_APY_NOT_POSITIVE = "apy_not_positive"
NOT_SCORED_TOO_FEW_DAYS = "too_few_observed_days"
NOT_SCORED_UNUSABLE_VALUE = "unusable_value"
# A scored pool whose value of one of these features the model never saw in
# training (not even as an infrequent category) is flagged unseen_category.
UNSEEN_CATEGORY_FEATURES = ("chain", "project")
# The label settings an answer refers to (at the top level of every answer).
ANSWER_LABEL_SETTINGS = ("horizon_days", "apy_drop_threshold", "apy_future_stat")

# --------------------------------------------------------------------------- environment

# Every environment variable the code reads has its name here, and only here.
# The Lambda's settings: field -> variable (serverless.yml sets them, checked
# equal by tests/test_serverless.py). boto3 reads the two endpoint variables itself.
ENVIRONMENT = {
    "bucket": "APY_RUNWAY_BUCKET",
    "model_prefix": "APY_RUNWAY_MODEL_PREFIX",
    "features_key": "APY_RUNWAY_FEATURES_KEY",
    "predictions_prefix": "APY_RUNWAY_PREDICTIONS_PREFIX",
    "stale_after_hours": "APY_RUNWAY_STALE_AFTER_HOURS",
    "max_batch_rows": "APY_RUNWAY_MAX_BATCH_ROWS",
    # the spec's HMAC-SHA256 key, or the name of an SSM SecureString holding it
    "signing_key": "APY_RUNWAY_SIGNING_KEY",
    "signing_key_parameter": "APY_RUNWAY_SIGNING_KEY_PARAMETER",
    "monitoring_prefix": "APY_RUNWAY_MONITORING_PREFIX",
    "ledger_prefix": "APY_RUNWAY_LEDGER_PREFIX",
    # the health-alert webhook, or the name of an SSM parameter holding it
    "webhook_url": "APY_RUNWAY_WEBHOOK_URL",
    "webhook_url_parameter": "APY_RUNWAY_WEBHOOK_URL_PARAMETER",
    "endpoint_url": "AWS_ENDPOINT_URL_S3",
}
ENV_S3_ENDPOINT = "AWS_ENDPOINT_URL"  # every AWS client's endpoint (a local moto server)
# The operator's commands; profiles.yml reads the dbt ones by name (tests hold them equal).
ENV_HOME = "APY_RUNWAY_HOME"  # the project home (data/, runs/)
ENV_DEBUG = "APY_RUNWAY_DEBUG"  # set: a user error raises with its traceback
ENV_DATA_DIR = "APY_RUNWAY_DATA_DIR"
ENV_DUCKDB_PATH = "APY_RUNWAY_DUCKDB_PATH"
ENV_DUCKDB_MEMORY_LIMIT = "APY_RUNWAY_DUCKDB_MEMORY_LIMIT"
ENV_DBT_THREADS = "APY_RUNWAY_DBT_THREADS"
# An incremental build's first day, read by dbt at execution (macros/incremental.sql)
ENV_REFRESH_FROM_DATE = "APY_RUNWAY_REFRESH_FROM_DATE"
# ... and the parquet file of the pools it rebuilds, each from its own first day
ENV_REFRESH_SCOPE = "APY_RUNWAY_REFRESH_SCOPE"
# The benchmarks' results file (the smoke runs of the tests write elsewhere).
ENV_BENCH_RESULTS = "APY_RUNWAY_BENCH_RESULTS"

# --------------------------------------------------------------------------- S3 layout

# Everything under one bucket: `publish` writes the model and the features,
# the hourly Lambda writes the predictions.
MODEL_PREFIX = "models/latest/"
# A run folder: metadata.json (written last) points at the portable model the
# Lambda serves (a JSON spec + an .npz of plain numeric arrays, no pickle);
# model.joblib is the same model as a scikit-learn Pipeline, for Python users.
MODEL_METADATA_FILE = "metadata.json"
MODEL_FILE = "model.joblib"
PORTABLE_SPEC_FILE = "model_spec.json"
PORTABLE_ARRAYS_FILE = "model_arrays.npz"
# `apy-runway promote --run` of a model_version below the highest served
# writes this mark beside the model (HMAC-signed with the spec's key): the
# Lambda then serves that version, until a higher one is served
ROLLBACK_FILE = "rollback.json"
ROLLBACK_FORMAT = "apy-runway/rollback/v1"
# The key the hourly scorer reads: the binary features file (numpy reads it
# directly). `publish` writes it after the JSON copy kept for people.
FEATURES_KEY = "features/latest_features.bin"
FEATURES_JSON_KEY = "features/latest_features.json"
PREDICTIONS_PREFIX = "predictions/"
# The scorer's safety-net schedule (EventBridge; serverless.yml repeats it):
# at minute 50, after the hour's refresh should have published (its features'
# S3 event scores at once), so an hour whose refresh did not publish is scored
# on the earlier features and its health says refresh_missed.
SAFETY_NET_SCHEDULE = "cron(50 * * * ? *)"
LATEST_PREDICTIONS_NAME = "latest.json"

# Format tags of the documents the keys hold.
PORTABLE_SPEC_FORMAT = "apy-runway/portable-model/v1"
FEATURES_FORMAT = "apy-runway/latest-features/binary/v1"
FEATURES_JSON_FORMAT = "apy-runway/latest-features/columns/v1"
# The binary features file starts with these 8 bytes, then the header's length
# (8 bytes, little-endian), the JSON header, and the body (an .npz).
FEATURES_MAGIC = b"APYRFEAT"
# Fields of the features header (binary and JSON alike): the pool count, and
# whether publish was told a shrink is intended (--allow-shrink).
FEATURES_ROW_COUNT_FIELD = "row_count"
FEATURES_ALLOW_SHRINK_FIELD = "allow_shrink"
# ... and, when the refresh that built them set landing files aside (ingest
# refused them), their paths under data/landing/: health reports refused_input.
FEATURES_REFUSED_INPUTS_FIELD = "refused_inputs"
# ... the UTC hour of the refresh that published them ("YYYY-MM-DDTHH:00:00Z"):
# scored in a later hour, that hour's refresh did not publish (health:
# refresh_missed; a file without it, published by hand or before, never is)
FEATURES_REFRESHED_HOUR_FIELD = "refreshed_hour"
# ... and the warnings that refresh's collect and ingest gave for its input
# (a Date header not trusted, a shrink accepted, junk items dropped, rows
# quarantined): short strings; health: input_warnings, listing them.
FEATURES_INPUT_NOTES_FIELD = "input_notes"
# The refresh's fields of the header, in order (features.refresh_fields builds them).
FEATURES_REFRESH_FIELDS = (
    FEATURES_REFRESHED_HOUR_FIELD,
    FEATURES_INPUT_NOTES_FIELD,
    FEATURES_REFUSED_INPUTS_FIELD,
)
# S3 object metadata of the predictions documents: the pool count they hold,
# so the Lambda compares a new features file with the last scored one.
PREDICTIONS_POOLS_METADATA = "pools"
# ... and the model_version that scored them, and the highest model_version
# ever served (the Lambda refuses a lower one unless promote marked a rollback)
MODEL_VERSION_METADATA = "model-version"
MODEL_VERSION_MAX_METADATA = "model-version-max"
PREDICTIONS_FORMAT = "apy-runway/predictions/v2"

# Versions of what callers read: bump on any change of the hourly output or the
# HTTP answers, and update the README's schema section with it.
# 2: per-prediction `reasons` (top contributions) and the document's
# `explanation`; "not scored" for values beyond float32's range.
# 3: records carry project/chain/apy/tvl_usd, reason_code, inactive pools; the
# document's `health` (ok | degraded, with reasons) and `label`.
PREDICTIONS_SCHEMA_VERSION = 3
HTTP_SCHEMA_VERSION = 3

# Reasons given with each prediction: the largest contributions by size.
REASONS_PER_PREDICTION = 3


def hourly_predictions_key(prefix: str, hour: Any) -> str:
    """One key per scoring hour (a datetime): a retried event overwrites it."""
    return f"{prefix}hourly/{hour:%Y-%m-%dT%H}Z.json"


def latest_predictions_key(prefix: str) -> str:
    return f"{prefix}{LATEST_PREDICTIONS_NAME}"


# --------------------------------------------------------------------------- monitoring

# Where the hourly run writes its health (one document per hour) and every
# served prediction (gzip NDJSON, one file per hour, overwritten on retry).
MONITORING_PREFIX = "monitoring/"
LEDGER_PREFIX = "ledger/"
MONITORING_FORMAT = "apy-runway/monitoring/v1"
LEDGER_FORMAT = "apy-runway/ledger/v1"
# The drift reference stored in the portable spec (`monitoring` block): the
# model's inputs over the newest DRIFT_REFERENCE_DAYS feature days (dbt's
# var drift_reference_days, held equal by tests/test_contracts.py); numeric quantiles at the
# DRIFT_QUANTILE_LEVELS midpoints of equal slices (0.005, ..., 0.995), PSI over
# the reference's deciles, categorical shares of the DRIFT_MAX_CATEGORIES most
# common values (the rest pooled as DRIFT_OTHER_CATEGORY).
DRIFT_REFERENCE_DAYS = 30
# Which rows the reference describes: the featurized pool-days of the newest
# DRIFT_REFERENCE_DAYS feature days (the dbt mart drift_reference_features,
# the default), or, when training is given a training set alone, its newest
# labelled days (a label horizon older than the newest features).
DRIFT_SOURCE_FEATURES = "drift_reference_features"
DRIFT_SOURCE_TRAINING_SET = "training_set"
DRIFT_QUANTILE_LEVELS = 100
DRIFT_PSI_BINS = 10
DRIFT_MAX_CATEGORIES = 50
DRIFT_OTHER_CATEGORY = "__other__"
DRIFT_MISSING_CATEGORY = "__missing__"
# A numeric feature drifts when Wasserstein-1 / reference std > this (W to
# the nearest day of the reference window, net of the two samples' sampling
# error: inference/monitoring.py); a categorical one when the Jensen-Shannon
# distance (base 2) > this.
DRIFT_THRESHOLD = 0.1
# A reference day's quantiles are kept when it has at least this many values;
# in the portable model they are matrices (days x levels) in the arrays file,
# keyed by this prefix and the feature's index in the reference.
DRIFT_MIN_DAY_ROWS = 20
DRIFT_DAILY_ARRAY_PREFIX = "drift_daily_"
# Health is degraded when one of the model's DRIFT_IMPORTANT_FEATURES most
# important features drifts, or more than DRIFT_MAX_DRIFTED_SHARE of all do.
DRIFT_IMPORTANT_FEATURES = 10
DRIFT_MAX_DRIFTED_SHARE = 0.25
# Features that grow by one a day by construction (a pool's age, its count of
# observed days): a 30-day reference's rows are on average 15 days younger
# than the scored day's, and every day after training adds one, so against a
# spread of ages (std ~84 days on the default data) they cross the threshold
# on the day of training (W/std 0.22) and never come back. Their drift is
# computed and reported, never counted by the health rule (neither as an
# important feature nor in the share).
DRIFT_CALENDAR_FEATURES = ("pool_age_days", "observed_day_count")
# Never a reason for a prediction (inference/reasons.py): a sample cut to one
# year makes every series' age the same artefact of its first day, not news.
REASON_EXCLUDED_FEATURES = DRIFT_CALENDAR_FEATURES
# Ledger partitions and keys: one file per scoring hour; backtest rows are
# stored per feature day, their hour the next midnight (when the service would
# have scored that day's features).
LEDGER_SOURCES = ("live", "backtest")


def monitoring_key(prefix: str, hour: Any) -> str:
    return f"{prefix}{hour:%Y-%m-%dT%H}Z.json"


def ledger_key(prefix: str, hour: Any, source: str = "live") -> str:
    """ledger/date=YYYY-MM-DD/<hour>Z.json.gz (a backtest file: <hour>Z.backtest.json.gz)."""
    tail = "" if source == "live" else f".{source}"
    return f"{prefix}date={hour:%Y-%m-%d}/{hour:%Y-%m-%dT%H}Z{tail}.json.gz"


# --------------------------------------------------------------------------- watchlist

# The pools an operator watches (`apy-runway watch add|remove|list`), in the
# bucket: {"format", "pools": [pool ids], "updated_at"}. The hourly scorer
# reads it and keeps its own memory of the watched pools' calls over the last
# WATCH_WINDOW_HOURS in WATCH_STATE_KEY (the scorer's alone: it reads and
# writes it with conditional PUTs, which also make a retried hour post nothing).
WATCHLIST_KEY = "watch/watchlist.json"
WATCH_STATE_KEY = "watch/state.json"
WATCHLIST_FORMAT = "apy-runway/watchlist/v1"
WATCH_STATE_FORMAT = "apy-runway/watch-state/v1"
# A watched pool is announced when its class flips against its previous call,
# or its p_keep moves by at least WATCH_P_KEEP_MOVE against any call of the
# last WATCH_WINDOW_HOURS (since its last announcement): once per pool and hour.
WATCH_P_KEEP_MOVE = 0.15
WATCH_WINDOW_HOURS = 24
# At most this many pools are watched (the list is read whole every hour).
WATCHLIST_MAX_POOLS = 500
# An hour posts one message per pool for at most this many pools, and one
# message naming the others (each post may take the webhook's time budget).
WATCH_MAX_POSTS = 10
# A pool id as the watchlist accepts it: printable, no spaces at its ends.
WATCH_POOL_ID_MAX_CHARS = 200


def watch_pool_id_problem(pool_id: Any) -> str | None:
    """Why `pool_id` cannot be watched, or None."""
    if not isinstance(pool_id, str) or not pool_id.strip():
        return f"{pool_id!r} is not a pool id"
    if pool_id != pool_id.strip() or len(pool_id) > WATCH_POOL_ID_MAX_CHARS:
        return (
            f"{pool_id!r} is not a pool id (spaces at its ends, or over "
            f"{WATCH_POOL_ID_MAX_CHARS} characters)"
        )
    if not pool_id.isprintable():
        return f"{pool_id!r} holds control characters"
    return None


# --------------------------------------------------------------------------- request limits

# API Gateway caps a request body at 6 MB: ~3,500 rows of DefiLlama's six
# features. serverless.yml lowers it to 2,000 for the 66-feature model (~2.5 kB
# of JSON per row), so the 413 is ours, with a JSON error.
MAX_BATCH_ROWS = 3500
# Lookups of published predictions: pool ids per request (~330 bytes per
# answer: 5,000 pools stay under Lambda's 6 MB response limit).
MAX_LOOKUP_POOLS = 5000
