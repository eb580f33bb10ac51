"""Defaults for the train stage: model settings only.

Label settings (horizon, threshold, statistic, coverage, dead pools) are never
retyped here: they come from the training set's own columns (see data.py).
Key and label columns and eligibility live in inference/contracts.py.
"""

from __future__ import annotations

# The prototype's six features: the anchor every report compares against.
ANCHOR_NUMERIC = ("apy", "tvl_usd", "apy_expanding_mean", "apy_expanding_std")
ANCHOR_CATEGORICAL = ("chain", "project")
ANCHOR_FEATURES = ANCHOR_NUMERIC + ANCHOR_CATEGORICAL

# Date split: the test period is the last TEST_FRACTION of labelled dates.
TEST_FRACTION = 0.3
# Walk-forward CV on the purged dates before the test start.
CV_FOLDS = 5
# Share of the pre-test dates covered by the validation blocks (the earlier
# part is only ever used for training, so fold 1 has something to learn from).
CV_VALIDATION_FRACTION = 0.5

MODEL_NAMES = ("prior", "heuristic", "logistic", "random_forest", "anchor")
# Models that may become the production artefact (baselines never do).
PRODUCTION_CANDIDATES = ("random_forest", "logistic", "anchor")
PREFERRED_PRODUCTION_MODEL = "random_forest"
# Another model replaces the random forest only if its mean fold AUC is higher
# by more than this.
PRODUCTION_SWITCH_MARGIN = 0.01

# Random forest: lean by default (Lambda load time and a < 100 ms warm score of
# 20k pools). Candidates are compared on the walk-forward folds only, leanest
# first; the first one within RF_SELECTION_TOLERANCE of the best mean fold AUC
# wins, and the report states its AUC cost.
# 30 trees: ~1 ms of CPU per tree per 20k rows; 40 trees gained 0.001 fold AUC on
# the default data (0.8120 vs 0.8131) for 50% more scoring time.
RF_TREES = 30
RF_CANDIDATES = (
    {"min_samples_leaf": 100, "max_depth": 10, "max_samples": 0.3},
    {"min_samples_leaf": 50, "max_depth": None, "max_samples": 0.3},
    {"min_samples_leaf": 25, "max_depth": None, "max_samples": 0.5},
)
RF_SELECTION_TOLERANCE = 0.005
# --rf-reference: also evaluate the prototype-sized forest on the folds (never
# chosen; slow) so the report states the lean forest's AUC cost against it.
RF_REFERENCE = {"n_estimators": 100, "min_samples_leaf": 1, "max_depth": None, "max_samples": None}
RF_N_JOBS = 2
RANDOM_STATE = 0
# Categories seen fewer times than this in training share the infrequent column.
ONE_HOT_MIN_FREQUENCY = 20
MAX_ARTEFACT_MB = 50.0
# Isotonic calibration is checked on this many of the last walk-forward folds.
CALIBRATION_CHECK_FOLDS = 2
# ... fitting isotonic on the last this share of the training dates (purged).
CALIBRATION_FRACTION = 0.2
# "auto": isotonic only if it improves fold Brier without worse fold log loss;
# "off": never (see the report: isotonic steps can output exactly 0 or 1).
CALIBRATION_DEFAULT = "auto"

# Evaluation
BOOTSTRAP_SAMPLES = 200
TOP_PROJECTS = 10
PERMUTATION_ROWS = 2000
PERMUTATION_REPEATS = 2
# Rows used to time predict_proba (the Lambda scores ~20k pools per hour).
LATENCY_ROWS = 20_000

# Label exploration: (apy_drop_threshold, apy_future_stat) variants.
LABEL_VARIANTS = tuple(
    (threshold, stat) for threshold in (0.0, -0.2) for stat in ("point", "mean", "median")
)
LABELS_MODEL = "int_pool_days_labeled"
