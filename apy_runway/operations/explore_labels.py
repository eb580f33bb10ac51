"""Label exploration (opt-in: `apy-runway train --explore-labels`).

Retrains the random forest (the run's chosen settings) under each label
variant (threshold 0 / -0.2 x apy_future = point / mean / median). Each variant
rebuilds the labels and everything downstream with dbt vars in a copy of the
home's warehouse (data/explore_labels/: the raw store and ledger linked, the
warehouse copied), never in the home's own, then reads that copy's export.
Writes <run>/label_variants.md.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.paths import ProjectPaths, project_paths
from apy_runway.warehouse.dbt import run_dbt
from models_py import config, report
from models_py.data import TrainingData, load_training_set
from models_py.training import Settings, TrainingResult, train_models


def variant_row(threshold: float, stat: str, data: TrainingData, result: TrainingResult) -> dict:
    rf = result.results["random_forest"]
    anchor = result.results.get("anchor")
    y = data.y
    row = {
        "apy_drop_threshold": threshold,
        "apy_future_stat": stat,
        "rows": len(y),
        "kept_rate": float(y.mean()),
        "test_kept_rate": float(y[result.test_index].mean()),
        "cv_auc_mean": rf.cv["cv_auc_mean"],
        "cv_auc_std": rf.cv["cv_auc_std"],
        "test_roc_auc": rf.test["roc_auc"],
        "test_auc_ci": f"{rf.test['ci']['low']:.3f}-{rf.test['ci']['high']:.3f}",
        "brier": rf.test["brier"],
    }
    if anchor is not None:
        row["anchor_test_roc_auc"] = anchor.test["roc_auc"]
        row["lift_over_anchor"] = rf.test["roc_auc"] - anchor.test["roc_auc"]
    return row


def explore_label_variants(
    paths: ProjectPaths,
    run_dir: Path,
    settings: Settings,
    rf_params: dict | None = None,
    labels_model: str = config.LABELS_MODEL,
    variants: Iterable[tuple[float, str]] = config.LABEL_VARIANTS,
    training_set: Path | None = None,
    feature_columns: Path | None = None,
) -> pd.DataFrame:
    training_set = training_set or paths.training_set
    feature_columns = feature_columns or paths.feature_columns
    if Path(training_set).resolve() != paths.training_set.resolve():
        raise UserError(
            "--explore-labels rebuilds the project's own export; "
            f"it cannot be combined with --training-set {training_set}"
        )
    models = ("random_forest", "anchor") if "anchor" in settings.models else ("random_forest",)
    variant_settings = replace(
        settings,
        models=models,
        calibration="none",
        backtest=False,
        ablation=False,
        refit=False,
        rf_candidates=(rf_params,) if rf_params else settings.rf_candidates[-1:],
        bootstrap_samples=min(settings.bootstrap_samples, 100),
    )
    rows = []
    shadow = _shadow_home(paths)
    try:
        for threshold, stat in variants:
            log(f"label variant: apy_drop_threshold={threshold}, apy_future_stat={stat}")
            run_dbt(
                shadow,
                "build",
                dbt_vars={"apy_drop_threshold": threshold, "apy_future_stat": stat},
                select=f"{labels_model}+",
                quiet=True,
            )
            data = load_training_set(shadow.training_set, feature_columns)
            if (data.label["apy_drop_threshold"], data.label["apy_future_stat"]) != (
                threshold,
                stat,
            ):
                raise UserError(
                    f"rebuilt training set carries {data.label}, not the variant "
                    f"({threshold}, {stat}): is {labels_model!r} the labels model?"
                )
            result = train_models(data, variant_settings)
            rows.append(variant_row(threshold, stat, data, result))
    finally:
        shutil.rmtree(shadow.home, ignore_errors=True)
    table = pd.DataFrame(rows)
    text = [
        "# Label variants",
        "",
        "Random forest (the run's settings) and the six-feature anchor retrained under each "
        "label definition (no calibration); "
        "same date split and purge, eligible rows only. kept_rate = share of "
        "is_apy_kept = 1. AUCs are not comparable as model quality across variants "
        "(different targets): they show how learnable each label is.",
        "",
        report.markdown_table(table),
        "",
    ]
    (run_dir / "label_variants.md").write_text("\n".join(text))
    log(f"wrote {run_dir / 'label_variants.md'}")
    return table


def _shadow_home(paths: ProjectPaths) -> ProjectPaths:
    """A throwaway home whose dbt builds never touch the home's warehouse or
    exports: the raw store and the ledger are linked (dbt only reads them), the
    warehouse is copied (the incremental models' state)."""
    if not paths.warehouse.is_file():
        raise UserError(f"no warehouse at {paths.warehouse}: run `apy-runway build` first")
    root = paths.data / "explore_labels"
    shutil.rmtree(root, ignore_errors=True)
    shadow = project_paths(root)
    shadow.data.mkdir(parents=True)
    for name in ("raw", "ledger"):
        if (paths.data / name).exists():
            (shadow.data / name).symlink_to((paths.data / name).resolve(), target_is_directory=True)
    shutil.copyfile(paths.warehouse, shadow.warehouse)
    return shadow.ensure()
