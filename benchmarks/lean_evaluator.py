"""A leaner evaluator of the same fitted pipeline (a prototype for inference/).

    python -m benchmarks.lean_evaluator HOME RUN_DIR [--pools 20000]

The Lambda scores 20k pools with `pipeline.predict_proba(object matrix)`. The
profile (RESULTS.md) shows where its time goes: building the object matrix row
by row in Python, the ColumnTransformer (SimpleImputer + OneHotEncoder on object
columns) and joblib threads inside the forest. This evaluator keeps the fitted
model untouched and only evaluates it differently:

- numeric columns: one `np.array(column, dtype=float)` each (None -> NaN), then
  the imputer's fitted medians and missing indicators with numpy;
- categorical columns: a lookup table per column built by passing every fitted
  category (and one unseen marker) through the fitted categorical pipeline once,
  so unknown / infrequent / None handling is sklearn's own;
- the forest's predict_proba with n_jobs=1 (threads cost more than they save on
  20k rows x 40 shallow trees on 2 busy cores).

It prints the time of each path and the largest probability difference (must be
0 up to float rounding).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

UNSEEN = "\x00unseen-category\x00"


def compile_forest(pipeline, numeric: list[str], categorical: list[str], features: list[str]):
    """A function columns(dict of lists) -> (n, 2) probabilities, equal to
    pipeline.predict_proba."""
    pre = pipeline.named_steps["preprocess"]
    classifier = pipeline.named_steps["classifier"]
    blocks = {
        name: (transformer, list(index))
        for name, transformer, index in pre.transformers_
        if name != "remainder"
    }
    if set(blocks) != {"numeric", "categorical"}:
        raise ValueError(f"expected numeric + categorical blocks, got {sorted(blocks)}")
    imputer, numeric_index = blocks["numeric"]
    encoder, categorical_index = blocks["categorical"]
    numeric_names = [features[i] for i in numeric_index]
    categorical_names = [features[i] for i in categorical_index]
    medians = np.asarray(imputer.statistics_, dtype=float)
    indicator = list(imputer.indicator_.features_) if imputer.indicator_ is not None else []

    # one encoded row per fitted category and per column, through the fitted pipeline itself
    width = encoder.transform(np.array([[UNSEEN] * len(categorical_index)], dtype=object)).shape[1]
    spans = _column_spans(encoder, len(categorical_index), width)
    tables = []
    for j, (lo, hi) in enumerate(spans):
        known = [str(c) for c in _categories(encoder)[j]] + [UNSEEN, None]
        probe = np.array([[UNSEEN] * len(categorical_index)] * len(known), dtype=object)
        probe[:, j] = known
        encoded = encoder.transform(probe)
        codes = {value: k for k, value in enumerate(known)}
        tables.append((codes, codes[UNSEEN], encoded[:, lo:hi], lo, hi))
    classifier_jobs = 1

    def evaluate(columns: dict) -> np.ndarray:
        n = len(columns[numeric_names[0]]) if numeric_names else len(columns[categorical_names[0]])
        X_num = np.empty((n, len(numeric_names)), dtype=float)
        for j, name in enumerate(numeric_names):
            X_num[:, j] = np.array(columns[name], dtype=float)
        missing = np.isnan(X_num)
        filled = np.where(missing, medians, X_num)
        parts = [filled, missing[:, indicator].astype(float)] if indicator else [filled]
        X_cat = np.empty((n, width), dtype=float)
        for j, name in enumerate(categorical_names):
            codes, unseen, rows, lo, hi = tables[j]
            index = np.fromiter(
                (
                    codes.get(v if v is None or isinstance(v, str) else str(v), unseen)
                    for v in columns[name]
                ),
                dtype=np.intp,
                count=n,
            )
            X_cat[:, lo:hi] = rows[index]
        parts.append(X_cat)
        matrix = np.hstack(parts)
        jobs = classifier.n_jobs
        classifier.n_jobs = classifier_jobs
        try:
            return classifier.predict_proba(matrix)
        finally:
            classifier.n_jobs = jobs

    return evaluate


def _categories(encoder):
    onehot = encoder.steps[-1][1] if hasattr(encoder, "steps") else encoder
    return onehot.categories_


def _column_spans(encoder, n_columns: int, width: int) -> list[tuple[int, int]]:
    onehot = encoder.steps[-1][1] if hasattr(encoder, "steps") else encoder
    names = [name.split("_", 1)[0] for name in onehot.get_feature_names_out()]
    spans, start = [], 0
    for j in range(n_columns):
        size = names.count(f"x{j}")
        spans.append((start, start + size))
        start += size
    if start != width:
        raise ValueError(f"one-hot spans cover {start} of {width} columns")
    return spans


def standard_matrix(columns: dict, spec) -> np.ndarray:
    """The object matrix inference.publication.score_published builds (same code path)."""
    n = len(columns["pool_id"])
    matrix = np.empty((n, len(spec.features)), dtype=object)
    for j, name in enumerate(spec.features):
        values = columns[name]
        if name in spec.numeric_features:
            matrix[:, j] = np.array([np.nan if v is None else v for v in values], dtype=float)
        else:
            matrix[:, j] = [None if v is None else str(v) for v in values]
    return matrix


def best_ms(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("home")
    parser.add_argument("run_dir")
    parser.add_argument("--pools", type=int, default=20_000)
    args = parser.parse_args(argv)

    import joblib

    from benchmarks.inference_bench import replicated_payload
    from inference import artefact

    run_dir = Path(args.run_dir)
    metadata = json.loads((run_dir / "metadata.json").read_text())
    spec = artefact.ModelSpec.from_metadata(metadata)
    model = joblib.load(run_dir / metadata.get("model_file", "model.joblib"))
    columns = replicated_payload(Path(args.home), args.pools)["columns"]

    started = time.perf_counter()
    evaluate = compile_forest(
        model, list(spec.numeric_features), list(spec.categorical_features), list(spec.features)
    )
    compile_ms = round((time.perf_counter() - started) * 1000, 1)
    matrix = standard_matrix(columns, spec)
    reference = model.predict_proba(matrix)
    lean = evaluate(columns)
    pre, classifier = model.named_steps["preprocess"], model.named_steps["classifier"]
    transformed = pre.transform(matrix)
    figures = {
        "pools": args.pools,
        "n_estimators": classifier.n_estimators,
        "max_abs_difference": float(np.max(np.abs(reference - lean))),
        "standard_matrix_ms": best_ms(lambda: standard_matrix(columns, spec)),
        "standard_preprocess_ms": best_ms(lambda: pre.transform(matrix)),
        "standard_forest_ms": best_ms(lambda: classifier.predict_proba(transformed)),
        "standard_predict_proba_ms": best_ms(lambda: model.predict_proba(matrix)),
        "lean_compile_ms": compile_ms,
        "lean_total_ms": best_ms(lambda: evaluate(columns)),
    }
    # the same evaluator when numeric columns arrive as arrays (a binary transport,
    # e.g. one float64 .npy block in S3, instead of JSON lists of Python floats)
    arrays = {
        name: (np.array(values, dtype=float) if name in spec.numeric_features else values)
        for name, values in columns.items()
    }
    figures["json_lists_to_arrays_ms"] = best_ms(
        lambda: {
            name: np.array(values, dtype=float)
            for name, values in columns.items()
            if name in spec.numeric_features
        }
    )
    figures["lean_from_arrays_ms"] = best_ms(lambda: evaluate(arrays))
    jobs = classifier.n_jobs
    classifier.n_jobs = 1
    figures["forest_n_jobs_1_ms"] = best_ms(lambda: classifier.predict_proba(transformed))
    classifier.n_jobs = jobs
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
