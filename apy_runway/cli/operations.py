"""The operations commands' flags: train, retrain, promote, publish, score,
ledger, backtest.

`train` brings the training path of the dbt project up to date first: the
`training` selector (labels, training_set and what they read) is built
incrementally from the days landed since its last build (in full when it was
never built or the raw store was replaced), and skipped when nothing new
landed. `--no-build` trains on the export as it is; so does `--training-set`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from apy_runway.cli.common import Command, add_home, add_wait, percent
from inference import contracts
from models_py import config

if TYPE_CHECKING:
    from apy_runway.foundation.paths import ProjectPaths
    from models_py.training import Settings

# --------------------------------------------------------------------------- train

TRAIN_HELP = (
    "train and evaluate the models on the exported training set; write runs/<run_id>/ "
    "(builds the dbt training path first when new data landed)"
)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `train` and `retrain` share."""
    parser.add_argument(
        "--training-set",
        type=Path,
        default=None,
        help="training set parquet (default: data/exports/training_set.parquet); the drift "
        "reference is read from drift_reference_features.parquet beside it (without it: the "
        "newest labelled days)",
    )
    parser.add_argument(
        "--feature-columns",
        type=Path,
        default=None,
        help="feature contract (default: data/exports/feature_columns.json)",
    )
    parser.add_argument(
        "--run-id", default=None, help="run folder name (default: UTC time, e.g. 20261125T123456Z)"
    )
    parser.add_argument(
        "--models",
        default=",".join(config.MODEL_NAMES),
        help=f"comma-separated models (default: all of {','.join(config.MODEL_NAMES)})",
    )
    parser.add_argument(
        "--rf-trees",
        type=int,
        default=config.RF_TREES,
        help=f"trees per random forest (default {config.RF_TREES})",
    )
    parser.add_argument(
        "--rf-reference",
        action="store_true",
        help="also score a prototype-sized forest (100 trees, min_samples_leaf=1) "
        "on the folds, to state the lean forest's AUC cost (slow; never chosen)",
    )
    parser.add_argument(
        "--max-artefact-mb",
        type=float,
        default=config.MAX_ARTEFACT_MB,
        help="grow min_samples_leaf until model.joblib fits "
        f"(default {config.MAX_ARTEFACT_MB:g} MB)",
    )
    parser.add_argument(
        "--calibration",
        choices=config.CALIBRATION_CHOICES,
        default=config.CALIBRATION_DEFAULT,
        help="auto: none, sigmoid or isotonic, whichever has the lowest held-out log loss "
        "on the last walk-forward folds; or force one method "
        f"(default {config.CALIBRATION_DEFAULT})",
    )
    parser.add_argument(
        "--no-backtest",
        dest="backtest",
        action="store_false",
        help="skip the monthly walk-forward backtest (the report's headline)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also refit the production recipe without each feature group on the last "
        f"{config.ABLATION_FOLDS} folds and report which groups can be dropped at no cost "
        "(a study: about 2 minutes on the default data)",
    )
    parser.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="ship the evaluated fit instead of the recipe refitted on every labelled row",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="skip report.md, plots and permutation importance"
    )


def parse_models(text: str) -> tuple[str, ...]:
    """--models as model names, each one of config.MODEL_NAMES."""
    from apy_runway.foundation.console import UserError

    models = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in models if m not in config.MODEL_NAMES]
    if unknown or not models:
        raise UserError(
            f"--models: unknown {unknown or text!r}; choose from {','.join(config.MODEL_NAMES)}"
        )
    return models


