"""The portable model against scikit-learn: for every model training can ship
(random_forest, logistic, anchor) bare and in each calibration wrapper
(isotonic, sigmoid), the numpy evaluator gives the pipeline's own
predict_proba (max |difference| <= 1e-9) on the test rows of generated data
(the golden fixture's training set) and of the real DefiLlama sample, with
missing values, unseen categories, extreme values and values on the trees'
float32 thresholds added; the contributions add up and fold one-hot and
missing-indicator columns into their features; a spec and arrays that
disagree are refused, naming the part.
"""

from __future__ import annotations

import copy
import itertools
import json
import re

import golden
import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from inference.model import artefact, portable
from models_py import config, export
from models_py.data import load_training_set
from models_py.pipelines import build_pipeline, categorical_imputer
from models_py.recipe import Recipe, fit_recipe
from models_py.splits import calibration_split, time_split

MODELS = ("random_forest", "logistic", "anchor")
CALIBRATIONS = (None, "isotonic", "sigmoid")
RF_PARAMS = {"min_samples_leaf": 5, "max_depth": None, "max_samples": 0.5}
TOLERANCE = 1e-9


def facts(data, name: str) -> dict:
    return {
        "model_id": f"test-{name}",
        "model_name": name,
        "features": data.features,
        "numeric_features": data.numeric,
        "categorical_features": data.categorical,
        "label": data.label,
        "eligibility": {"min_apy_exclusive": 0, "min_observed_days": 7},
        "confidence_cutpoints": [60.0, 75.0],
        "library_versions": {},
    }


def fit(data, name: str, calibration: str | None, train: np.ndarray) -> Pipeline:
    pipeline = build_pipeline(name, data.features, data.categorical, RF_PARAMS, 8)
    X, y = data.matrix()[train], data.y[train]
    if calibration is None:
        return pipeline.fit(X, y)
    split = calibration_split(
        data.dates[train], data.label_end_dates[train], np.arange(len(train)), 0.2
    )
    wrapped = Pipeline(
        [
            ("preprocess", pipeline.named_steps["preprocess"]),
            (
                "classifier",
                CalibratedClassifierCV(
                    pipeline.named_steps["classifier"], method=calibration, cv=[split]
                ),
            ),
        ]
    )
    return wrapped.fit(X, y)


def hard_rows(data, X: np.ndarray, model: portable.PortableModel) -> np.ndarray:
    """The test rows plus rows the training never showed: missing values,
    unseen and missing categories, extreme values, and values sitting exactly
    on (and one float32 step around) every threshold of the trees."""
    features = data.features
    rng = np.random.default_rng(0)
    extra = X[rng.choice(len(X), 60)].copy()
    numeric = [features.index(n) for n in data.numeric]
    categorical = [features.index(n) for n in data.categorical]
    extra[:10, numeric] = np.nan
    extra[10:20, categorical] = None
    extra[20:30, categorical] = "never-seen-category"
    extra[30:40, numeric] = 3e38 * np.sign(rng.normal(size=(10, len(numeric))))
    extra[40:50, numeric] = rng.normal(0, 1e6, (10, len(numeric)))
    rows = [X, extra]
    if isinstance(model.estimator, portable.Forest):
        forest = model.estimator
        inner = np.flatnonzero(forest.left >= 0)
        by_column = {}
        for block in model.blocks:
            if isinstance(block, portable.NumericBlock):
                for j, k in enumerate(block.kept.tolist()):
                    by_column[j] = features.index(block.features[k])
                break
        edge = X[rng.choice(len(X), 3 * len(inner))].copy()
        for i, node in enumerate(inner.tolist()):
            column = int(forest.feature[node])
            if column not in by_column:
                continue
            t = forest.threshold[node]
            t32 = np.float32(t)
            for k, value in enumerate(
                (t, np.nextafter(t32, np.float32(-np.inf)), np.nextafter(t32, np.float32(np.inf)))
            ):
                edge[3 * i + k, by_column[column]] = float(value)
        rows.append(edge)
    return np.vstack(rows)


@pytest.fixture(scope="module")
def generated():
    files = golden.inputs()
    data = load_training_set(files["training_set"], files["feature_columns"])
    split = time_split(data.dates, data.label_end_dates, 0.3)
    return data, split


