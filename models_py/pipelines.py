"""One sklearn Pipeline per model, fitted on the ordered object matrix.

Every pipeline starts with a ColumnTransformer using INTEGER column selectors
into the feature order stored in metadata.json, so the saved artefact needs
neither pandas nor column names (the Lambda has no pandas). Categorical None or
NaN becomes 'unknown' inside the pipeline; unseen chains/projects go through
the encoder's unknown path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from models_py import config

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

EstimatorT = TypeVar("EstimatorT")


def categorical_imputer() -> Pipeline:
    """NaN and None -> 'unknown' (two steps: one SimpleImputer matches one marker)."""
    return make_pipeline(
        SimpleImputer(strategy="constant", fill_value="unknown"),
        SimpleImputer(strategy="constant", fill_value="unknown", missing_values=None),
    )


def one_hot() -> OneHotEncoder:
    return OneHotEncoder(
        handle_unknown="infrequent_if_exist",
        min_frequency=config.ONE_HOT_MIN_FREQUENCY,
        sparse_output=False,
    )


def heuristic_score(X: np.ndarray) -> np.ndarray:
    """log(apy / apy_expanding_mean): how far today's APY sits above its own history.

    A pool far above its usual APY tends to fall back. Missing -> 0 (at its mean).
    """
    X = np.asarray(X, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(X[:, [0]] / X[:, [1]])
    return np.where(np.isfinite(ratio), ratio, 0.0)


def random_forest(
    params: dict | None = None,
    n_estimators: int = config.RF_TREES,
    random_state: int = config.RANDOM_STATE,
) -> RandomForestClassifier:
    settings = {"min_samples_leaf": 50, "max_depth": None, "max_samples": 0.5, **(params or {})}
    n_estimators = settings.pop("n_estimators", n_estimators)  # a candidate may set its own
    random_state = settings.pop("random_state", random_state)  # the seed-spread refits do
    return RandomForestClassifier(
        n_estimators=n_estimators,
        oob_score=False,
        bootstrap=True,
        n_jobs=config.RF_N_JOBS,
        random_state=random_state,
        **settings,
    )


def build_pipeline(
    name: str,
    features: list[str],
    categorical: list[str],
    rf_params: dict | None = None,
    n_estimators: int = config.RF_TREES,
) -> Pipeline:
    """The named model as one Pipeline(ColumnTransformer, estimator) over `features`."""
    features = list(features)
    cat_index = [i for i, f in enumerate(features) if f in categorical]
    num_index = [i for i, f in enumerate(features) if f not in categorical]

    def index(names: Sequence[str]) -> list[int]:
        missing = [n for n in names if n not in features]
        if missing:
            raise ValueError(f"model {name!r} needs feature(s) {missing} not in the feature list")
        return [features.index(n) for n in names]

    if name == "prior":
        # DummyClassifier ignores X; give it a constant column so shapes stay 2-D.
        pre = ColumnTransformer([("const", FunctionTransformer(np.zeros_like), [0])])
        return Pipeline([("preprocess", pre), ("classifier", DummyClassifier(strategy="prior"))])
    if name == "heuristic":
        pre = ColumnTransformer(
            [
                (
                    "apy_vs_mean",
                    FunctionTransformer(heuristic_score),
                    index(["apy", "apy_expanding_mean"]),
                )
            ]
        )
        return Pipeline([("preprocess", pre), ("classifier", LogisticRegression())])
    if name == "logistic":
        numeric = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            FunctionTransformer(np.arcsinh),  # tames APY/TVL tails, keeps sign
            StandardScaler(),
        )
        pre = ColumnTransformer(
            [
                ("numeric", numeric, num_index),
                ("categorical", make_pipeline(categorical_imputer(), one_hot()), cat_index),
            ]
        )
        return Pipeline(
            [
                ("preprocess", pre),
                ("classifier", LogisticRegression(solver="newton-cholesky", max_iter=200)),
            ]
        )
    if name == "random_forest":
        pre = ColumnTransformer(
            [
                (
                    "numeric",
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    num_index,
                ),
                ("categorical", make_pipeline(categorical_imputer(), one_hot()), cat_index),
            ]
        )
        return Pipeline(
            [("preprocess", pre), ("classifier", random_forest(rf_params, n_estimators))]
        )
    if name == "anchor":
        # The prototype: same forest on six features, categories as integers, -1 unseen.
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=float)
        pre = ColumnTransformer(
            [
                (
                    "numeric",
                    SimpleImputer(strategy="median", keep_empty_features=True),
                    index(config.ANCHOR_NUMERIC),
                ),
                (
                    "categorical",
                    make_pipeline(categorical_imputer(), encoder),
                    index(config.ANCHOR_CATEGORICAL),
                ),
            ]
        )
        return Pipeline(
            [("preprocess", pre), ("classifier", random_forest(rf_params, n_estimators))]
        )
    raise ValueError(f"unknown model {name!r}; choose from {config.MODEL_NAMES}")


def iter_estimators(model: object) -> Iterator[object]:
    """The model and every estimator nested in it (pipeline steps, column
    transformers, calibrated classifiers and their base estimators)."""
    stack = [model]
    while stack:
        estimator = stack.pop()
        yield estimator
        stack.extend(step for _, step in getattr(estimator, "steps", []) or [])
        stack.extend(
            step
            for _, step, _ in getattr(estimator, "transformers_", []) or []
            if not isinstance(step, str)
        )
        stack.extend(getattr(estimator, "calibrated_classifiers_", []) or [])
        inner = getattr(estimator, "estimator", None)
        if inner is not None and hasattr(inner, "get_params"):
            stack.append(inner)


# Per-training-row arrays a fitted forest keeps for its OOB score: two floats per
# training row (68% of model.joblib at 300k rows, benchmarks/RESULTS.md), never
# used for prediction. The OOB score itself is reported before they are dropped.
TRAINING_ONLY_ATTRIBUTES = ("oob_decision_function_", "oob_prediction_")


def strip_training_only_state(model: EstimatorT) -> EstimatorT:
    """Drop the OOB arrays from every nested estimator (in place); return the model."""
    for estimator in iter_estimators(model):
        for attribute in TRAINING_ONLY_ATTRIBUTES:
            if attribute in vars(estimator):
                delattr(estimator, attribute)
    return model