def training_settings(args: argparse.Namespace) -> Settings:
    """The models_py Settings the training flags describe."""
    from apy_runway.foundation.console import UserError
    from models_py.training import Settings

    if args.rf_trees < 1:
        raise UserError(f"--rf-trees must be >= 1, got {args.rf_trees}")
    return Settings(
        models=parse_models(args.models),
        rf_trees=args.rf_trees,
        max_artefact_mb=args.max_artefact_mb,
        calibration=args.calibration,
        rf_reference=args.rf_reference,
        backtest=args.backtest,
        ablation=args.ablation,
        refit=args.refit,
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument(
        "--upload",
        default=None,
        metavar="s3://BUCKET/PREFIX",
        help="upload the run folder to s3://BUCKET/PREFIX/<run_id>/",
    )
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint for --upload (default: $AWS_ENDPOINT_URL or AWS)",
    )
    parser.add_argument(
        "--explore-labels",
        action="store_true",
        help="also retrain under each label variant (rebuilds the labels with "
        "dbt, then restores the default build); writes label_variants.md",
    )
    parser.add_argument(
        "--labels-model",
        default=config.LABELS_MODEL,
        help=f"dbt labels model rebuilt per variant (default {config.LABELS_MODEL})",
    )
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="train on data/exports/training_set.parquet as it is, without the dbt build",
    )