def export_and_check(data, pipeline, name, X_test):
    spec, arrays, difference = export.export(pipeline, facts(data, name), X_test)
    assert difference <= TOLERANCE
    model = portable.load(json.loads(spec), portable.read_arrays(arrays))
    return model, spec, arrays


@pytest.mark.parametrize("calibration", CALIBRATIONS)
@pytest.mark.parametrize("name", MODELS)
def test_equal_to_predict_proba_on_generated_data(generated, name, calibration):
    data, split = generated
    pipeline = fit(data, name, calibration, split.train_index)
    X_test = data.matrix()[split.test_index]
    model, _, _ = export_and_check(data, pipeline, name, X_test)
    X = hard_rows(data, X_test, model)
    assert export.check(pipeline, model, X) <= TOLERANCE
    proba = model.score(model.encode(*export.matrix_inputs(model, X))).proba
    assert len(np.unique(np.round(proba[:, 1], 6))) > 10  # not a constant model
    assert (model.calibration is None) == (calibration is None)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_equal_to_predict_proba_on_the_real_defillama_sample(real_sample_home, name):
    data = load_training_set(real_sample_home.training_set, real_sample_home.feature_columns)
    split = time_split(data.dates, data.label_end_dates, 0.3)
    for calibration in CALIBRATIONS:
        pipeline = fit(data, name, calibration, split.train_index)
        X_test = data.matrix()[split.test_index]
        model, _, _ = export_and_check(data, pipeline, name, X_test)
        assert export.check(pipeline, model, hard_rows(data, X_test, model)) <= TOLERANCE


def _base(pipeline: Pipeline):
    classifier = pipeline.steps[-1][1]
    if isinstance(classifier, CalibratedClassifierCV):
        return classifier.calibrated_classifiers_[0].estimator
    return classifier


@pytest.mark.parametrize("calibration", CALIBRATIONS)
@pytest.mark.parametrize("name", MODELS)
def test_contributions_add_up_to_the_uncalibrated_score(generated, name, calibration):
    data, split = generated
    pipeline = fit(data, name, calibration, split.train_index)
    X = data.matrix()[split.test_index]
    model, _, _ = export_and_check(data, pipeline, name, X)
    scores = model.score(model.encode(*export.matrix_inputs(model, X)), explain=True)
    assert scores.contributions.shape == (len(X), len(data.features))
    Xt = pipeline.steps[0][1].transform(X)
    base = _base(pipeline)
    if name == "logistic":
        # coef x transformed value: sums to logit(uncalibrated p_keep) - intercept
        logit = base.decision_function(Xt)
        assert np.max(np.abs(scores.raw - logit)) <= TOLERANCE
        total = scores.contributions.sum(axis=1) + scores.bias
        assert np.max(np.abs(total - logit)) <= TOLERANCE
        assert scores.bias == base.intercept_[0]
    else:
        # Saabas: sums to the uncalibrated p_keep minus the mean root value
        p_keep = base.predict_proba(Xt)[:, 1]
        assert np.max(np.abs(scores.raw - p_keep)) <= TOLERANCE
        total = scores.contributions.sum(axis=1) + scores.bias
        assert np.max(np.abs(total - p_keep)) <= TOLERANCE
        roots = [tree.tree_.value[0, 0, 1] for tree in base.estimators_]
        assert scores.bias == pytest.approx(np.mean(roots), abs=1e-15)
    explanation = model.explanation()
    assert explanation["explains"] == (
        "the score" if calibration is None else "the uncalibrated score"
    )
    assert explanation["calibration"] == calibration


def _feature_of_output(pipeline: Pipeline, features: list[str]) -> list[str]:
    """Output column -> source feature, from scikit-learn's own feature names
    (x<i> is the i-th input column; one-hot and missing indicators keep it)."""
    names = pipeline.steps[0][1].get_feature_names_out()
    out = []
    for name in names:
        local = name.split("__", 1)[1].removeprefix("missingindicator_")
        out.append(features[int(local.split("_", 1)[0][1:])])
    return out


