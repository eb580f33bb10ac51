"""Export a fitted pipeline to the portable model the Lambda serves: a JSON spec
and an .npz of plain numeric arrays (the format:
docs/serving.md#the-portable-models-format).

Imports: scikit-learn, numpy, models_py/ and inference/ (floor 2; never
apy_runway). What is exported is read from the fitted estimators' own
attributes, and the categorical tables come from passing categories through the
fitted encoder itself, so unknown / infrequent / missing handling stays
scikit-learn's. The export must give the pipeline's own predict_proba to 1e-9
on the rows given and on probe rows, or nothing is written. Covered: random
forest and logistic pipelines, bare or calibrated (CalibratedClassifierCV, or
models_py/calibration.py's CalibratedClassifier); anything else refused by name.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from inference import contracts
from inference.model import artefact, portable
from models_py.calibration import CalibratedClassifier

TOLERANCE = 1e-9
# the serving facts the portable spec carries (the Lambda reads only the spec)
PORTABLE_FACTS = (
    "model_id",
    "model_name",
    "features",
    "numeric_features",
    "categorical_features",
    "label",
    "eligibility",
    "confidence_cutpoints",
    "library_versions",
)
UNSEEN = "\x00apy-runway-unseen-category\x00"


class ExportError(ValueError):
    """The pipeline has no portable form, or its export disagrees with it."""


def _dense(part: Any) -> np.ndarray:
    return np.asarray(part.toarray() if hasattr(part, "toarray") else part, dtype=np.float64)


# --------------------------------------------------------------------------- blocks


def _numeric_block(name: str, transformer: Any, features: list[str], arrays: dict) -> dict:
    steps = list(transformer.steps) if isinstance(transformer, Pipeline) else [("", transformer)]
    imputer = steps[0][1]
    if not isinstance(imputer, SimpleImputer) or imputer.strategy not in ("median", "mean"):
        raise ExportError(
            f"block {name!r}: {imputer} has no portable form here "
            "(a numeric block starts with a median/mean SimpleImputer)"
        )
    if not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)):
        raise ExportError(f"block {name!r}: the imputer must treat NaN as missing")
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    empty = np.isnan(statistics)
    keep_empty = bool(getattr(imputer, "keep_empty_features", False))
    kept = np.array([j for j in range(len(features)) if keep_empty or not empty[j]], dtype=np.int64)
    # what a missing value becomes, read from the imputer itself (0 for an
    # all-missing training column kept with keep_empty_features)
    probe = np.full((1, len(features)), np.nan)
    filled = _dense(SimpleImputer.transform(imputer, probe))[0, : len(kept)]
    indicator = getattr(imputer, "indicator_", None)
    indicators = (
        np.asarray(indicator.features_, dtype=np.int64)
        if imputer.add_indicator and indicator is not None
        else np.zeros(0, dtype=np.int64)
    )
    if imputer.add_indicator and indicator is not None and indicator.features != "missing-only":
        raise ExportError(f"block {name!r}: only missing-only indicators are supported")
    prefix = f"{name}/"
    arrays[prefix + "kept"] = kept
    arrays[prefix + "fill"] = filled
    arrays[prefix + "indicators"] = indicators
    block = {
        "kind": "numeric",
        "name": name,
        "features": features,
        "kept_key": prefix + "kept",
        "fill_key": prefix + "fill",
        "indicators_key": prefix + "indicators",
        "steps": [],
    }
    for i, (_, step) in enumerate(steps[1:]):
        if isinstance(step, FunctionTransformer) and step.func is np.arcsinh:
            block["steps"].append({"kind": "arcsinh"})
        elif isinstance(step, StandardScaler):
            width = len(kept) + len(indicators)
            mean = np.asarray(step.mean_, dtype=np.float64) if step.with_mean else np.zeros(width)
            scale = np.asarray(step.scale_, dtype=np.float64) if step.with_std else np.ones(width)
            arrays[f"{prefix}step{i}/mean"] = mean
            arrays[f"{prefix}step{i}/scale"] = scale
            block["steps"].append(
                {
                    "kind": "standardize",
                    "mean_key": f"{prefix}step{i}/mean",
                    "scale_key": f"{prefix}step{i}/scale",
                }
            )
        else:
            raise ExportError(
                f"block {name!r}: step {step} has no portable form "
                f"(known: SimpleImputer, FunctionTransformer(np.arcsinh), StandardScaler)"
            )
    return block


def _encoder(transformer: Any) -> Any:
    encoder = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
    if not isinstance(encoder, (OneHotEncoder, OrdinalEncoder)):
        raise ExportError(f"categorical encoder {encoder} has no portable form")
    if getattr(encoder, "handle_unknown", "error") == "error":
        raise ExportError(
            f"{encoder} refuses unseen categories (handle_unknown='error'): the Lambda "
            "could not score a new project or chain"
        )
    return encoder


def _text_categories(name: str, encoder: Any, features: list[str]) -> list[list]:
    categories = [list(c) for c in encoder.categories_]
    for feature, values in zip(features, categories, strict=True):
        if not all(isinstance(v, str) for v in values):
            raise ExportError(
                f"block {name!r}, feature {feature!r}: categories must be text, got "
                f"{sorted({type(v).__name__ for v in values})}"
            )
    return categories


def _column_spans(
    name: str,
    encoder: Any,
    features: list[str],
    categories: list[list],
    rows_for: Any,
    width: int,
) -> list[tuple[int, int]]:
    """Each feature's [start, end) columns of the block's output (contiguous, covering it)."""
    k = len(features)
    if isinstance(encoder, OneHotEncoder):
        names = encoder.get_feature_names_out([f"f{i}" for i in range(k)]).tolist()
        sizes = [sum(1 for n in names if n.split("_", 1)[0] == f"f{j}") for j in range(k)]
    else:
        sizes = [1] * k
    spans, start = [], 0
    for j, size in enumerate(sizes):
        # only feature j's own columns may change when only feature j changes
        encoded = rows_for(j, [*categories[j], UNSEEN])
        changing = np.flatnonzero(np.any(encoded != encoded[:1], axis=0))
        if len(changing) and (changing.min() < start or changing.max() >= start + size):
            raise ExportError(
                f"block {name!r}: feature {features[j]!r}'s columns are not contiguous"
            )
        spans.append((start, start + size))
        start += size
    if start != width:
        raise ExportError(f"block {name!r}: the features' columns cover {start} of {width}")
    return spans


def _missing_row(name: str, transformer: Any, k: int) -> np.ndarray:
    """The block's output for a missing value (None, and NaN where accepted: the same)."""
    missing_row = _dense(transformer.transform(np.array([[None] * k], dtype=object)))[0]
    try:  # NaN is missing too where the pipeline accepts it (training's imputers do)
        missing_nan = _dense(transformer.transform(np.array([[np.nan] * k], dtype=object)))[0]
    except ValueError:
        missing_nan = missing_row
    if not np.array_equal(missing_row, missing_nan):
        raise ExportError(f"block {name!r}: None and NaN encode differently")
    return missing_row