def run_train(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.landing.ingest.store import has_rows
    from apy_runway.operations.train import train
    from apy_runway.warehouse.build import incremental_build

    if not args.no_build and args.training_set is None and has_rows(paths):
        incremental_build(paths, "training")
    train(
        paths,
        training_settings(args),
        training_set=args.training_set,
        feature_columns=args.feature_columns,
        run_id=args.run_id,
        with_report=not args.no_report,
        explore_labels=args.explore_labels,
        labels_model=args.labels_model,
        upload=args.upload,
        endpoint_url=args.endpoint_url,
    )
    return 0


TRAIN = Command(TRAIN_HELP, add_train_arguments, run_train)

# --------------------------------------------------------------------------- promote

PROMOTE_HELP = "make a training run the champion (runs/champion; --bucket: models/latest/ in S3)"


def add_bucket_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the champion lives (`promote` and `retrain`)."""
    parser.add_argument(
        "--bucket",
        default=os.environ.get(contracts.ENVIRONMENT["bucket"]),
        help="S3 bucket whose models/latest/ is the champion (default: $APY_RUNWAY_BUCKET; "
        "without one, runs/champion is)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get(contracts.ENV_S3_ENDPOINT),
        help="S3 endpoint, e.g. a local server (default: $AWS_ENDPOINT_URL or AWS)",
    )


def add_ship_overrides(parser: argparse.ArgumentParser, synthetic: bool = True) -> None:
    """The overrides of the ship checks (operations/runs.check_fit_to_ship)."""
    parser.add_argument(
        "--allow-weak",
        action="store_true",
        help="ship a run marked weak (its backtest AUC's 95%% interval includes 0.5, or it "
        "does not beat the heuristic; metadata.json's quality)",
    )
    if synthetic:
        parser.add_argument(
            "--allow-synthetic",
            action="store_true",
            help="ship a run trained on generated data (a demonstration model; "
            "metadata.json's data_provenance)",
        )


def add_promote_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", required=True, help="the run to promote: folder, run id or 'latest'"
    )
    add_bucket_arguments(parser)
    add_ship_overrides(parser)


def promote_run(args: argparse.Namespace, paths: ProjectPaths, run_dir: Path) -> None:
    """`promote` of `run_dir` with the command's bucket and ship overrides
    (what `promote` and a `retrain` that promotes both do)."""
    from apy_runway.operations.promote import promote

    promote(
        paths,
        run_dir,
        bucket=args.bucket,
        endpoint_url=args.endpoint_url,
        allow_weak=args.allow_weak,
        allow_synthetic=args.allow_synthetic,
    )


def run_promote(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.operations.runs import resolve_run

    promote_run(args, paths, resolve_run(paths, args.run))
    return 0


PROMOTE = Command(PROMOTE_HELP, add_promote_arguments, run_promote)

# --------------------------------------------------------------------------- retrain

RETRAIN_HELP = (
    "train a challenger, backtest it against the champion over the last months, "
    "promote it unless it is worse"
)


def add_retrain_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    add_bucket_arguments(parser)
    parser.add_argument(
        "--max-auc-drop",
        type=float,
        default=config.MAX_AUC_DROP,
        help=f"keep the champion if the challenger's backtest AUC is lower by more than this "
        f"(default {config.MAX_AUC_DROP})",
    )
    parser.add_argument(
        "--max-ece-rise",
        type=float,
        default=config.MAX_ECE_RISE,
        help=f"keep the champion if the challenger's backtest ECE is higher by more than this "
        f"(default {config.MAX_ECE_RISE})",
    )
    parser.add_argument(
        "--months",
        type=int,
        default=config.RETRAIN_MONTHS,
        help=f"backtest months compared (default {config.RETRAIN_MONTHS})",
    )
    parser.add_argument(
        "--force", action="store_true", help="promote the challenger whatever the comparison"
    )
    add_ship_overrides(parser)


def run_retrain(args: argparse.Namespace, paths: ProjectPaths) -> int:
    import math

    from apy_runway.foundation.console import UserError
    from apy_runway.operations.retrain import retrain_decision
    from apy_runway.operations.train import train

    if args.months < 1:
        raise UserError(f"--months must be at least 1, got {args.months}")
    for name in ("max_auc_drop", "max_ece_rise"):
        if not math.isfinite(getattr(args, name)):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number")
    run_dir = train(
        paths,
        training_settings(args),
        training_set=args.training_set,
        feature_columns=args.feature_columns,
        run_id=args.run_id,
        with_report=not args.no_report,
    )
    decision = retrain_decision(
        paths,
        run_dir,
        training_set=args.training_set or paths.training_set,
        feature_columns=args.feature_columns or paths.feature_columns,
        bucket=args.bucket,
        endpoint_url=args.endpoint_url,
        months=args.months,
        max_auc_drop=args.max_auc_drop,
        max_ece_rise=args.max_ece_rise,
        force=args.force,
        allow_weak=args.allow_weak,
    )
    if decision["promote"]:
        promote_run(args, paths, run_dir)
    return 0


RETRAIN = Command(RETRAIN_HELP, add_retrain_arguments, run_retrain)

# --------------------------------------------------------------------------- publish

PUBLISH_HELP = (
    "upload latest_features (binary for the Lambda, JSON for people) and optionally a run"
)


def add_allow_shrink(parser: argparse.ArgumentParser) -> None:
    """The shrink rule's override (`publish`, `refresh`)."""
    parser.add_argument(
        "--allow-shrink",
        action="store_true",
        help=f"publish features with fewer than {percent(contracts.SHRINK_MIN_RATIO)} of the "
        "pools of the published ones (and tell the Lambda to accept them: allow_shrink: true)",
    )


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bucket",
        default=os.environ.get(contracts.ENVIRONMENT["bucket"]),
        help="S3 bucket (default: $APY_RUNWAY_BUCKET)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get(contracts.ENV_S3_ENDPOINT),
        help="S3 endpoint, e.g. a local server (default: $AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--features-key",
        default=contracts.FEATURES_KEY,
        help="key of the binary features file the Lambda reads "
        f"(default: {contracts.FEATURES_KEY})",
    )
    parser.add_argument(
        "--features-json-key",
        default=contracts.FEATURES_JSON_KEY,
        help=f"key of the features as JSON, for people (default: {contracts.FEATURES_JSON_KEY})",
    )
    parser.add_argument(
        "--run",
        default=None,
        metavar="RUN",
        help="also upload this training run (folder, run id or 'latest')",
    )
    parser.add_argument(
        "--model-prefix",
        default=contracts.MODEL_PREFIX,
        help=f"key prefix for the run's files (default: {contracts.MODEL_PREFIX})",
    )
    parser.add_argument(
        "--create-bucket",
        action="store_true",
        help="create the bucket if missing (local S3 servers)",
    )
    add_allow_shrink(parser)
    add_ship_overrides(parser)


