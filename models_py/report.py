"""A report a person can read: <run>/report.md with PNG plots (matplotlib Agg).

The prose lives in templates/report.md.j2 (Jinja2, which comes with dbt); this
module computes the plots and tables it shows.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_curve

from inference import contracts
from models_py import config, evaluate, quality
from models_py.calibration import reliability_table

LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from models_py.training import TrainingResult

TEMPLATES = Path(__file__).with_name("templates")


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, imported when a plot is drawn
    (~0.3 s: training without a report never pays it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(value) >= 1000:
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for i in range(len(frame)):
        lines.append("| " + " | ".join(_fmt(frame[c].iloc[i], digits) for c in columns) + " |")
    return "\n".join(lines)


def plot_roc(y: ArrayLike, predictions: dict[str, np.ndarray], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, p in predictions.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate (kept)",
        title="ROC on the test period",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_calibration(y: ArrayLike, predictions: dict[str, np.ndarray], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, p in predictions.items():
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(
        xlabel="predicted P(kept)",
        ylabel="observed share kept",
        title="Calibration on the test period",
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_importance(importance: pd.DataFrame, path: Path, top: int = 20) -> None:
    part = importance.head(top).iloc[::-1]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(part) + 1.5))
    ax.barh(part["feature"], part["auc_drop_mean"], xerr=part["auc_drop_std"])
    ax.set(xlabel="drop in test ROC AUC when permuted", title="Permutation importance")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_auc_by_month(tables: dict, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, table in tables.items():
        ax.plot(table["group"].astype(str), table["roc_auc"], marker="o", label=name)
    ax.set(xlabel="month", ylabel="ROC AUC", title="ROC AUC by month of the test period")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def model_table(result: TrainingResult, metadata: dict) -> pd.DataFrame:
    rows = []
    anchor = result.results.get("anchor")

    def row(name: str, test: dict, cv: dict | None, oob: float | None) -> dict:
        return {
            "model": name,
            "test ROC AUC": test["roc_auc"],
            "95% CI (pools)": test["ci"].get("note")
            or f"{test['ci']['low']:.3f}-{test['ci']['high']:.3f}",
            "lift vs anchor": test["roc_auc"] - anchor.test["roc_auc"] if anchor else float("nan"),
            "CV AUC mean": cv["cv_auc_mean"] if cv else float("nan"),
            "CV AUC std": cv["cv_auc_std"] if cv else float("nan"),
            "PR AUC (Down)": test["pr_auc_down"],
            "Brier": test["brier"],
            "log loss": test["log_loss"],
            "ECE": test.get("ece", float("nan")),
            "OOB ROC AUC": oob if oob is not None else float("nan"),
        }

    for name, res in result.results.items():
        rows.append(
            row(
                name + (" (production)" if name == result.production else ""),
                res.test,
                res.cv,
                res.extra.get("oob_roc_auc"),
            )
        )
    evaluated = metadata["evaluated_fit"]["test"]
    changes = [f"calibration {result.recipe.calibration}", "clip"] + (
        ["size guard"] if len(result.size_guard) > 1 else []
    )
    rows.append(
        row(f"{result.production} + {' + '.join(changes)} (evaluated fit)", evaluated, None, None)
    )
    return pd.DataFrame(rows)


def render(template: str, **context: Any) -> str:
    """templates/<template> rendered with `context` (undefined names fail)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    environment.filters["fmt"] = _fmt
    return environment.get_template(template).render(**context)


