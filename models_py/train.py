"""`apy-runway train`: train, compare and save the model; write the run folder.

Reads data/exports/training_set.parquet and feature_columns.json (from
`apy-runway build`), splits on dates with the label-window purge, compares the
baselines, logistic regression, the random forest and the prototype anchor on
walk-forward folds and on the test period, and writes runs/<run_id>/
(model.joblib, metadata.json, report.md + plots), then points runs/latest at it.
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from apy_runway.console import UserError, log
from apy_runway.paths import ProjectPaths
from models_py import artefact, config, evaluate, report
from models_py.data import load_training_set
from models_py.training import Settings, TrainingResult, train_models

COMMAND = "train"
HELP = "train and evaluate the models on the exported training set; write runs/<run_id>/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--training-set", type=Path, default=None,
                        help="training set parquet (default: data/exports/training_set.parquet)")
    parser.add_argument("--feature-columns", type=Path, default=None,
                        help="feature contract (default: data/exports/feature_columns.json)")
    parser.add_argument("--run-id", default=None,
                        help="run folder name (default: UTC time, e.g. 20261125T123456Z)")
    parser.add_argument("--models", default=",".join(config.MODEL_NAMES),
                        help=f"comma-separated models (default: all of {','.join(config.MODEL_NAMES)})")
    parser.add_argument("--rf-trees", type=int, default=config.RF_TREES,
                        help=f"trees per random forest (default {config.RF_TREES})")
    parser.add_argument("--rf-reference", action="store_true",
                        help="also score a prototype-sized forest (100 trees, min_samples_leaf=1) "
                             "on the folds, to state the lean forest's AUC cost (slow; never chosen)")
    parser.add_argument("--max-artefact-mb", type=float, default=config.MAX_ARTEFACT_MB,
                        help="grow min_samples_leaf until model.joblib fits "
                             f"(default {config.MAX_ARTEFACT_MB:g} MB)")
    parser.add_argument("--upload", default=None, metavar="s3://BUCKET/PREFIX",
                        help="upload the run folder to s3://BUCKET/PREFIX/<run_id>/")
    parser.add_argument("--endpoint-url", default=None,
                        help="S3 endpoint for --upload (default: $AWS_ENDPOINT_URL or AWS)")
    parser.add_argument("--explore-labels", action="store_true",
                        help="also retrain under each label variant (rebuilds the labels with "
                             "dbt, then restores the default build); writes label_variants.md")
    parser.add_argument("--labels-model", default=config.LABELS_MODEL,
                        help=f"dbt labels model rebuilt per variant (default {config.LABELS_MODEL})")
    parser.add_argument("--calibration", choices=["auto", "off"], default=config.CALIBRATION_DEFAULT,
                        help="auto: isotonic calibration only if it improves Brier without worse "
                             "log loss on the last walk-forward folds; off: never "
                             f"(default {config.CALIBRATION_DEFAULT})")
    parser.add_argument("--no-report", action="store_true",
                        help="skip report.md, plots and permutation importance")


def parse_models(text: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in models if m not in config.MODEL_NAMES]
    if unknown or not models:
        raise UserError(f"--models: unknown {unknown or text!r}; choose from "
                        f"{','.join(config.MODEL_NAMES)}")
    return models


def run(args: argparse.Namespace, paths: ProjectPaths) -> int:
    settings = Settings(models=parse_models(args.models), rf_trees=args.rf_trees,
                        max_artefact_mb=args.max_artefact_mb,
                        calibration=getattr(args, "calibration", config.CALIBRATION_DEFAULT),
                        rf_reference=getattr(args, "rf_reference", False))
    if args.rf_trees < 1:
        raise UserError(f"--rf-trees must be >= 1, got {args.rf_trees}")
    upload_target = artefact.parse_s3_url(args.upload) if args.upload else None
    training_set = args.training_set or paths.training_set
    feature_columns = args.feature_columns or paths.feature_columns
    run_id = args.run_id or artefact.new_run_id()
    run_dir = paths.runs / run_id
    if run_id == artefact.LATEST or "/" in run_id:
        raise UserError(f"--run-id {run_id!r} is not a valid folder name")
    if run_dir.exists():
        raise UserError(f"run folder {run_dir} already exists: choose another --run-id")

    if args.explore_labels and Path(training_set).resolve() != paths.training_set.resolve():
        raise UserError("--explore-labels rebuilds the project's own export; "
                        f"it cannot be combined with --training-set {training_set}")
    data = load_training_set(training_set, feature_columns)
    log(f"training set: {len(data.frame)} eligible labelled rows, "
        f"{data.frame['pool_id'].nunique()} pools, {len(data.features)} features "
        f"(dropped {data.dropped}); label {data.label}")
    result = train_models(data, settings)
    metadata = write_run(result, run_dir, run_id, settings, with_report=not args.no_report)
    artefact.verify_artefact(run_dir)
    link = artefact.update_latest(paths.runs, run_id)
    log(f"wrote {run_dir} ({metadata['model_name']}, test AUC "
        f"{metadata['metrics'][metadata['model_name']]['production_test']['roc_auc']:.4f}, "
        f"{metadata['model_size_bytes'] / 1e6:.1f} MB); {link} -> {run_id}")
    if args.explore_labels:
        from models_py.explore_labels import explore_label_variants
        explore_label_variants(paths, run_dir, settings, result.rf_params,
                               labels_model=args.labels_model,
                               training_set=training_set, feature_columns=feature_columns)
    if upload_target:
        bucket, prefix = upload_target
        keys = artefact.upload_run(run_dir, bucket, prefix, endpoint_url=args.endpoint_url)
        log(f"uploaded {len(keys)} files to s3://{bucket}/{prefix + '/' if prefix else ''}{run_id}/")
    return 0


def _clean_cv(cv: dict) -> dict:
    return {k: v for k, v in cv.items() if k not in ("predictions", "last_model")}


def _dates(values) -> tuple[str, str]:
    values = np.asarray(values).astype("datetime64[D]")
    return str(values.min()), str(values.max())


def write_run(result: TrainingResult, run_dir: Path, run_id: str, settings: Settings,
              with_report: bool = True) -> dict:
    """Evaluate the production model, save model + metadata (+ report)."""
    data, train, test = result.data, result.train_index, result.test_index
    X, y = data.matrix(), data.y
    frame = data.frame
    production = result.production_model
    p_test = production.predict_proba(X[test])[:, 1]
    production_test = evaluate.metrics(y[test], p_test)
    pools_test = frame["pool_id"].to_numpy()[test]
    production_test["ci"] = evaluate.bootstrap_auc_by_pool(
        y[test], p_test, pools_test, settings.bootstrap_samples)
    cutpoints = evaluate.confidence_cutpoints(p_test)
    hit_rate = evaluate.hit_rate_by_confidence(y[test], p_test, cutpoints)
    latency = evaluate.time_predict(production, X[test], config.LATENCY_ROWS)

    anchor = result.results.get("anchor")
    model_metrics = {}
    for name, res in result.results.items():
        entry = {"test": res.test, "cv": _clean_cv(res.cv), **res.extra}
        if anchor is not None:
            entry["lift_over_anchor"] = {
                "test_roc_auc": res.test["roc_auc"] - anchor.test["roc_auc"],
                "cv_auc_mean": res.cv["cv_auc_mean"] - anchor.cv["cv_auc_mean"]}
        model_metrics[name] = entry
    model_metrics[result.production]["production_test"] = production_test

    run_dir.mkdir(parents=True)
    saved = artefact.save_model(production, run_dir)
    train_dates, test_dates = _dates(data.dates[train]), _dates(data.dates[test])
    metadata = {
        "model_id": run_id,
        "model_name": result.production,
        **saved,
        "features": data.features,
        "numeric_features": data.numeric,
        "categorical_features": data.categorical,
        "label": data.label,
        "eligibility": dict(config.ELIGIBILITY),
        "confidence_cutpoints": cutpoints,
        "classes": {"0": "Down", "1": "Stable/Up"},
        "training": {
            "train_start": train_dates[0], "train_end": train_dates[1],
            "test_start": str(result.split.test_start), "test_end": test_dates[1],
            "train_rows": int(len(train)), "test_rows": int(len(test)),
            "purged_rows": int(result.split.purged_rows),
            "train_pools": int(frame["pool_id"].iloc[train].nunique()),
            "test_pools": int(frame["pool_id"].iloc[test].nunique()),
            "dropped_rows": data.dropped,
            "walk_forward_folds": result.fold_table,
            "seconds": round(result.seconds, 1),
        },
        "metrics": model_metrics,
        "random_forest": {
            "n_estimators": settings.rf_trees, "params": result.rf_params,
            "candidates_on_folds": result.rf_selection, "size_guard": result.size_guard,
            "max_artefact_mb": settings.max_artefact_mb,
        },
        "calibration": {k: v for k, v in result.calibration.items()},
        "predict_proba_latency": latency,
        "library_versions": artefact.library_versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if with_report:
        metadata["report"] = "report.md"
        write_full_report(result, run_dir, metadata, X, y, p_test, hit_rate)
    artefact.write_metadata(run_dir, metadata)
    return metadata


def model_table(result: TrainingResult, metadata: dict) -> pd.DataFrame:
    rows = []
    anchor = result.results.get("anchor")
    for name, res in result.results.items():
        oob = res.extra.get("oob_roc_auc")
        rows.append({
            "model": name + (" (production)" if name == result.production else ""),
            "test ROC AUC": res.test["roc_auc"],
            "95% CI (pools)": f"{res.test['ci']['low']:.3f}-{res.test['ci']['high']:.3f}",
            "lift vs anchor": res.test["roc_auc"] - anchor.test["roc_auc"] if anchor else float("nan"),
            "CV AUC mean": res.cv["cv_auc_mean"], "CV AUC std": res.cv["cv_auc_std"],
            "PR AUC (Down)": res.test["pr_auc_down"], "Brier": res.test["brier"],
            "log loss": res.test["log_loss"], "OOB ROC AUC": oob if oob is not None else float("nan"),
        })
    if result.calibration.get("applied") or len(result.size_guard) > 1:
        test = metadata["metrics"][result.production]["production_test"]
        changes = (["isotonic"] if result.calibration.get("applied") else []) + (
            ["size guard"] if len(result.size_guard) > 1 else [])
        rows.append({
            "model": f"{result.production} + {' + '.join(changes)} (model.joblib)",
            "test ROC AUC": test["roc_auc"],
            "95% CI (pools)": f"{test['ci']['low']:.3f}-{test['ci']['high']:.3f}",
            "lift vs anchor": test["roc_auc"] - anchor.test["roc_auc"] if anchor else float("nan"),
            "CV AUC mean": float("nan"), "CV AUC std": float("nan"),
            "PR AUC (Down)": test["pr_auc_down"], "Brier": test["brier"],
            "log loss": test["log_loss"], "OOB ROC AUC": float("nan"),
        })
    return pd.DataFrame(rows)


def write_full_report(result: TrainingResult, run_dir: Path, metadata: dict, X, y, p_test,
                      hit_rate: pd.DataFrame) -> None:
    started = time.perf_counter()
    data, test = result.data, result.test_index
    y_test = y[test]
    months = data.frame["snapshot_date"].iloc[test].dt.strftime("%Y-%m").to_numpy()
    projects = data.frame["project"].astype(str).to_numpy()[test] \
        if "project" in data.frame.columns else None
    predictions = {name: res.p_test for name, res in result.results.items()}
    report.plot_roc(y_test, predictions, run_dir / "roc.png")
    shown = {k: v for k, v in predictions.items() if k != "prior"}
    shown[f"{result.production} (artefact)"] = p_test
    report.plot_calibration(y_test, shown, run_dir / "calibration.png")
    by_month = {name: evaluate.auc_by_group(y_test, p, months)
                for name, p in predictions.items() if name not in ("prior",)}
    report.plot_auc_by_month(by_month, run_dir / "auc_by_month.png")

    rng = np.random.default_rng(config.RANDOM_STATE)
    sample = rng.choice(len(test), min(config.PERMUTATION_ROWS, len(test)), replace=False)
    importance = permutation_importance(
        result.production_model, X[test][sample], y_test[sample], scoring="roc_auc",
        n_repeats=config.PERMUTATION_REPEATS, random_state=config.RANDOM_STATE, n_jobs=1)
    importance = pd.DataFrame({"feature": data.features,
                               "auc_drop_mean": importance.importances_mean,
                               "auc_drop_std": importance.importances_std}
                              ).sort_values("auc_drop_mean", ascending=False)
    report.plot_importance(importance, run_dir / "permutation_importance.png")

    meta, training = metadata, metadata["training"]
    production_test = meta["metrics"][result.production]["production_test"]
    anchor = result.results.get("anchor")
    heuristic = result.results.get("heuristic")
    headline = [
        f"- Production model: **{result.production}** ({meta['model_file']}, "
        f"{meta['model_size_bytes'] / 1e6:.2f} MB, sha256 `{meta['model_sha256'][:16]}...`), "
        f"test ROC AUC **{production_test['roc_auc']:.4f}** (95% CI by pool "
        f"{production_test['ci']['low']:.3f}-{production_test['ci']['high']:.3f})"
        + (" after isotonic calibration" if result.calibration.get("applied") else "") + ".",
    ]
    if anchor is not None:
        headline.append(f"- Anchor (prototype: same forest on apy, tvl_usd, apy_expanding_mean/std, "
                        f"chain, project; ordinal categories): test ROC AUC {anchor.test['roc_auc']:.4f}; "
                        f"lift of the production model {production_test['roc_auc'] - anchor.test['roc_auc']:+.4f}.")
    if heuristic is not None:
        headline.append(f"- Heuristic baseline (apy vs its expanding mean): test ROC AUC "
                        f"{heuristic.test['roc_auc']:.4f}.")
    latency = meta["predict_proba_latency"]
    headline.append(f"- predict_proba (whole pipeline) on {latency['rows']} rows: "
                    f"{latency['wall_ms']:.0f} ms wall (best of 3), {latency['cpu_ms']:.0f} ms CPU, "
                    "on this machine.")
    label = meta["label"]
    setup = "\n".join([
        f"- Label `{label['column']}`: kept unless apy_future/apy - 1 < {label['apy_drop_threshold']} "
        f"(apy_future = {label['apy_future_stat']} of days d+1..d+{label['horizon_days']}, "
        f"min coverage {label['min_future_coverage']}, dead pools dropped = "
        f"{label['dead_pool_is_dropped']}); read from the training set's columns.",
        f"- Eligible rows only (apy > 0, at least 7 observed days); dropped: {training['dropped_rows']}.",
        f"- Train: {training['train_start']} .. {training['train_end']} ({training['train_rows']} rows, "
        f"{training['train_pools']} pools): only rows whose label window ends before the test "
        f"start {training['test_start']} ({training['purged_rows']} rows purged).",
        f"- Test: {training['test_start']} .. {training['test_end']} ({training['test_rows']} rows, "
        f"{training['test_pools']} pools).",
        f"- Walk-forward CV: {len(result.fold_table)} folds on dates before the test start, "
        "each trained only on rows whose label window ends before its validation block.",
        f"- Training took {training['seconds']} s.",
    ])
    folds = pd.DataFrame(result.fold_table)
    rf = meta["random_forest"]
    rf_lines = [f"{rf['n_estimators']} trees, chosen on the folds: `{json.dumps(rf['params'])}`.",
                "Candidates (leanest first; the first within "
                f"{config.RF_SELECTION_TOLERANCE} of the best fold AUC wins; AUC cost = best fold "
                "AUC of any row minus this row's):", ""]
    if result.rf_selection:
        rf_lines.append(report.markdown_table(pd.DataFrame([
            {"settings": json.dumps(r["params"]) + (" (reference)" if r["reference"] else ""),
             "CV AUC mean": r["cv_auc_mean"],
             "CV AUC std": r["cv_auc_std"], "AUC cost vs best": r["auc_cost_vs_best"],
             "last-fold model MB": r["last_fold_model_mb"], "fit s": r["fit_seconds_mean"],
             "chosen": r["chosen"]} for r in result.rf_selection])))
    rf_lines += ["", "Artefact size guard (--max-artefact-mb "
                 f"{rf['max_artefact_mb']:g}):", "",
                 report.markdown_table(pd.DataFrame(rf["size_guard"])),
                 "", "OOB ROC AUC (model table) scores each training row with the trees that "
                 "did not sample it: those trees still saw the same pool on neighbouring days "
                 "(near-copies) and the same dates, so OOB is optimistic on autocorrelated pool "
                 "data; compare it with the walk-forward and test AUCs, which are not."]
    calibration = result.calibration
    calibration_text = (
        f"Isotonic calibration (fit on the last {config.CALIBRATION_FRACTION:.0%} of training dates, "
        f"purged) checked on the last {calibration.get('folds_checked', 0)} folds: fold Brier "
        f"{report._fmt(calibration.get('raw_brier'))} raw vs "
        f"{report._fmt(calibration.get('isotonic_brier'))} calibrated, log loss "
        f"{report._fmt(calibration.get('raw_log_loss'))} vs "
        f"{report._fmt(calibration.get('isotonic_log_loss'))} -> "
        f"{'applied' if calibration.get('applied') else 'not applied'}"
        + (" (--calibration off)" if calibration.get("disabled") else "") + ".\n\n"
        + (f"On the test period (reported, not used to decide): Brier "
           f"{result.results[result.production].test['brier']:.4f} raw vs "
           f"{calibration['test']['brier']:.4f} calibrated, log loss "
           f"{result.results[result.production].test['log_loss']:.4f} vs "
           f"{calibration['test']['log_loss']:.4f}, ROC AUC "
           f"{result.results[result.production].test['roc_auc']:.4f} vs "
           f"{calibration['test']['roc_auc']:.4f}.\n\n" if calibration.get("applied") else "")
        + "![calibration](calibration.png)\n\n"
        "Confidence bins as DefiLlama shows them: class 'Down' when p_down >= p_keep, predicted "
        "probability = 100 x max(p_down, p_keep); bins from the stored test-period terciles "
        f"{[round(c, 2) for c in meta['confidence_cutpoints']]}.\n\n"
        + report.markdown_table(hit_rate))
    project_table = ""
    if projects is not None:
        tables = []
        for name in [result.production, "anchor"]:
            if name in predictions:
                t = evaluate.auc_by_group(y_test, predictions[name], projects, top=config.TOP_PROJECTS)
                tables.append(t.rename(columns={"roc_auc": f"AUC {name}"}).set_index(
                    ["group", "rows", "down_rate"]))
        project_table = report.markdown_table(pd.concat(tables, axis=1).reset_index().rename(
            columns={"group": "project"}))
    month_table = pd.concat(
        [t.set_index(["group", "rows", "down_rate"])["roc_auc"].rename(f"AUC {n}")
         for n, t in by_month.items()], axis=1).reset_index().rename(columns={"group": "month"})
    sections = [
        ("Headline", "\n".join(headline)),
        ("Setup", setup),
        ("Models on the test period", report.markdown_table(model_table(result, meta))
         + "\n\nLift = test ROC AUC minus the anchor's. CV = walk-forward folds before the test "
           "start. PR AUC is for the 'Down' class (base rate "
           f"{production_test['down_rate']:.3f}).\n\n![ROC](roc.png)"),
        ("Walk-forward folds", report.markdown_table(folds)),
        ("Random forest settings", "\n".join(rf_lines)),
        ("Calibration and confidence", calibration_text),
        ("AUC by month of the test period", report.markdown_table(month_table)
         + "\n\n![AUC by month](auc_by_month.png)"),
        (f"AUC per project (top {config.TOP_PROJECTS} by test rows)", project_table or "n/a"),
        ("Permutation importance (production model, test sample)",
         report.markdown_table(importance.head(20)) + "\n\n![importance](permutation_importance.png)"),
    ]
    report.write_report(run_dir, sections, f"apy-runway training run {meta['model_id']}")
    log(f"report written in {time.perf_counter() - started:.1f} s")