def test_saabas_contributions_match_scikit_learns_decision_paths(generated):
    """An independent computation: walk scikit-learn's own decision_path of
    every tree, add each step's change of p_keep to the split column, fold by
    scikit-learn's output feature names."""
    data, split = generated
    pipeline = fit(data, "random_forest", None, split.train_index)
    X = data.matrix()[split.test_index][:80]
    X[:5, data.features.index("chain")] = None
    X[5:10, data.features.index("project")] = "never-seen"
    model, _, _ = export_and_check(data, pipeline, "random_forest", X)
    ours = model.score(model.encode(*export.matrix_inputs(model, X)), explain=True).contributions
    Xt = pipeline.steps[0][1].transform(X).astype(np.float32)
    source = _feature_of_output(pipeline, data.features)
    expected = np.zeros_like(ours)
    forest = pipeline.steps[-1][1]
    for tree in forest.estimators_:
        t = tree.tree_
        paths = tree.decision_path(Xt)
        for row in range(len(X)):
            nodes = paths.indices[paths.indptr[row] : paths.indptr[row + 1]]
            for parent, child in itertools.pairwise(nodes):
                column = data.features.index(source[t.feature[parent]])
                expected[row, column] += t.value[child, 0, 1] - t.value[parent, 0, 1]
    expected /= len(forest.estimators_)
    assert np.max(np.abs(ours - expected)) <= 1e-12
    categorical = [data.features.index(c) for c in ("chain", "project")]
    assert np.any(ours[:, categorical] != 0)  # one-hot columns folded into chain / project


def test_calibrated_clip_bounds_the_served_probability(generated):
    """The spec's `clip` (the next issue's bound) is one field: p_keep is held in it."""
    data, split = generated
    pipeline = fit(data, "random_forest", "isotonic", split.train_index)
    X = data.matrix()[split.test_index]
    spec, arrays, _ = export.export(pipeline, facts(data, "random_forest"), X)
    document = json.loads(spec)
    document["clip"] = [0.1, 0.9]
    model = portable.load(document, portable.read_arrays(arrays))
    proba = model.score(model.encode(*export.matrix_inputs(model, X))).proba
    assert proba[:, 1].min() >= 0.1 and proba[:, 1].max() <= 0.9
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(
        proba[:, 1], np.clip(pipeline.predict_proba(X)[:, 1], 0.1, 0.9), rtol=0, atol=TOLERANCE
    )


@pytest.mark.parametrize("name", ["prior", "heuristic"])
def test_models_without_a_portable_form_are_refused(generated, name):
    data, split = generated
    pipeline = build_pipeline(name, data.features, data.categorical)
    pipeline.fit(data.matrix()[split.train_index], data.y[split.train_index])
    with pytest.raises(export.ExportError, match="no portable form"):
        export.export(pipeline, facts(data, name), data.matrix()[split.test_index])


def test_an_encoder_that_refuses_unseen_categories_is_refused(generated):
    data, split = generated
    pipeline = build_pipeline("random_forest", data.features, data.categorical, RF_PARAMS, 4)
    columns = [data.features.index(c) for c in data.categorical]
    numeric = pipeline.named_steps["preprocess"].transformers[0]
    pipeline.steps[0] = (
        "preprocess",
        ColumnTransformer(
            [
                numeric,
                (
                    "categorical",
                    make_pipeline(
                        categorical_imputer(),
                        OneHotEncoder(handle_unknown="error", sparse_output=False),
                    ),
                    columns,
                ),
            ]
        ),
    )
    pipeline.fit(data.matrix()[split.train_index], data.y[split.train_index])
    with pytest.raises(export.ExportError, match="handle_unknown='error'"):
        export.export(pipeline, facts(data, "random_forest"), data.matrix()[split.test_index])


# --------------------------------------------------------------------------- spec vs arrays


@pytest.fixture(scope="module")
def exported(tiny_run):
    document = json.loads((tiny_run / "model_spec.json").read_text())
    arrays = portable.read_arrays((tiny_run / "model_arrays.npz").read_bytes())
    return document, arrays


def _drop_last(arrays, key):
    arrays[key] = arrays[key][:-1]


def _set(arrays, key, value):
    arrays[key] = value