def run_publish(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.foundation.console import UserError
    from apy_runway.foundation.s3 import ensure_bucket, s3_client
    from apy_runway.operations.publish import load_latest_features, publish
    from apy_runway.operations.runs import resolve_run

    if not args.bucket:
        raise UserError("no bucket: pass --bucket or set APY_RUNWAY_BUCKET")
    latest = load_latest_features(paths, allow_shrink=args.allow_shrink)
    run_dir = resolve_run(paths, args.run) if args.run else None
    client = s3_client(args.endpoint_url)
    if args.create_bucket:
        ensure_bucket(client, args.bucket)
    publish(
        client,
        args.bucket,
        latest,
        run_dir,
        args.features_key,
        args.features_json_key,
        args.model_prefix,
        allow_weak=args.allow_weak,
        allow_synthetic=args.allow_synthetic,
    )
    return 0


PUBLISH = Command(PUBLISH_HELP, add_publish_arguments, run_publish)

# --------------------------------------------------------------------------- score

SCORE_HELP = (
    "invoke the scheduled inference Lambda once against a local S3 and show its predictions"
)


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--event-time",
        default=None,
        help="EventBridge event time, ISO 8601 UTC (default: the day after "
        "the newest feature date, 00:00Z)",
    )
    parser.add_argument(
        "--run",
        default="latest",
        help="training run to score with: folder, run id or 'latest' (default)",
    )
    parser.add_argument(
        "--top", type=int, default=10, help="pools shown at each end of the table (default: 10)"
    )
    parser.add_argument(
        "--stale-after-hours",
        type=float,
        default=contracts.FEATURES_STALE_AFTER_HOURS,
        help="features older than this at the event time are flagged stale "
        f"(default: {contracts.FEATURES_STALE_AFTER_HOURS:g})",
    )


