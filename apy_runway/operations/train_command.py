"""`apy-runway train`: bring the training path of the dbt project up to date,
then train (models_py/train.py).

Training builds its own path, not the hourly refresh: before training, the
`training` selector (labels, training_set and what they read) is built
incrementally from the days landed since its last build (in full when it was
never built or the raw store was replaced), and skipped when nothing new
landed. `--no-build` trains on the export as it is; so does `--training-set`.
"""

from __future__ import annotations

import argparse

from apy_runway.foundation.paths import ProjectPaths
from apy_runway.operations import train as trainer

COMMAND = trainer.COMMAND
HELP = trainer.HELP + " (builds the dbt training path first when new data landed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    trainer.add_arguments(parser)
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="train on data/exports/training_set.parquet as it is, without the dbt build",
    )


def run(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.landing.ingest.store import has_rows
    from apy_runway.warehouse.build import incremental_build

    if not args.no_build and args.training_set is None and has_rows(paths):
        incremental_build(paths, "training")
    return trainer.run(args, paths)