def _missing_fill(
    name: str,
    categories: list[list],
    tables: list[np.ndarray],
    spans: list[tuple[int, int]],
    missing_row: np.ndarray,
) -> str | None:
    """A missing value becomes one text (the imputers' fill) looked up like any
    other value: find it among the categories, or None = the unseen row."""

    def fits(fill: str | None) -> bool:
        for values, table, (lo, hi) in zip(categories, tables, spans, strict=True):
            row = values.index(fill) if fill in values else len(values)
            if not np.array_equal(table[row], missing_row[lo:hi]):
                return False
        return True

    candidates = [*sorted({v for values in categories for v in values}), None]
    fill = next((c for c in candidates if fits(c)), UNSEEN)
    if fill == UNSEEN:
        raise ExportError(f"block {name!r}: a missing value encodes as no single category")
    return fill


def _categorical_block(name: str, transformer: Any, features: list[str], arrays: dict) -> dict:
    encoder = _encoder(transformer)
    categories = _text_categories(name, encoder, features)
    k = len(features)
    first = np.array([[values[0] for values in categories]], dtype=object)

    def rows_for(j: int, values: list) -> np.ndarray:
        probe = np.repeat(first, len(values), axis=0)
        probe[:, j] = values
        return _dense(transformer.transform(probe))

    width = _dense(transformer.transform(first)).shape[1]
    spans = _column_spans(name, encoder, features, categories, rows_for, width)
    missing_row = _missing_row(name, transformer, k)
    block: dict[str, Any] = {
        "kind": "categorical",
        "name": name,
        "encoding": "one_hot" if isinstance(encoder, OneHotEncoder) else "ordinal",
        "features": features,
        "columns": [],
    }
    tables = []
    for j, (feature, (lo, hi)) in enumerate(zip(features, spans, strict=True)):
        table = rows_for(j, [*categories[j], UNSEEN])[:, lo:hi]
        key = f"{name}/{j}"
        arrays[f"{key}/vocabulary"] = np.array(categories[j], dtype=str)
        arrays[f"{key}/table"] = table
        block["columns"].append(
            {
                "feature": feature,
                "vocabulary_key": f"{key}/vocabulary",
                "table_key": f"{key}/table",
            }
        )
        tables.append(table)
    block["missing"] = _missing_fill(name, categories, tables, spans, missing_row)
    return block