def run_score(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.foundation.console import UserError
    from apy_runway.operations.score import render_report, score_locally

    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    if not args.stale_after_hours > 0:
        raise UserError(f"--stale-after-hours must be positive, got {args.stale_after_hours}")
    published = score_locally(
        paths, run=args.run, event_time=args.event_time, stale_after_hours=args.stale_after_hours
    )
    print(render_report(published, args.top))
    return 0


SCORE = Command(SCORE_HELP, add_score_arguments, run_score)

# --------------------------------------------------------------------------- ledger

LEDGER_HELP = (
    "the prediction ledger: `ledger sync` copies it into data/ledger/ (checked file by file)"
)


def add_ledger_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ledger_command", required=True)
    sync = sub.add_parser("sync", help="copy the ledger (S3 or a folder) into data/ledger/")
    add_home(sync)
    add_wait(sync)
    source = sync.add_mutually_exclusive_group(required=True)
    source.add_argument("--bucket", help="S3 bucket holding ledger/ (the Lambda's bucket)")
    source.add_argument("--from", dest="source", type=Path, help="a folder holding the ledger")
    sync.add_argument(
        "--prefix",
        default=contracts.LEDGER_PREFIX,
        help=f"the ledger's prefix in the bucket (default: {contracts.LEDGER_PREFIX})",
    )
    sync.add_argument(
        "--endpoint-url", default=None, help="S3 endpoint (default: AWS_ENDPOINT_URL or AWS)"
    )
    sync.add_argument(
        "--out", type=Path, default=None, help="destination folder (default: data/ledger/)"
    )
    sync.add_argument(
        "--no-build",
        action="store_true",
        help="do not rebuild the ledger's dbt models (prediction_outcomes) afterwards",
    )


def run_ledger(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.foundation.console import UserError
    from apy_runway.operations.ledger import (
        build_ledger_models,
        default_folder,
        sync_bucket,
        sync_folder,
    )

    out = args.out or default_folder(paths)
    if args.bucket:
        from apy_runway.foundation.s3 import s3_client

        client = s3_client(args.endpoint_url or os.environ.get(contracts.ENV_S3_ENDPOINT) or None)
        report = sync_bucket(client, args.bucket, args.prefix, out)
    else:
        if not args.source.is_dir():
            raise UserError(f"no ledger folder at {args.source}")
        report = sync_folder(args.source, out)
    print(report.describe())
    if not args.no_build and args.out is None:
        build_ledger_models(paths)
    return 0


LEDGER = Command(LEDGER_HELP, add_ledger_arguments, run_ledger)

# --------------------------------------------------------------------------- backtest

BACKTEST_HELP = (
    "replay the monthly backtest's last N months into the prediction ledger (source backtest)"
)


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--months",
        type=int,
        default=None,
        help="the backtest's last N months (default: all it holds)",
    )
    parser.add_argument(
        "--run", default="latest", help="training run: folder, run id or 'latest' (default)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="ledger folder (default: data/ledger/)"
    )
    parser.add_argument(
        "--no-build", action="store_true", help="do not rebuild the ledger's dbt models"
    )


def run_backtest(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.operations.backtest import replay

    written = replay(paths, args.run, args.months, args.out, build=not args.no_build)
    print(f"backtest: {written['rows']} rows over {written['months']} months -> {written['out']}")
    return 0


BACKTEST = Command(BACKTEST_HELP, add_backtest_arguments, run_backtest)

# --------------------------------------------------------------------------- show

SHOW_HELP = "print each pool's latest call, its reasons and its record (POOL: an id or its prefix)"


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pools", nargs="+", metavar="POOL", help="pool id, or a prefix of one")
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        help="hourly predictions document (default: data/exports/predictions_latest.json)",
    )


def run_show(args: argparse.Namespace, paths: ProjectPaths) -> int:
    import sys

    from apy_runway.operations.show import show

    text, problems = show(
        args.predictions or paths.exports / "predictions_latest.json", paths.warehouse, args.pools
    )
    if text:
        print(text)
    for problem in problems:
        print(f"apy-runway show: {problem}", file=sys.stderr)
    return 1 if problems else 0


SHOW = Command(SHOW_HELP, add_show_arguments, run_show)

# --------------------------------------------------------------------------- watch

WATCH_HELP = (
    "the watchlist in the bucket: the hourly scorer posts to the webhook when a watched "
    "pool's class flips or its p_keep moves"
)


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="watch_command", required=True, metavar="ACTION")
    for name, text in (
        ("add", "watch these pools"),
        ("remove", "stop watching these pools"),
        ("list", "print the watched pools (with their latest local call)"),
    ):
        action = sub.add_parser(name, help=text, description=text)
        add_home(action)
        if name != "list":
            action.add_argument("pools", nargs="+", metavar="POOL", help="pool id")
        action.add_argument(
            "--bucket",
            default=os.environ.get(contracts.ENVIRONMENT["bucket"]),
            help="S3 bucket the scorer reads (default: $APY_RUNWAY_BUCKET)",
        )
        action.add_argument(
            "--endpoint-url",
            default=os.environ.get(contracts.ENV_S3_ENDPOINT),
            help="S3 endpoint, e.g. a local server (default: $AWS_ENDPOINT_URL or AWS)",
        )


def run_watch(args: argparse.Namespace, paths: ProjectPaths) -> int:
    import json

    from apy_runway.foundation.console import UserError
    from apy_runway.foundation.s3 import s3_client
    from apy_runway.operations import watch

    if not args.bucket:
        raise UserError("no bucket: pass --bucket or set APY_RUNWAY_BUCKET")
    client = s3_client(args.endpoint_url)
    where = f"s3://{args.bucket}/{contracts.WATCHLIST_KEY}"
    if args.watch_command == "list":
        _, pools = watch.read(client, args.bucket)
    else:
        adding = args.watch_command == "add"
        pools, changed = watch.change(
            client,
            args.bucket,
            add=args.pools if adding else (),
            remove=() if adding else args.pools,
        )
        verb = "added" if adding else "removed"
        print(f"{verb} {len(changed)} of {len(args.pools)} pools; {len(pools)} watched ({where})")
    local = paths.exports / "predictions_latest.json"
    predictions = json.loads(local.read_text()) if local.is_file() else None
    print("\n".join(watch.describe(pools, predictions)))
    return 0


WATCH = Command(WATCH_HELP, add_watch_arguments, run_watch)