def write_full_report(
    result: TrainingResult,
    run_dir: Path,
    metadata: dict,
    X: np.ndarray,
    y: np.ndarray,
    p_test: np.ndarray,
    hit_rate: pd.DataFrame,
) -> Path:
    """Plots, permutation importance and report.md for a written run."""
    started = time.perf_counter()
    data, test = result.data, result.test_index
    y_test = y[test]
    months = data.frame["snapshot_date"].iloc[test].dt.strftime("%Y-%m").to_numpy()
    projects = (
        data.frame["project"].astype(str).to_numpy()[test]
        if "project" in data.frame.columns
        else None
    )
    predictions = {name: res.p_test for name, res in result.results.items()}
    plot_roc(y_test, predictions, run_dir / "roc.png")
    shown = {k: v for k, v in predictions.items() if k != "prior"}
    shown[f"{result.production} (evaluated fit, shipped calibration)"] = p_test
    plot_calibration(y_test, shown, run_dir / "calibration.png")
    by_month = {
        name: evaluate.auc_by_group(y_test, p, months)
        for name, p in predictions.items()
        if name not in ("prior",)
    }
    plot_auc_by_month(by_month, run_dir / "auc_by_month.png")

    rng = np.random.default_rng(config.RANDOM_STATE)
    sample = rng.choice(len(test), min(config.PERMUTATION_ROWS, len(test)), replace=False)
    importance = permutation_importance(
        result.evaluated_model,
        X[test][sample],
        y_test[sample],
        scoring="roc_auc",
        n_repeats=config.PERMUTATION_REPEATS,
        random_state=config.RANDOM_STATE,
        n_jobs=1,
    )
    importance = pd.DataFrame(
        {
            "feature": result.recipe.features,
            "auc_drop_mean": importance.importances_mean,
            "auc_drop_std": importance.importances_std,
        }
    ).sort_values("auc_drop_mean", ascending=False)
    plot_importance(importance, run_dir / "permutation_importance.png")

    project_table = ""
    if projects is not None:
        tables = []
        for name in [result.production, "anchor"]:
            if name in predictions:
                t = evaluate.auc_by_group(
                    y_test, predictions[name], projects, top=config.TOP_PROJECTS
                )
                tables.append(
                    t.rename(columns={"roc_auc": f"AUC {name}"}).set_index(
                        ["group", "rows", "down_rate"]
                    )
                )
        project_table = markdown_table(
            pd.concat(tables, axis=1).reset_index().rename(columns={"group": "project"})
        )
    month_table = (
        pd.concat(
            [
                t.set_index(["group", "rows", "down_rate"])["roc_auc"].rename(f"AUC {n}")
                for n, t in by_month.items()
            ],
            axis=1,
        )
        .reset_index()
        .rename(columns={"group": "month"})
    )
    rf = metadata["random_forest"]
    rf_table = (
        markdown_table(
            pd.DataFrame(
                [
                    {
                        "settings": json.dumps(r["params"])
                        + (" (reference)" if r["reference"] else ""),
                        "CV AUC mean": r["cv_auc_mean"],
                        "CV AUC std": r["cv_auc_std"],
                        "AUC cost vs best": r["auc_cost_vs_best"],
                        "last-fold model MB": r["last_fold_model_mb"],
                        "fit s": r["fit_seconds_mean"],
                        "chosen": r["chosen"],
                    }
                    for r in result.rf_selection
                ]
            )
        )
        if result.rf_selection
        else ""
    )
    anchor, heuristic = result.results.get("anchor"), result.results.get("heuristic")
    backtest = metadata.get("backtest") or {}
    ablation = metadata.get("ablation") or {}
    calibration_meta = metadata["calibration"]
    text = render(
        "report.md.j2",
        meta=metadata,
        provenance_text=quality.describe_provenance(metadata.get("data_provenance")),
        production=result.production,
        test=metadata["evaluated_fit"]["test"],
        evaluated=metadata["evaluated_fit"],
        shipped=metadata["shipped_fit"],
        recipe=metadata["recipe"],
        backtest_total=backtest.get("total") or None,
        backtest_table=markdown_table(pd.DataFrame(backtest["months"]))
        if backtest.get("months")
        else "",
        choice_rule=metadata["production_choice"]["rule"],
        choice_table=markdown_table(pd.DataFrame(metadata["production_choice"]["candidates"])),
        calibration_meta=calibration_meta,
        calibration_table=markdown_table(pd.DataFrame(calibration_meta["candidates"]))
        if calibration_meta["candidates"]
        else "",
        reliability_table=markdown_table(pd.DataFrame(reliability_table(y_test, p_test))),
        ablation=ablation or None,
        ablation_table=markdown_table(pd.DataFrame(ablation["groups"]))
        if ablation.get("groups")
        else "",
        droppable=[g["group"] for g in ablation.get("groups", []) if g["can_drop"]],
        warnings=metadata["training"].get("warnings", []),
        anchor=anchor.test if anchor else None,
        heuristic=heuristic.test if heuristic else None,
        latency=metadata["predict_proba_latency"],
        label=metadata["label"],
        eligibility=contracts.describe_eligibility(metadata["eligibility"]),
        training=metadata["training"],
        n_folds=len(result.fold_table),
        model_table=markdown_table(model_table(result, metadata)),
        fold_table=markdown_table(pd.DataFrame(result.fold_table)),
        rf=rf,
        rf_tolerance=config.RF_SELECTION_TOLERANCE,
        rf_table=rf_table,
        size_guard_table=markdown_table(pd.DataFrame(rf["size_guard"])),
        calibration_fraction=config.CALIBRATION_FRACTION,
        config_min_gain=config.CALIBRATION_MIN_GAIN,
        config_no_cost=config.ABLATION_NO_COST,
        raw_test=result.results[result.production].test,
        cutpoints=[round(c, 2) for c in metadata["confidence_cutpoints"]],
        hit_rate_table=markdown_table(hit_rate),
        confidence_meta={
            **metadata["confidence"],
            "held_out_fraction": config.CONFIDENCE_HOLDOUT_FRACTION,
            "min_share": config.CONFIDENCE_MIN_SHARE,
            "hour_min_pools": contracts.CONFIDENCE_HOUR_MIN_POOLS,
        },
        month_table=markdown_table(month_table),
        top_projects=config.TOP_PROJECTS,
        project_table=project_table,
        importance_table=markdown_table(importance.head(20)),
    )
    path = run_dir / "report.md"
    path.write_text(text)
    LOG.info(f"report written in {time.perf_counter() - started:.1f} s")
    return path
