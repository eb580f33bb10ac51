"""`apy-runway build`: run `dbt build` on the DuckDB warehouse in full (dbt
--full-refresh), then export the feature-column contract (latest_features'
`meta.feature_type`, read from dbt's manifest, in the model's feature order).

`incremental_build` (`refresh`, `train`) rebuilds each pool with rows landed
since that selector's last build from its earliest such day (a scope file and
refresh_from_date in the environment: see dbt.dbt_call; the rule:
dbt_project/README.md#incremental-builds). data/build_state.json records, per
selector, the highest landing order and vars each build took in.

Imports: the standard library, apy_runway/foundation, landing and warehouse, and
inference/ (floor 5, warehouse).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.lock import locked
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.landing.ingest.store import RawStore, has_rows, read_manifest
from apy_runway.warehouse.dbt import dbt_target_dir, run_dbt
from inference import contracts

if TYPE_CHECKING:
    from apy_runway.warehouse.session import DbtSession

# Column meta key in marts/_marts__models.yml that marks model features.
FEATURE_META_KEY = "feature_type"
FEATURE_TYPES = ("numeric", "categorical")


# --------------------------------------------------------------------------- build state

# What each selector's build keeps up to date (the state keys): the hourly
# refresh builds the serving models, training builds the training models,
# no selector builds both.
STATE_KEYS = {"serving": "serving", "hourly_refresh": "serving", "training": "training"}


def _state_keys(selector: str | None) -> list[str]:
    return ["serving", "training"] if selector is None else [STATE_KEYS[selector]]


def parse_vars(dbt_vars: str | dict | None) -> dict:
    """--vars as a dict (YAML text or a dict); refresh_from_date is ours to set."""
    if not dbt_vars:
        return {}
    if isinstance(dbt_vars, dict):
        parsed = dict(dbt_vars)
    else:
        import yaml  # comes with dbt

        try:
            parsed = yaml.safe_load(dbt_vars)
        except yaml.YAMLError as error:
            raise UserError(f"--vars is not YAML: {error}") from None
        if parsed is None:
            return {}
        if not isinstance(parsed, dict):
            raise UserError(f"--vars must be a YAML mapping, got {dbt_vars!r}")
    if "refresh_from_date" in parsed:
        raise UserError(
            "--vars must not set refresh_from_date: incremental builds set it from the "
            "raw store's manifest"
        )
    return parsed


def _canonical(dbt_vars: dict) -> str:
    return json.dumps(dbt_vars, sort_keys=True, default=str)


def load_build_state(paths: ProjectPaths) -> dict:
    if not paths.build_state.exists():
        return {}
    try:
        state = json.loads(paths.build_state.read_text())
    except json.JSONDecodeError:
        log(f"{paths.build_state} is not JSON: the next builds are full")
        return {}
    return state if isinstance(state, dict) else {}


def _record_build(paths: ProjectPaths, keys: list[str], dbt_vars: dict, landing_order: int) -> None:
    """Record that `keys` took in the store up to `landing_order` with these
    vars. Another selector built with other vars shares tables that have just
    changed under it: its record goes (its next build is full)."""
    state = load_build_state(paths)
    canonical = _canonical(dbt_vars)
    for key in list(state):
        if key not in keys and state[key].get("vars") != canonical:
            del state[key]
    for key in keys:
        state[key] = {"landing_order": landing_order, "vars": canonical}
    tmp = paths.build_state.with_name(f".{paths.build_state.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, paths.build_state)


def _committed_landing_order(paths: ProjectPaths) -> int:
    return max((e.landing_order for e in read_manifest(paths)), default=0)


def _require_rows(paths: ProjectPaths) -> None:
    if not has_rows(paths):
        raise UserError(
            f"the raw store {paths.raw_store} holds no rows: run `apy-runway ingest` first"
        )


# --------------------------------------------------------------------------- builds


@locked("build")
def build(
    paths: ProjectPaths,
    dbt_vars: str | dict | None = None,
    select: str | None = None,
    selector: str | None = None,
    memory_limit: str | None = None,
    command: str = "build",
    quiet: bool = False,
    session: DbtSession | None = None,
) -> dict | None:
    """Run dbt (a build or run rebuilds the models in full); after a build or
    run of the marts, write feature_columns.json (returned)."""
    if select and selector:
        raise UserError("--select and --selector cannot be combined")
    parsed = parse_vars(dbt_vars)
    builds = command in ("build", "run")
    if builds:
        _require_rows(paths)
    landing_order = _committed_landing_order(paths)
    run_dbt(
        paths,
        command,
        dbt_vars=parsed or None,
        select=select,
        selector=selector,
        memory_limit=memory_limit,
        full_refresh=builds,
        quiet=quiet,
        session=session,
    )
    if not builds or select is not None:
        return None
    _record_build(paths, _state_keys(selector), parsed, landing_order)
    return _write_feature_columns(paths)


def _write_feature_columns(paths: ProjectPaths) -> dict:
    columns = export_feature_columns(paths)
    log(
        f"wrote {paths.feature_columns} ({len(columns['numeric'])} numeric, "
        f"{len(columns['categorical'])} categorical features)"
    )
    return columns


@dataclass(frozen=True)
class IncrementalBuild:
    """What an incremental build did: `full` (no usable earlier build),
    `refresh_from_date` (the day it rebuilt from), or neither (up to date)."""

    selector: str
    full: bool
    refresh_from_date: str | None
    landing_order: int

    @property
    def skipped(self) -> bool:
        return not self.full and self.refresh_from_date is None

    def describe(self) -> str:
        if self.full:
            return "full build"
        if self.refresh_from_date:
            return f"incremental from {self.refresh_from_date}"
        return "up to date"


def recorded_vars(paths: ProjectPaths, selector: str | None) -> dict:
    """The vars the selector's last build used (the home's configuration:
    `build --vars` sets it, refresh and train keep it)."""
    state = load_build_state(paths)
    recorded = next((state[k] for k in _state_keys(selector) if k in state), None)
    recorded = recorded or next(iter(state.values()), None)
    return json.loads(recorded["vars"]) if recorded and recorded.get("vars") else {}


def plan_incremental_build(
    paths: ProjectPaths,
    selector: str | None,
    dbt_vars: str | dict | None = None,
    full: bool = False,
) -> IncrementalBuild:
    """What `incremental_build` would do now (no dbt). Without `dbt_vars`, the
    vars of the selector's last build."""
    parsed = parse_vars(dbt_vars) if dbt_vars is not None else recorded_vars(paths, selector)
    landing_order = _committed_landing_order(paths)
    state = load_build_state(paths)
    records = [state.get(key) for key in _state_keys(selector)]
    usable = (
        not full
        and all(r is not None for r in records)
        and all(r.get("vars") == _canonical(parsed) for r in records)
        and all(0 <= r.get("landing_order", -1) <= landing_order for r in records)
        and paths.warehouse.exists()
    )
    name = selector or "everything"
    if not usable:
        return IncrementalBuild(name, True, None, landing_order)
    store = RawStore(paths, read_manifest(paths))
    since = _since(paths, selector)
    return IncrementalBuild(name, False, store.earliest_date_since(since), landing_order)