def _preprocess(
    pre: ColumnTransformer, features: list[str], numeric: list[str], arrays: dict
) -> list[dict]:
    if not isinstance(pre, ColumnTransformer):
        raise ExportError(f"the pipeline must start with a ColumnTransformer, got {pre}")
    if getattr(pre, "sparse_output_", False):
        raise ExportError("the ColumnTransformer's output is sparse; use dense encoders")
    blocks = []
    for name, transformer, columns in pre.transformers_:
        indices = np.arange(len(features))[columns].tolist() if len(columns) else []
        if isinstance(transformer, str):
            if transformer == "drop" or not indices:
                continue
            raise ExportError(f"block {name!r}: {transformer!r} has no portable form")
        names = [features[i] for i in indices]
        kinds = {n in numeric for n in names}
        if kinds == {True}:
            blocks.append(_numeric_block(name, transformer, names, arrays))
        elif kinds == {False}:
            blocks.append(_categorical_block(name, transformer, names, arrays))
        else:
            raise ExportError(f"block {name!r} mixes numeric and categorical features")
    return blocks


# --------------------------------------------------------------------------- estimators


def _forest(forest: RandomForestClassifier, arrays: dict) -> dict:
    if list(forest.classes_) != [contracts.LABEL_DOWN, contracts.LABEL_KEEP]:
        raise ExportError(f"the forest's classes are {forest.classes_}, expected [0, 1]")
    parts: dict[str, list] = {k: [] for k in ("left", "right", "feature", "threshold", "ml", "v")}
    roots, offset = [], 0
    for tree in forest.estimators_:
        t = tree.tree_
        if t.n_outputs != 1 or t.value.shape[2] != 2:
            raise ExportError("only single-output binary trees are supported")
        leaf = t.children_left < 0
        parts["left"].append(np.where(leaf, -1, t.children_left + offset))
        parts["right"].append(np.where(leaf, -1, t.children_right + offset))
        parts["feature"].append(np.where(leaf, 0, t.feature))
        parts["threshold"].append(np.where(leaf, 0.0, t.threshold))
        parts["ml"].append(np.asarray(t.missing_go_to_left, dtype=np.uint8))
        # scikit-learn >= 1.4 stores class fractions; predict_proba returns them as they are
        parts["v"].append(np.asarray(t.value[:, 0, :], dtype=np.float64))
        roots.append(offset)
        offset += t.node_count
    index_type = np.int32 if offset < 2**31 else np.int64
    arrays["forest/left"] = np.concatenate(parts["left"]).astype(index_type)
    arrays["forest/right"] = np.concatenate(parts["right"]).astype(index_type)
    arrays["forest/feature"] = np.concatenate(parts["feature"]).astype(np.int32)
    arrays["forest/threshold"] = np.concatenate(parts["threshold"]).astype(np.float64)
    arrays["forest/missing_left"] = np.concatenate(parts["ml"]).astype(np.uint8)
    arrays["forest/value"] = np.concatenate(parts["v"])
    arrays["forest/roots"] = np.asarray(roots, dtype=index_type)
    return {
        "kind": "forest",
        "n_trees": len(roots),
        "keep_column": 1,
        **{f"{k}_key": f"forest/{k}" for k in ("left", "right", "feature", "threshold")},
        "missing_left_key": "forest/missing_left",
        "value_key": "forest/value",
        "roots_key": "forest/roots",
    }


def _linear(model: LogisticRegression, arrays: dict) -> dict:
    if list(model.classes_) != [contracts.LABEL_DOWN, contracts.LABEL_KEEP]:
        raise ExportError(f"the model's classes are {model.classes_}, expected [0, 1]")
    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.shape[0] != 1:
        raise ExportError("only a binary logistic regression (one coefficient row) is supported")
    arrays["linear/coef"] = coef[0]
    return {"kind": "linear", "coef_key": "linear/coef", "intercept": float(model.intercept_[0])}


def _calibration_map(calibrator: Any, source: str, arrays: dict) -> dict:
    """The portable form of a fitted isotonic or sigmoid calibrator."""
    if hasattr(calibrator, "a_"):
        return {
            "kind": "sigmoid",
            "input": source,
            "a": float(calibrator.a_),
            "b": float(calibrator.b_),
        }
    x = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
    if x[0] != calibrator.X_min_ or x[-1] != calibrator.X_max_:
        raise ExportError("isotonic thresholds do not span the fitted range")
    arrays["calibration/x"] = x
    arrays["calibration/y"] = np.asarray(calibrator.y_thresholds_, dtype=np.float64)
    return {"kind": "isotonic", "input": source, "x_key": "calibration/x", "y_key": "calibration/y"}


