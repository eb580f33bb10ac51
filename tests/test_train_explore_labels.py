"""Label exploration rebuilds the labels with dbt per variant in a copy of the
warehouse, retrains, and never touches the home's own warehouse or exports
(real dbt on a small generated project)."""

from __future__ import annotations

import pandas as pd
import pytest

from apy_runway.cli import main as cli_main
from apy_runway.operations.explore_labels import explore_label_variants
from models_py.training import Settings

pytestmark = pytest.mark.slow


def test_label_variant_is_built_trained_and_tabulated_in_a_copy_of_the_warehouse(project_home):
    home = str(project_home.home)
    for argv in (
        ["generate", "--pools", "40", "--days", "200", "--freq", "daily"],
        ["ingest"],
        ["build"],
    ):
        assert cli_main(["--home", home, *argv]) == 0, argv
    default = pd.read_parquet(project_home.training_set)
    untouched = {
        path: path.read_bytes() for path in (project_home.training_set, project_home.warehouse)
    }
    run_dir = project_home.runs / "explore"
    run_dir.mkdir()
    settings = Settings(models=("random_forest", "anchor"), rf_trees=10, bootstrap_samples=20)
    table = explore_label_variants(
        project_home,
        run_dir,
        settings,
        {"min_samples_leaf": 25, "max_samples": 0.5},
        variants=[(0.0, "point")],
    )
    row = table.iloc[0]
    assert (row["apy_drop_threshold"], row["apy_future_stat"]) == (0.0, "point")
    assert 0 < row["kept_rate"] < 1 and 0 <= row["test_roc_auc"] <= 1
    assert row["lift_over_anchor"] == pytest.approx(
        row["test_roc_auc"] - row["anchor_test_roc_auc"]
    )
    # a stricter label (any drop, a single future day) keeps fewer pools than the default
    assert row["kept_rate"] < default["is_apy_kept"].mean()
    text = (run_dir / "label_variants.md").read_text()
    assert "| 0 | point |" in text or "| 0.0000 | point |" in text
    for path, content in untouched.items():
        assert path.read_bytes() == content, f"{path} was rewritten"
    assert not (project_home.data / "explore_labels").exists()