DISAGREEMENTS = [
    # (edit of the spec, edit of the arrays, part named in the error)
    (lambda d: d.update(format="apy-runway/portable-model/v9"), None, "format"),
    (lambda d: d["features"].append("extra"), None, "features"),
    (lambda d: d["numeric_features"].remove("apy"), None, "numeric_features"),
    (lambda d: d.update(classes=[1, 0]), None, "classes"),
    (lambda d: d["preprocess"]["blocks"][0].update(kind="target_encoder"), None, "blocks[0].kind"),
    (
        lambda d: d["preprocess"]["blocks"][0]["steps"].append({"kind": "log"}),
        None,
        "steps[0].kind",
    ),
    (lambda d: d["preprocess"]["blocks"][1].update(encoding="hashing"), None, "encoding"),
    (lambda d: d["preprocess"].update(width=99), None, "preprocess.width"),
    (lambda d: d["estimator"].update(kind="xgboost"), None, "estimator.kind"),
    (lambda d: d["estimator"].update(n_trees=3), None, "n_trees"),
    (lambda d: d.update(calibration={"kind": "beta", "input": "p_keep"}), None, "calibration.kind"),
    (lambda d: d.update(clip=[0.9, 0.1]), None, "clip"),
    (lambda d: d["preprocess"]["blocks"][0].update(fill_key="nope"), None, "fill_key"),
    (None, lambda a: _drop_last(a, "forest/threshold"), "node arrays disagree"),
    (None, lambda a: _drop_last(a, "numeric/fill"), "fill values"),
    (None, lambda a: _set(a, "forest/feature", a["forest/feature"] + 1000), "feature_key"),
    (None, lambda a: _set(a, "forest/left", np.minimum(a["forest/left"], 0)), "left_key"),
    (None, lambda a: _set(a, "forest/roots", a["forest/roots"][::-1].copy()), "roots"),
    (None, lambda a: _set(a, "numeric/fill", a["numeric/fill"] * np.inf), "finite"),
    (None, lambda a: _drop_last(a, "categorical/0/table"), "table"),
    (None, lambda a: _set(a, "numeric/kept", a["numeric/kept"] + 50), "kept_key"),
    (None, lambda a: _set(a, "stray", np.zeros(3)), "never names"),
    (None, lambda a: _set(a, "forest/threshold", a["forest/threshold"].astype("U8")), "threshold"),
]


@pytest.mark.parametrize("edit_spec, edit_arrays, part", DISAGREEMENTS)
def test_a_spec_and_arrays_that_disagree_are_refused_naming_the_part(
    exported, edit_spec, edit_arrays, part
):
    document, arrays = copy.deepcopy(exported[0]), dict(exported[1])
    if edit_spec:
        edit_spec(document)
    if edit_arrays:
        edit_arrays(arrays)
    with pytest.raises(artefact.ModelIntegrityError, match=re.escape(part)):
        portable.load(document, arrays)


def test_an_object_array_is_never_unpickled(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import io

    buffer = io.BytesIO()
    np.savez(buffer, bad=np.array([Payload()], dtype=object))
    with pytest.raises(artefact.ModelIntegrityError, match="allow_pickle"):
        portable.read_arrays(buffer.getvalue())
    assert not marker.exists()


@pytest.mark.parametrize("method", ["none", "sigmoid", "isotonic"])
@pytest.mark.parametrize("name", MODELS)
def test_the_shipped_calibrated_recipe_exports_equal_with_its_clip(generated, name, method):
    """What training ships (models_py.calibration.CalibratedClassifier: a
    pipeline, a calibration map of its p_keep or decision, the Laplace clip)."""
    data, split = generated
    recipe = Recipe(
        name,
        tuple(config.ANCHOR_NUMERIC if name == "anchor" else data.numeric),
        tuple(config.ANCHOR_CATEGORICAL if name == "anchor" else data.categorical),
        RF_PARAMS,
        rf_trees=8,
        calibration=method,
    )
    X = data.matrix(recipe.features)
    shipped = fit_recipe(recipe, X, data.y, data.dates, data.label_end_dates, split.train_index)
    recipe_facts = {
        **facts(data, name),
        "features": recipe.features,
        "numeric_features": list(recipe.numeric),
        "categorical_features": list(recipe.categorical),
    }
    spec, arrays, difference = export.export(shipped, recipe_facts, X[split.test_index])
    assert difference <= TOLERANCE
    document = json.loads(spec)
    assert document["clip"] == [shipped.low, shipped.high] and 0 < shipped.low < shipped.high < 1
    assert (document["calibration"] or {}).get("kind") == (None if method == "none" else method)
    model = portable.load(document, portable.read_arrays(arrays))
    numeric, codes = export.matrix_inputs(model, X[split.test_index])
    served = model.score(model.encode(numeric, codes)).proba[:, 1]
    assert served.min() >= shipped.low and served.max() <= shipped.high