def _estimator(classifier: Any, arrays: dict) -> tuple[dict, dict | None]:
    calibration = None
    if isinstance(classifier, CalibratedClassifierCV):
        if len(classifier.calibrated_classifiers_) != 1:
            raise ExportError(
                f"CalibratedClassifierCV holds {len(classifier.calibrated_classifiers_)} "
                "calibrated classifiers; the portable format takes one (cv=[split])"
            )
        calibrated = classifier.calibrated_classifiers_[0]
        if calibrated.method not in ("isotonic", "sigmoid"):
            raise ExportError(f"calibration method {calibrated.method!r} has no portable form")
        [calibrator] = calibrated.calibrators
        classifier = calibrated.estimator
        source = "decision" if hasattr(classifier, "decision_function") else "p_keep"
        calibration = _calibration_map(calibrator, source, arrays)
    if isinstance(classifier, RandomForestClassifier):
        return _forest(classifier, arrays), calibration
    if isinstance(classifier, LogisticRegression):
        return _linear(classifier, arrays), calibration
    raise ExportError(
        f"{type(classifier).__name__} has no portable form "
        "(exported: RandomForestClassifier, LogisticRegression)"
    )


# --------------------------------------------------------------------------- writing


def feature_importance(classifier: Any, sources: np.ndarray, features: list[str]) -> dict:
    """The model's importance per input feature, for the drift rule: a forest's
    impurity importance (mean decrease in impurity, `feature_importances_`) or a
    logistic regression's |coefficient| on the standardised columns, summed over
    each feature's encoded columns (`sources` maps a column to its feature)."""
    if isinstance(classifier, CalibratedClassifierCV):
        classifier = classifier.calibrated_classifiers_[0].estimator
    if isinstance(classifier, RandomForestClassifier):
        per_column = np.asarray(classifier.feature_importances_, dtype=np.float64)
        method = "impurity (mean decrease in impurity of the forest, summed per feature)"
    else:
        per_column = np.abs(np.asarray(classifier.coef_, dtype=np.float64)[0])
        method = "|coefficient| on the transformed columns, summed per feature"
    totals = np.zeros(len(features))
    np.add.at(totals, sources, per_column)
    return {
        "method": method,
        "values": {f: float(v) for f, v in zip(features, totals, strict=True)},
    }


def _detach_daily(reference: dict, arrays: dict[str, np.ndarray]) -> dict:
    """The reference with each numeric feature's `daily.quantiles` moved into
    `arrays` (key contracts.DRIFT_DAILY_ARRAY_PREFIX + the feature's index)
    and named by that key (inference/portable.py puts the matrix back)."""
    features = {}
    for i, (name, ref) in enumerate(reference["features"].items()):
        daily = ref.get("daily")
        if daily and daily.get("days"):
            key = f"{contracts.DRIFT_DAILY_ARRAY_PREFIX}{i}"
            arrays[key] = np.asarray(daily["quantiles"], dtype=np.float64)
            ref = {**ref, "daily": {**daily, "quantiles": key}}
        features[name] = ref
    return {**reference, "features": features}


