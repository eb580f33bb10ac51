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
# The models built on the forest: they take the forest's chosen settings (rf_params);
# the others are fitted while those settings are chosen.
FOREST_MODELS = ("random_forest", "anchor")
# Models that may become the production artefact (baselines never do).
PRODUCTION_CANDIDATES = ("random_forest", "logistic", "anchor")
# The forest ships by default. Another candidate ships only if its mean AUC
# over the last PRODUCTION_CHOICE_FOLDS walk-forward folds beats the forest's
# by more than CHALLENGER_MIN_MARGIN and by more than CHALLENGER_SPREAD_FACTOR
# times the forest's seed spread (max - min of that mean over SEED_SPREAD_SEEDS
# random_states; measured only when some challenger beats the margin).
PRODUCTION_CHOICE_FOLDS = 3
DEFAULT_PRODUCTION = "random_forest"
CHALLENGER_MIN_MARGIN = 0.01
CHALLENGER_SPREAD_FACTOR = 2.0
SEED_SPREAD_SEEDS = (0, 1, 2)
PRODUCTION_RULE = (
    f"{DEFAULT_PRODUCTION} unless a challenger beats its mean AUC over the last "
    f"{PRODUCTION_CHOICE_FOLDS} walk-forward folds by more than "
    f"{CHALLENGER_MIN_MARGIN} and by more than {CHALLENGER_SPREAD_FACTOR:g}x "
    f"its seed spread ({len(SEED_SPREAD_SEEDS)} seeds)"
)

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
# Calibration of the shipped probability (models_py/calibration.py). The method
# is chosen on the last CALIBRATION_CHECK_FOLDS walk-forward folds: each fold's
# model trains on its rows before its last CALIBRATION_FRACTION of dates
# (purged), every method is fitted on those dates, and all are scored on the
# fold's validation block. Lowest mean log loss wins; a more complex method
# must win by more than CALIBRATION_MIN_GAIN.
CALIBRATION_METHODS = ("none", "sigmoid", "isotonic")
CALIBRATION_CHECK_FOLDS = 2
CALIBRATION_FRACTION = 0.2
CALIBRATION_MIN_GAIN = 0.001
# No isotonic step rests on fewer calibration rows than this.
CALIBRATION_MIN_BIN = 200
# "auto": chosen on the folds as above; or force one method.
CALIBRATION_DEFAULT = "auto"
CALIBRATION_CHOICES = ("auto", *CALIBRATION_METHODS)

# Degenerate training input: below these, a test period means nothing.
MIN_TEST_POOLS = 5
MIN_TEST_DATES = 14

# The feature groups of the ablation: one per row of the feature table in
# dbt_project/README.md, as patterns over the feature names. Every feature is
# in exactly one group (tests/test_train_trust.py checks it on the contract).
FEATURE_GROUPS = (
    ("day values (apy, tvl_usd, apy_base, apy_reward)", r"apy|tvl_usd|apy_base|apy_reward"),
    ("expanding mean / std", r"apy_expanding_(mean|std)"),
    ("apy vs expanding mean", r"apy_relative_to_expanding_mean"),
    ("apy rolling mean/std/median/min/max", r"apy_rolling_\d+d_(mean|std|median|min|max)"),
    ("apy vs rolling mean", r"apy_relative_to_rolling_\d+d_mean"),
    ("apy_base rolling mean / std", r"apy_base_rolling_\d+d_(mean|std)"),
    ("apy change", r"apy_change_\d+d"),
    ("tvl change", r"tvl_usd_change_\d+d"),
    ("tvl log", r"tvl_usd_log"),
    ("reward share", r"apy_reward_share"),
    ("reward share change", r"apy_reward_share_change_\d+d"),
    ("pool age", r"pool_age_days"),
    ("observed day count", r"observed_day_count"),
    ("observed day share", r"observed_day_rolling_\d+d_share"),
    ("rank in project / chain", r"apy_(project|chain)_percent_rank"),
    ("ratio to project / chain median", r"apy_(project|chain)_median_ratio"),
    ("pools in project / chain", r"(project|chain)_pool_count"),
    ("market regime", r"market_apy_(drop_share_30d|change_30d_median)"),
    ("chain, project", r"chain|project"),
    ("il_risk, exposure, stablecoin", r"il_risk|exposure|stablecoin"),
)
# The ablation refits the production recipe (ABLATION_TREES trees for a forest)
# without each group on the last ABLATION_FOLDS folds. A group "can be dropped
# at no cost" when the mean fold AUC without it is no more than the margin
# below the full recipe's: ABLATION_NO_COST, or the seed noise if larger (the
# full recipe refitted with another random_state).
ABLATION_FOLDS = 2
ABLATION_TREES = 30
ABLATION_NO_COST = 0.002
# Feature groups a run keeps only when its own walk-forward folds show they
# help (models_py/ablation.py, gate_candidate_groups): the forest with the
# group must beat the forest without it, over the last ABLATION_FOLDS folds,
# by more than ABLATION_NO_COST and the seed noise. Otherwise every model of
# the run is trained without it, and the report says so.
CANDIDATE_GROUPS = ("market regime",)

# `apy-runway retrain`: champion and challenger are each backtested over the
# last RETRAIN_MONTHS months; the challenger is promoted unless its AUC is
# lower by more than MAX_AUC_DROP or its ECE higher by more than MAX_ECE_RISE.
RETRAIN_MONTHS = 3
MAX_AUC_DROP = 0.01
MAX_ECE_RISE = 0.01
CHAMPION = "champion"

# A run is weak (models_py/quality.py) when its backtest AUC's 95% interval
# includes 0.5 or it beats the heuristic baseline by no more than this.
WEAK_MIN_LIFT = 0.01

# Confidence words (models_py/confidence.py): an hour's words come from its own
# quantiles of the shown probability (contracts.hour_cutpoints) at two levels of
# CONFIDENCE_QUANTILE_GRID, chosen on each refit's held-out block (its last
# CONFIDENCE_HOLDOUT_FRACTION of training dates, scored by walk-forward
# predictions made before them, else by the recipe fitted on the earlier rows:
# models_py/confidence.py): every bin holds at least CONFIDENCE_MIN_SHARE of the
# block, hit rates rise from Low to High.
CONFIDENCE_HOLDOUT_FRACTION = 0.2
CONFIDENCE_MIN_SHARE = 0.15
CONFIDENCE_QUANTILE_GRID = tuple(round(0.05 * i, 2) for i in range(3, 18))
CONFIDENCE_MIN_ROWS = 60

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
