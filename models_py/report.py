"""A report a person can read: <run>/report.md with PNG plots (matplotlib Agg)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def _fmt(value, digits: int = 4) -> str:
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


def plot_roc(y, predictions: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, p in predictions.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (kept)",
           title="ROC on the test period")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_calibration(y, predictions: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, p in predictions.items():
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="predicted P(kept)", ylabel="observed share kept",
           title="Calibration on the test period")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_importance(importance: pd.DataFrame, path: Path, top: int = 20) -> None:
    part = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(part) + 1.5))
    ax.barh(part["feature"], part["auc_drop_mean"], xerr=part["auc_drop_std"])
    ax.set(xlabel="drop in test ROC AUC when permuted", title="Permutation importance")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_auc_by_month(tables: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, table in tables.items():
        ax.plot(table["group"].astype(str), table["roc_auc"], marker="o", label=name)
    ax.set(xlabel="month", ylabel="ROC AUC", title="ROC AUC by month of the test period")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(run_dir: Path, sections: list[tuple[str, str]], title: str) -> Path:
    lines = [f"# {title}", ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", body.rstrip(), ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