def export(
    model: Any,
    facts: dict,
    check_rows: np.ndarray,
    arrays_file: str = contracts.PORTABLE_ARRAYS_FILE,
    drift_reference: dict | None = None,
) -> tuple[bytes, bytes, float]:
    """(spec bytes, arrays bytes, max |difference| with predict_proba on
    check_rows) for a fitted pipeline. `facts` holds the serving facts:
    model_id, model_name, features, numeric_features, categorical_features,
    label, eligibility, confidence_cutpoints, library_versions. With a
    `drift_reference` (inference.monitoring.reference), the spec carries a
    `monitoring` block: it and the model's feature importance, for the hourly
    drift check (hashed and signed with the rest of the spec)."""
    wrapper, pipeline, clip = None, model, None
    if isinstance(model, CalibratedClassifier):
        wrapper, pipeline = model, model.estimator
        clip = [float(model.low), float(model.high)]
        if not 0.0 <= clip[0] < clip[1] <= 1.0:
            raise ExportError(f"clip bounds {clip} are not 0 <= low < high <= 1")
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise ExportError(f"expected Pipeline(ColumnTransformer, classifier), got {pipeline}")
    features = list(facts["features"])
    numeric = list(facts["numeric_features"])
    arrays: dict[str, np.ndarray] = {}
    blocks = _preprocess(pipeline.steps[0][1], features, numeric, arrays)
    estimator, calibration = _estimator(pipeline.steps[1][1], arrays)
    if wrapper is not None and wrapper.calibrator is not None:
        if calibration is not None:
            raise ExportError("a calibrated wrapper around an already calibrated classifier")
        source = "decision" if hasattr(pipeline.steps[1][1], "decision_function") else "p_keep"
        calibration = _calibration_map(wrapper.calibrator, source, arrays)
    width = _dense(pipeline.steps[0][1].transform(check_rows[:1])).shape[1]
    # the drift reference's per-day quantiles go to the arrays file (float64
    # matrices, days x levels): as JSON they made the spec 1.8 MB and its
    # parse ~35 ms of the Lambda's cold start
    reference_arrays: dict[str, np.ndarray] = {}
    if drift_reference is not None:
        drift_reference = _detach_daily(drift_reference, reference_arrays)
    data = artefact.npz_bytes({**arrays, **reference_arrays})
    document = {
        "format": contracts.PORTABLE_SPEC_FORMAT,
        **{key: facts[key] for key in PORTABLE_FACTS},
        "classes": [contracts.LABEL_DOWN, contracts.LABEL_KEEP],
        "arrays": {
            "file": arrays_file,
            "sha256": artefact.sha256_hex(data),
            "size_bytes": len(data),
        },
        "preprocess": {"width": width, "blocks": blocks},
        "estimator": estimator,
        "calibration": calibration,
        "clip": clip,
    }
    # optional: where the training data came from; the confidence words in use and why
    for key in ("data_provenance", "confidence"):
        if facts.get(key) is not None:
            document[key] = facts[key]
    if "model_version" in facts:  # only increases (run_folder.next_model_version)
        document["model_version"] = int(facts["model_version"])
    if drift_reference is not None:
        # the model alone first (its importance needs the evaluator's columns);
        # the spec names the reference's arrays only once `monitoring` is in
        stored = portable.read_arrays(data, arrays_file)
        first = portable.load(document, {k: v for k, v in stored.items() if k in arrays})
        document["monitoring"] = {
            "reference": drift_reference,
            "importance": feature_importance(pipeline.steps[1][1], first.sources, features),
        }
    spec = (json.dumps(document, indent=1, allow_nan=False) + "\n").encode()
    loaded = portable.load(json.loads(spec), portable.read_arrays(data, arrays_file))
    difference = check(model, loaded, check_rows)
    return spec, data, difference


def matrix_inputs(model: portable.PortableModel, X: np.ndarray) -> tuple[np.ndarray, dict]:
    """The object matrix training feeds the pipeline -> the portable model's inputs."""
    features = list(model.spec.features)
    numeric = (
        np.column_stack(
            [np.asarray(X[:, features.index(n)], dtype=np.float64) for n in model.numeric_features]
        )
        if model.numeric_features
        else np.zeros((len(X), 0))
    )
    codes = {
        name: column.codes(
            [
                None if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v)
                for v in X[:, features.index(name)].tolist()
            ]
        )
        for name, column in model.categorical.items()
    }
    return numeric, codes


def check(pipeline: Any, model: portable.PortableModel, X: np.ndarray) -> float:
    """Max |difference| between the pipeline's predict_proba and the portable
    model's on X and on probe rows; raises ExportError beyond TOLERANCE."""
    numeric, codes = matrix_inputs(model, X)
    ours = model.score(model.encode(numeric, codes)).proba
    theirs = pipeline.predict_proba(X)
    worst = float(np.max(np.abs(ours - theirs))) if len(X) else 0.0
    # probes: all numerics missing; every category missing, then unseen
    probe = np.empty((2, len(model.spec.features)), dtype=object)
    for j, name in enumerate(model.spec.features):
        if name in model.spec.numeric_features:
            probe[:, j] = np.nan
        else:
            probe[:, j] = [None, UNSEEN]
    numeric_p, codes_p = matrix_inputs(model, probe)
    worst = max(
        worst,
        float(
            np.max(
                np.abs(
                    model.score(model.encode(numeric_p, codes_p)).proba
                    - pipeline.predict_proba(probe)
                )
            )
        ),
    )
    if not worst <= TOLERANCE:
        raise ExportError(
            f"the portable model differs from the pipeline's predict_proba by {worst:.3g} "
            f"(tolerance {TOLERANCE:g}); not writing it"
        )
    return worst