def _since(paths: ProjectPaths, selector: str | None) -> int:
    """The landing order the selector's models are up to date with."""
    state = load_build_state(paths)
    return min(state[key]["landing_order"] for key in _state_keys(selector))


@locked("build")
def incremental_build(
    paths: ProjectPaths,
    selector: str | None,
    dbt_vars: str | dict | None = None,
    memory_limit: str | None = None,
    full: bool = False,
    quiet: bool = False,
    command: str = "build",
    session: DbtSession | None = None,
) -> IncrementalBuild:
    """Bring `selector`'s models (None: every model) up to date with the raw
    store: from the earliest day landed since its last build, or in full (see
    the module). Without `dbt_vars`, the vars of its last build (or of the
    other selector's). `command` "run" skips the tests. `session` runs dbt
    in this process on a kept manifest (warehouse/session.py)."""
    _require_rows(paths)
    parsed = parse_vars(dbt_vars) if dbt_vars is not None else recorded_vars(paths, selector)
    plan = plan_incremental_build(paths, selector, parsed, full)
    if plan.skipped:
        log(f"dbt {plan.selector}: up to date (nothing landed since its last build)")
        return plan
    scope = None
    if plan.refresh_from_date:
        scope = paths.data / "refresh_scope.parquet"
        store = RawStore(paths, read_manifest(paths))
        pools = store.write_changed_pools(_since(paths, selector), scope)
        log(f"dbt {plan.selector}: {plan.describe()}, {pools:,} changed pool(s), each from its day")
    else:
        log(f"dbt {plan.selector}: {plan.describe()}")
    run_dbt(
        paths,
        command,
        dbt_vars=parsed or None,
        selector=selector,
        memory_limit=memory_limit,
        full_refresh=plan.full,
        quiet=quiet,
        refresh_from_date=plan.refresh_from_date,
        refresh_scope=scope,
        session=session,
    )
    _record_build(paths, _state_keys(selector), parsed, plan.landing_order)
    _write_feature_columns(paths)
    return plan


def feature_columns_from_manifest(manifest: dict, model: str = "latest_features") -> dict:
    """The ordered feature contract declared in the mart's YAML (`meta.feature_type`)."""
    nodes = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["name"] == model
    ]
    if not nodes:
        raise UserError(f"model {model} is not in the dbt manifest")
    contract: dict[str, list[str]] = {kind: [] for kind in FEATURE_TYPES}
    for name, column in nodes[0]["columns"].items():
        kind = (column.get("meta") or {}).get(FEATURE_META_KEY) or (
            column.get("config", {}).get("meta") or {}
        ).get(FEATURE_META_KEY)
        if kind is None:
            continue
        if kind not in FEATURE_TYPES:
            raise UserError(
                f"{model}.{name}: meta {FEATURE_META_KEY}={kind!r} is not one of {FEATURE_TYPES}"
            )
        contract[kind].append(name)
    return contract


def export_feature_columns(paths: ProjectPaths, target_dir: Path | None = None) -> dict:
    """Write data/exports/feature_columns.json from dbt's manifest."""
    manifest_path = (target_dir or dbt_target_dir(paths)) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    contract = feature_columns_from_manifest(manifest)
    payload = {
        "numeric": contract["numeric"],
        "categorical": contract["categorical"],
        "features": contract["numeric"] + contract["categorical"],
        "key_columns": list(contracts.KEY_COLUMNS),
        "label_column": contracts.LABEL_COLUMN,
    }
    paths.feature_columns.write_text(json.dumps(payload, indent=2) + "\n")
    return payload
