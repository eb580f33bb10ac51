"""The runway board without a browser: the track-record aggregates (AUC by
month, reliability, hit rate per bin with the one shared bin function), the
defensive reading of its inputs, the adapter seam, the shard hash, and
`apy-runway board` on small real homes (one scored by the real `score`
stage). The pages themselves are tested in chromium: test_board_browser.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from fixtures.board_inputs import write_board_inputs
from fixtures.tiny_model import CATEGORICAL, FEATURES, NUMERIC, synthetic_rows, write_run
from sklearn.metrics import roc_auc_score

from apy_runway import cli
from apy_runway.board import build as board
from apy_runway.board import data as board_data
from apy_runway.board.data import BoardInputError
from apy_runway.foundation.console import UserError
from inference import contracts

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "apy_runway" / "board" / "site"


def read_data_script(path: Path) -> tuple[str, dict]:
    """(name, payload) of one data/*.js file: BOARD.receive("name",{json});"""
    match = re.fullmatch(r'BOARD\.receive\("([^"]+)",(.*)\);\n', path.read_text(), re.DOTALL)
    assert match, f"{path} is not one BOARD.receive call"
    return match.group(1), json.loads(match.group(2))


# --------------------------------------------------------------------------- aggregates


def track_frame(seed: int = 3, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, n)
    label = (rng.random(n) < p).astype(float)
    label[rng.random(n) < 0.05] = np.nan  # not matured yet
    days = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 120, n), unit="D")
    cut = [
        float(contracts.predicted_probability(0.7)),
        float(contracts.predicted_probability(0.85)),
    ]
    return pd.DataFrame(
        {
            "pool_id": [f"pool-{i % 97}" for i in range(n)],
            "as_of": days.strftime("%Y-%m-%d"),
            "p_keep": p,
            "binned_confidence": board_data.label_binned_confidence(p, cut),
            "label": label,
            "source": "backtest",
        }
    ), cut


def test_auc_by_month_equals_sklearn_on_the_matured_rows_of_each_month():
    rows, _ = track_frame()
    summary = board_data.summarise_track_record(board_data.check_track_record(rows, "t"))
    assert summary["live"] is None
    backtest = summary["backtest"]
    matured = rows[rows["label"].notna()]
    assert [m["month"] for m in backtest["auc_by_month"]] == [
        "2025-01",
        "2025-02",
        "2025-03",
        "2025-04",
    ]
    for month in backtest["auc_by_month"]:
        part = matured[matured["as_of"].str.startswith(month["month"])]
        assert month["rows"] == int(rows["as_of"].str.startswith(month["month"]).sum())
        assert month["matured_rows"] == len(part)
        assert month["roc_auc"] == pytest.approx(
            roc_auc_score(part["label"], part["p_keep"]), abs=1e-12
        )
        assert month["down_rate"] == pytest.approx(1 - part["label"].mean())
    assert backtest["roc_auc"] == pytest.approx(
        roc_auc_score(matured["label"], matured["p_keep"]), abs=1e-12
    )
    assert backtest["rows"] == len(rows)
    assert backtest["matured_rows"] + backtest["pending_rows"] == len(rows)
    assert backtest["brier"] == pytest.approx(np.mean((matured["p_keep"] - matured["label"]) ** 2))


def test_reliability_bins_and_ece_by_hand():
    rows, _ = track_frame(seed=4)
    backtest = board_data.summarise_track_record(board_data.check_track_record(rows, "t"))[
        "backtest"
    ]
    matured = rows[rows["label"].notna()]
    table = backtest["reliability"]
    assert len(table) == board_data.RELIABILITY_BINS
    assert sum(b["rows"] for b in table) == len(matured)
    ece = 0.0
    for b in table:
        in_bin = matured[(matured["p_keep"] >= b["bin_low"]) & (matured["p_keep"] < b["bin_high"])]
        assert b["rows"] == len(in_bin)
        assert b["mean_p_keep"] == pytest.approx(in_bin["p_keep"].mean())
        assert b["observed_keep_rate"] == pytest.approx(in_bin["label"].mean())
        ece += len(in_bin) / len(matured) * abs(in_bin["p_keep"].mean() - in_bin["label"].mean())
    assert backtest["ece"] == pytest.approx(ece)
    # p_keep = 1.0 exactly falls in the last bin, not past it
    edge = rows.iloc[:2].assign(p_keep=[1.0, 0.0], label=[1.0, 0.0])
    table = board_data.summarise_source(board_data.check_track_record(edge, "edge"))["reliability"]
    assert table[-1]["rows"] == 1 and table[0]["rows"] == 1


def test_hit_rate_per_bin_uses_the_shared_bin_function_and_its_lower_bin_rule():
    rows, cut = track_frame(seed=5)
    # a prediction shown exactly at a cut-point belongs to the lower bin
    at_cut = pd.DataFrame(
        {"pool_id": "edge", "as_of": "2025-01-02", "p_keep": [0.7, 0.85], "label": [1.0, 0.0]}
    )
    at_cut["binned_confidence"] = board_data.label_binned_confidence(at_cut["p_keep"], cut)
    at_cut["source"] = "backtest"
    assert at_cut["binned_confidence"].tolist() == [1, 2]
    assert at_cut["binned_confidence"].tolist() == [
        contracts.confidence_bin(contracts.predicted_probability(p), cut) for p in (0.7, 0.85)
    ]
    rows = pd.concat([rows, at_cut], ignore_index=True)
    bins = board_data.summarise_track_record(board_data.check_track_record(rows, "t"))["backtest"][
        "hit_rate_by_confidence"
    ]
    matured = rows[rows["label"].notna()]
    expected_bins = contracts.confidence_bin(
        contracts.predicted_probability(matured["p_keep"].to_numpy()), cut
    )
    called_keep = matured["p_keep"].to_numpy() > 0.5
    for entry in bins:
        mask = expected_bins == entry["confidence"]
        assert entry["words"] == contracts.CONFIDENCE_WORDS[entry["confidence"]]
        assert entry["rows"] == int(mask.sum())
        assert entry["hit_rate"] == pytest.approx(
            np.mean(called_keep[mask] == (matured["label"].to_numpy()[mask] == 1))
        )


def test_sources_are_kept_apart():
    rows, _ = track_frame(seed=6)
    rows.loc[rows.index[:1000], "source"] = "live"
    summary = board_data.summarise_track_record(board_data.check_track_record(rows, "t"))
    assert summary["live"]["rows"] == 1000 and summary["backtest"]["rows"] == len(rows) - 1000
    only_live = board_data.summarise_source(board_data.check_track_record(rows.iloc[:1000], "t"))
    assert summary["live"] == only_live
    assert board_data.summarise_track_record(None) == {"live": None, "backtest": None}


def test_a_month_with_one_class_has_no_auc_rather_than_a_made_up_one():
    rows = pd.DataFrame(
        {
            "pool_id": ["a", "b", "c", "d"],
            "as_of": ["2025-01-05", "2025-01-06", "2025-02-01", "2025-02-02"],
            "p_keep": [0.9, 0.8, 0.3, 0.6],
            "binned_confidence": [3, 3, 2, 1],
            "label": [1.0, 1.0, 0.0, 1.0],
            "source": "live",
        }
    )
    months = board_data.summarise_source(board_data.check_track_record(rows, "t"))["auc_by_month"]
    assert months[0]["roc_auc"] is None and months[1]["roc_auc"] == 1.0


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("source", "future", "source = 'future'"),
        ("p_keep", 1.5, "p_keep = 1.5"),
        ("p_keep", "high", "p_keep = 'high'"),
        ("p_keep", float("nan"), "p_keep = nan"),
        ("binned_confidence", 4, "binned_confidence = 4"),
        ("label", 2.0, "label = 2.0"),
        ("label", "yes", "label = 'yes'"),
        ("pool_id", None, "pool_id = None"),
    ],
)
def test_bad_track_record_rows_are_named(column, value, shown):
    rows, _ = track_frame(n=20)
    rows[column] = rows[column].astype(object)
    rows.loc[7, column] = value
    with pytest.raises(
        BoardInputError, match=rf"ledger.parquet: row 7 .*{re.escape(shown)}; 1 such rows"
    ):
        board_data.check_track_record(rows, "ledger.parquet")


def test_track_record_rows_need_every_column():
    rows, _ = track_frame(n=5)
    with pytest.raises(BoardInputError, match=r"lack columns \['label'\]"):
        board_data.check_track_record(rows.drop(columns="label"), "x")


# --------------------------------------------------------------------------- predictions


def document(*records: dict, **top) -> dict:
    return {"schema_version": 1, "predictions": list(records), **top}


def test_a_record_with_only_a_pool_id_is_read_as_not_scored():
    out = board_data.normalise_predictions(document({"pool_id": "p1"}), "doc.json")
    (record,) = out["records"]
    assert record["pool_id"] == "p1"
    assert record["p_keep"] is None and record["predicted_class"] is None
    assert record["reasons"] == [] and record["flags"] == 0 and out["health"] is None


def test_fields_later_versions_add_are_read_when_present():
    record = {
        "pool_id": "p1",
        "p_keep": 0.31,
        "binned_confidence": 2,
        "reasons": [
            {"feature": "apy", "text": "apy is 2.4x  its 90-day mean"},
            "TVL -31% in 7 days",
            {"text": None},
            "reward share 85%",
            "a fourth reason",
        ],
        "flags": {"unseen_category": True, "stale": False},
        "is_stale": True,
        "apy": 4.5,
        "tvlUsd": 1000.0,
        "project": "aave-v3",
        "chain": "Ethereum",
    }
    out = board_data.normalise_predictions(
        document(
            record,
            {"pool_id": "p2", "reason": "inactive: 12 days", "flags": ["stale"]},
            schema_version=3,
            health={"status": "ok"},
        ),
        "doc.json",
    )
    first, second = out["records"]
    assert first["predicted_class"] == contracts.CLASS_DOWN  # derived by the contracts rule
    assert first["confidence_words"] == "Medium"
    assert [r["text"] for r in first["reasons"]] == [
        "apy is 2.4x its 90-day mean",
        "TVL -31% in 7 days",
        "reward share 85%",
    ]
    assert [r["feature"] for r in first["reasons"]] == ["apy", None, None]
    assert first["flags"] == board_data.FLAG_BITS["unseen_category"] | board_data.FLAG_BITS["stale"]
    assert (first["apy"], first["tvl_usd"], first["project"]) == (4.5, 1000.0, "aave-v3")
    assert second["flags"] == board_data.FLAG_BITS["inactive"] | board_data.FLAG_BITS["stale"]
    assert out["meta"]["schema_version"] == 3 and out["health"] == {"status": "ok"}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], r"doc\.json: expected a JSON object, got list"),
        ({"predictions": []}, r"doc\.json: field 'schema_version' is None"),
        ({"schema_version": "1", "predictions": []}, r"'schema_version' is '1'"),
        ({"schema_version": True, "predictions": []}, r"'schema_version' is True"),
        ({"schema_version": 1}, r"field 'predictions' is missing or not a list"),
        (document(health=[1]), r"field 'health' is \[1\], not an object"),
        (document("p1"), r"predictions\[0\] is 'p1', not an object"),
        (document({"symbol": "X"}), r"predictions\[0\]: field 'pool_id' is None"),
        (document({"pool_id": "  "}), r"predictions\[0\]: field 'pool_id' is '  '"),
        (document({"pool_id": 7}), r"predictions\[0\]: field 'pool_id' is 7"),
        (
            document({"pool_id": "a"}, {"pool_id": "a"}),
            r"predictions\[1\] \(pool a\): pool id repeats predictions\[0\]",
        ),
        (
            document({"pool_id": "a", "p_keep": "0.5"}),
            r"predictions\[0\] \(pool a\): field 'p_keep' is '0.5', not a number",
        ),
        (document({"pool_id": "a", "p_keep": 1.5}), r"field 'p_keep' is 1.5, outside \[0, 1\]"),
        (document({"pool_id": "a", "p_keep": float("nan")}), r"field 'p_keep' is nan"),
        (document({"pool_id": "a", "p_keep": True}), r"field 'p_keep' is True, not a number"),
        (
            document({"pool_id": "a", "binned_confidence": 4}),
            r"'binned_confidence' is 4, not one of \[1, 2, 3\]",
        ),
        (document({"pool_id": "a", "binned_confidence": True}), r"'binned_confidence' is True"),
        (document({"pool_id": "a", "predicted_class": "Up"}), r"'predicted_class' is 'Up'"),
        (
            document({"pool_id": "a", "reasons": "high apy"}),
            r"field 'reasons' is 'high apy', not a list",
        ),
        (document({"pool_id": "a", "reasons": [3]}), r"reasons\[0\] is 3, not a phrase"),
        (
            document({"pool_id": "a", "flags": "stale"}),
            r"field 'flags' is 'stale', not a list or an object",
        ),
        (document({"pool_id": "a", "flags": [1]}), r"flag 1 is not a string"),
        (
            document({"pool_id": "a", "is_stale": "yes"}),
            r"field 'is_stale' is 'yes', not true/false",
        ),
        (document({"pool_id": "a", "apy": float("inf")}), r"field 'apy' is inf"),
        (document({"pool_id": "a", "tvl_usd": -1}), r"field 'tvl_usd' is -1"),
        (document({"pool_id": "a", "symbol": ["X"]}), r"field 'symbol' is \['X'\], not a string"),
    ],
)
def test_bad_predictions_are_refused_naming_file_record_and_field(doc, message):
    with pytest.raises(BoardInputError, match=message):
        board_data.normalise_predictions(doc, "doc.json")


def test_a_corrupt_predictions_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "predictions_latest.json"
    path.write_text('{"schema_version": 1, "predictions": [')
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}: not valid JSON"):
        board.read_predictions(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(UserError, match="not UTF-8"):
        board.read_predictions(path)
    assert board.read_predictions(tmp_path / "absent.json") is None


# --------------------------------------------------------------------------- shards, table


def test_shard_of_is_fnv1a_over_utf8():
    # published FNV-1a 32-bit test vectors
    assert board_data.shard_of("", 2**32) == 0x811C9DC5
    assert board_data.shard_of("a", 2**32) == 0xE40C292C
    assert board_data.shard_of("foobar", 2**32) == 0xBF9CF968
    assert board_data.shard_of("été", 2**32) != board_data.shard_of("ete", 2**32)
    ids = [f"pool-{i}" for i in range(6400)]
    counts = np.bincount([board_data.shard_of(i, 100) for i in ids], minlength=100)
    assert counts.min() > 30 and counts.max() < 110  # spread, not clumped
    assert board_data.shard_count(20_000, 64) == 313 and board_data.shard_count(0, 64) == 1
    with pytest.raises(ValueError, match="at least 1"):
        board_data.shard_count(10, 0)


def test_table_payload_dictionary_codes_sort_like_the_names():
    records = board_data.normalise_predictions(
        document(
            {"pool_id": "a", "project": "beta"},
            {"pool_id": "b", "project": "Alpha"},
            {"pool_id": "c"},
        ),
        "d",
    )["records"]
    latest = pd.DataFrame(
        {
            "pool_id": ["c"],
            "symbol": ["USDC"],
            "project": ["gamma"],
            "chain": ["Base"],
            "apy": [float("nan")],
            "tvl_usd": [12.6],
        }
    )
    table = board_data.table_payload(records, latest)
    assert table["projects"] == ["Alpha", "beta", "gamma"]
    assert table["columns"]["project"] == [1, 0, 2]
    assert table["columns"]["chain"] == [-1, -1, 0]
    assert table["columns"]["symbol"] == [None, None, "USDC"]
    assert table["columns"]["apy"] == [None, None, None] and table["columns"]["tvl_usd"][2] == 13


def test_reasons_keep_their_direction_and_the_table_carries_the_sign():
    out = board_data.normalise_predictions(
        document(
            {
                "pool_id": "p",
                "p_keep": 0.3,
                "reasons": [
                    {
                        "feature": "apy",
                        "text": "apy is 2.1x its 30-day mean",
                        "contribution": -0.12,
                    },
                    {"feature": "tvl_usd", "text": "TVL $12.0M", "contribution": 0.04},
                    {"text": "no contribution given"},
                    {"text": "exactly nothing", "contribution": 0.0},
                ],
            }
        ),
        "doc.json",
    )
    (record,) = out["records"]
    assert [board_data.reason_sign(r) for r in record["reasons"]] == [-1, 1, 0]
    assert record["reasons"][0] == {
        "text": "apy is 2.1x its 30-day mean",
        "contribution": -0.12,
        "feature": "apy",
    }
    table = board_data.table_payload(out["records"], None)
    assert table["columns"]["reasons"] == [
        [[-1, "apy is 2.1x its 30-day mean"], [1, "TVL $12.0M"], [0, "no contribution given"]]
    ]
    for bad in ("-0.1", True, float("nan")):
        with pytest.raises(
            BoardInputError, match=r"predictions\[0\] \(pool p\): field 'reasons\[0\]"
        ):
            board_data.normalise_predictions(
                document({"pool_id": "p", "reasons": [{"text": "x", "contribution": bad}]}), "d"
            )


@pytest.mark.parametrize(
    ("value", "demo", "text"),
    [
        (None, None, None),
        ({"kind": "generated", "seed": 42}, True, "generated data (seed 42)"),
        ("generated", True, "Demo model: trained on generated data, not on real pools"),
        ({"source": "synthetic"}, True, "generated data, not on real pools"),
        (
            {"kind": "files", "files": [{"name": "a.csv", "sha256": "x"}, {"name": "b.parquet"}]},
            False,
            "2 real file(s): a.csv, b.parquet",
        ),
        (
            {"kind": "collected", "first_hour": "2025-01-01T00Z", "last_hour": "2025-06-01T13Z"},
            False,
            "collected hours 2025-01-01T00Z to 2025-06-01T13Z",
        ),
        ({"kind": "something new"}, False, "Model trained on: something new"),
    ],
)
def test_the_banner_says_what_the_model_was_trained_on(value, demo, text):
    described = board_data.describe_provenance(value)
    if value is None:
        assert described is None
    else:
        assert described["demo"] is demo and text in described["text"]


def test_the_confidence_legend_quotes_the_backtest_until_enough_live_calls_matured():
    records = board_data.normalise_predictions(
        document(
            *[{"pool_id": f"p{i}", "p_keep": 0.9, "binned_confidence": 3} for i in range(3)],
            {"pool_id": "q", "p_keep": 0.6, "binned_confidence": 1, "confidence_words": "Low"},
            {"pool_id": "r"},
        ),
        "d",
    )["records"]
    rows, _ = track_frame()
    backtest = board_data.summarise_source(rows)
    live = dict(backtest, matured_rows=board_data.LEGEND_MIN_MATURED - 1)
    legend = board_data.confidence_legend(records, {"live": live, "backtest": backtest})
    by_bin = {entry["confidence"]: entry for entry in legend}
    assert {e["source"] for e in legend} == {"backtest"}
    assert by_bin[3]["share"] == 0.75 and by_bin[1]["share"] == 0.25 and by_bin[2]["pools"] == 0
    expected = {b["confidence"]: b["hit_rate"] for b in backtest["hit_rate_by_confidence"]}
    assert {b: e["hit_rate"] for b, e in by_bin.items()} == expected
    live["matured_rows"] = board_data.LEGEND_MIN_MATURED
    legend = board_data.confidence_legend(records, {"live": live, "backtest": None})
    assert {e["source"] for e in legend} == {"live"}
    # a run that serves fewer words: only the bins that occur, with the words served
    two = [
        dict(r, binned_confidence=2, confidence_words="Surer") if r["binned_confidence"] == 3 else r
        for r in records
    ]
    legend = board_data.confidence_legend(two, {"live": None, "backtest": None})
    assert [(e["confidence"], e["words"], e["hit_rate"]) for e in legend] == [
        (1, "Low", None),
        (2, "Surer", None),
    ]


def test_traits_come_from_the_static_attributes_and_unknown_sets_none():
    records = board_data.normalise_predictions(document(*[{"pool_id": p} for p in "abcd"]), "d")[
        "records"
    ]
    latest = pd.DataFrame(
        {
            "pool_id": list("abcd"),
            "is_stablecoin": [True, False, None, True],
            "il_risk": ["no", "yes", "unknown", "NO"],
            "exposure": ["single", "multi", "unknown", None],
        }
    )
    table = board_data.table_payload(records, latest)
    bits = board_data.TRAIT_BITS
    assert table["columns"]["traits"] == [
        bits["stablecoin"] | bits["no_il_risk"] | bits["single_exposure"],
        0,
        0,
        bits["stablecoin"] | bits["no_il_risk"],
    ]
    text = latest.drop(columns="is_stablecoin").assign(stablecoin=["true", "false", "unknown", "x"])
    assert board_data.table_payload(records, text)["columns"]["traits"][0] == sum(bits.values())


# --------------------------------------------------------------------------- the stage


def test_the_history_table_columns_the_board_reads_are_in_the_dbt_model():
    spec = yaml.safe_load(
        (REPO / "dbt_project/models/intermediate/_intermediate__models.yml").read_text()
    )
    (model,) = [m for m in spec["models"] if m["name"] == board.HISTORY_TABLE]
    columns = {c["name"] for c in model["columns"]}
    assert {"pool_id", "snapshot_date", "apy", "tvl_usd", "project", "chain", "symbol"} <= columns
    assert {column for column, _ in board.DAILY_STATE_COLUMNS} <= columns
    marts = yaml.safe_load((REPO / "dbt_project/models/marts/_marts__models.yml").read_text())
    (mart,) = [m for m in marts["models"] if m["name"] == board.FEATURES_TABLE]
    assert {column for column, _ in board.FEATURE_STATE_COLUMNS} <= {
        c["name"] for c in mart["columns"]
    }


@pytest.fixture(scope="module")
def small_board(tmp_path_factory):
    from apy_runway.foundation.paths import project_paths

    paths = project_paths(tmp_path_factory.mktemp("home")).ensure()
    inputs = write_board_inputs(paths, n_pools=150, history_days=40, backtest_weeks=6, seed=11)
    built = board.build_board(paths, pools_per_shard=16)
    return paths, inputs, built


def test_build_writes_the_site_with_every_source(small_board):
    paths, inputs, built = small_board
    out = built.out
    assert out == paths.data / "board" and built.index.is_file()
    for page in (
        "index.html",
        "pool.html",
        "track.html",
        "assets/common.js",
        "vendor/uPlot.iife.min.js",
        "vendor/uPlot.LICENSE",
        "vendor/VENDORED.md",
    ):
        assert (out / page).is_file(), page
    _, meta = read_data_script(out / "data" / "meta.js")
    assert meta["sources"] == {
        "predictions": "predictions_latest.json",
        "history": board.HISTORY_TABLE,
        "track_record": ["backtest"],
        "health": "monitoring document 2025-06-06T00Z.json",  # the newest one
    }
    assert meta["pools"] == 150 and meta["shards"] == built.shards == 10
    _, table = read_data_script(out / "data" / "table.js")
    expected = inputs.records
    assert table["columns"]["pool_id"] == expected["pool_id"].tolist()
    assert table["columns"]["class"] == expected["class_code"].tolist()
    assert table["columns"]["flags"] == expected["flags"].tolist()
    assert table["columns"]["reasons"] == expected["reasons"].tolist()
    projects = [table["projects"][code] for code in table["columns"]["project"]]
    assert projects == expected["project"].tolist()  # from the warehouse's newest day
    assert np.allclose(table["columns"]["apy"], expected["apy"], rtol=0, atol=6e-5)
    for name in board_data.STATE_NUMBERS:  # from the daily table and latest_features
        got = np.array(table["columns"][name], dtype=float)
        assert np.allclose(got, expected[name], rtol=0, atol=6e-5, equal_nan=True), name
    assert table["columns"]["traits"] == expected["traits"].tolist()
    assert table["columns"]["pool_meta"] == [
        v if isinstance(v, str) else None for v in expected["pool_meta"]
    ]
    seen = [str(np.datetime64(d, "D")) for d in table["columns"]["seen_day"]]
    assert seen == expected["seen_day"].tolist()
    assert meta["provenance"] == {
        "demo": True,
        "text": "Demo model: trained on generated data (seed 11), not on real pools",
    }
    assert [entry["confidence"] for entry in table["legend"]] == [1, 2, 3]
    _, track = read_data_script(out / "data" / "track.js")
    assert track["health"] == inputs.health and track["track_record"]["live"] is None
    rows = board.backtest_track_record(inputs.run_dir)
    assert track["track_record"]["backtest"] == json.loads(
        json.dumps(board_data.summarise_track_record(rows)["backtest"])
    )


def test_every_pool_is_in_the_shard_its_id_hashes_to(small_board):
    _, inputs, built = small_board
    seen = {}
    for path in (built.out / "data" / "pools").glob("*.js"):
        name, pools = read_data_script(path)
        assert name == f"pools/{path.stem}"
        for pool_id, doc in pools.items():
            assert board_data.shard_of(pool_id, built.shards) == int(path.stem)
            seen[pool_id] = doc
    assert sorted(seen) == sorted(inputs.records["pool_id"])
    pool_id = inputs.records["pool_id"].iloc[20]
    doc = seen[pool_id]
    history = inputs.history[inputs.history["pool_id"] == pool_id].sort_values("snapshot_date")
    start = history["snapshot_date"].iloc[0]
    assert doc["history"]["start"] == start.isoformat()
    days = (history["snapshot_date"].iloc[-1] - start).days + 1
    assert len(doc["history"]["apy"]) == days  # a dense calendar: gaps are null
    assert sum(v is not None for v in doc["history"]["apy"]) == len(history)
    served = inputs.backtest[inputs.backtest["pool_id"] == pool_id].sort_values("snapshot_date")
    assert doc["served"]["as_of"] == served["snapshot_date"].dt.strftime("%Y-%m-%d").tolist()
    assert doc["served"]["label"] == [None if pd.isna(v) else int(v) for v in served["is_apy_kept"]]
    assert doc["served"]["source"] == ["backtest"] * len(served)


def test_a_board_with_no_inputs_says_so_and_rebuilding_replaces_it(project_home, capsys):
    assert cli.main(["--home", str(project_home.home), "board"]) == 0
    printed = capsys.readouterr().out
    assert f"board: {project_home.data / 'board' / 'index.html'}" in printed
    assert "no data yet for: predictions, history, track_record, health" in printed
    _, meta = read_data_script(project_home.data / "board" / "data" / "meta.js")
    assert meta["pools"] == 0 and all(v is None for v in meta["sources"].values())
    # every shard a pool page may ask for exists, empty or not
    assert read_data_script(project_home.data / "board" / "data" / "pools" / "0.js") == (
        "pools/0",
        {},
    )
    stray = project_home.data / "board" / "stray.txt"
    stray.write_text("left from before")
    board.build_board(project_home)
    assert not stray.exists()
    assert not list(project_home.data.glob(".board.*"))  # no building / old folders left


def test_the_board_refuses_to_replace_a_folder_that_is_not_a_board(project_home, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="is not a runway board"):
        board.build_board(project_home, out=mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    assert not list(tmp_path.glob(".mine.*"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--history-days", "0"], "history days must be at least 1"),
        (["--pools-per-shard", "0"], "pools per shard must be at least 1"),
        (["--run", "no-such-run"], "no training run at"),
        (["--predictions", "nowhere.json"], "no predictions document at nowhere.json"),
        (["--monitoring", "nowhere"], "no monitoring folder at nowhere"),
    ],
)
def test_bad_arguments_are_one_line_errors(project_home, capsys, argv, message):
    assert cli.main(["--home", str(project_home.home), "board", *argv]) == 2
    assert message in capsys.readouterr().err


def test_backtest_adapter_refuses_what_it_cannot_read(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert board.backtest_track_record(run_dir) is None
    frame = pd.DataFrame(
        {
            "pool_id": ["a", "b"],
            "snapshot_date": pd.to_datetime(["2025-01-01", "2025-01-02"]),
            "p_keep": [0.2, 0.9],
            contracts.LABEL_COLUMN: [0, 1],
        }
    )
    frame.to_parquet(run_dir / board.BACKTEST_FILE)
    with pytest.raises(UserError, match="no confidence_cutpoints"):
        board.backtest_track_record(run_dir)
    (run_dir / "metadata.json").write_text(json.dumps({"confidence_cutpoints": "60,80"}))
    with pytest.raises(UserError, match=r"no confidence_cutpoints \(a list of numbers\)"):
        board.backtest_track_record(run_dir)
    (run_dir / "metadata.json").write_text(json.dumps({"confidence_cutpoints": [60.0, 80.0]}))
    rows = board.backtest_track_record(run_dir)
    assert rows["binned_confidence"].tolist() == [
        contracts.confidence_bin(contracts.predicted_probability(p), [60.0, 80.0])
        for p in (0.2, 0.9)
    ]
    assert rows["source"].unique().tolist() == ["backtest"] and rows["label"].tolist() == [0.0, 1.0]
    frame.drop(columns="p_keep").to_parquet(run_dir / board.BACKTEST_FILE)
    with pytest.raises(
        UserError, match=r"backtest_predictions.parquet: lacks columns \['p_keep'\]"
    ):
        board.backtest_track_record(run_dir)
    frame.assign(p_keep=[0.2, float("inf")]).to_parquet(run_dir / board.BACKTEST_FILE)
    with pytest.raises(UserError, match=r"row 1 \(pool 'b'\) has p_keep = inf"):
        board.backtest_track_record(run_dir)
    (run_dir / board.BACKTEST_FILE).write_bytes(b"not parquet")
    with pytest.raises(UserError, match="not a readable parquet file"):
        board.backtest_track_record(run_dir)


def test_health_comes_from_the_newest_monitoring_document_before_the_predictions(tmp_path):
    folder = tmp_path / "monitoring"
    predictions = {"health": {"status": "ok", "reasons": []}}
    assert board.read_health(None, folder) == (None, None)
    # no monitoring document (yet): the predictions' health block
    assert board.read_health(predictions, folder) == (predictions["health"], "predictions document")
    folder.mkdir()
    assert board.read_health(predictions, folder)[1] == "predictions document"
    (folder / "2025-06-06T01Z.json").write_text(
        json.dumps(
            {
                "health": {"status": "degraded", "reasons": ["widespread_drift"]},
                "drift": [{"feature": "apy", "score": 0.2, "drifted": True}],
                "shares": {"scored": 0.9},
                "counts": {"pools": 10},
            }
        )
    )
    (folder / "2025-06-06T00Z.json").write_text(json.dumps({"health": {"status": "ok"}}))
    # the newest hour's document wins over the predictions: its health with its
    # drift table and shares (not its counts)
    assert board.read_health(predictions, folder) == (
        {
            "status": "degraded",
            "reasons": ["widespread_drift"],
            "drift": [{"feature": "apy", "score": 0.2, "drifted": True}],
            "shares": {"scored": 0.9},
        },
        "monitoring document 2025-06-06T01Z.json",
    )
    # a document without a health block is shown as it is
    (folder / "2025-06-06T02Z.json").write_text(json.dumps({"status": "ok"}))
    assert board.read_health(None, folder) == (
        {"status": "ok"},
        "monitoring document 2025-06-06T02Z.json",
    )
    (folder / "2025-06-06T03Z.json").write_text("[1, 2]")
    with pytest.raises(UserError, match=r"2025-06-06T03Z.json: expected a JSON object"):
        board.read_health(predictions, folder)


def test_the_board_reads_what_the_real_score_stage_writes(project_home):
    """`apy-runway score` (the Lambda's core on a local S3) then `board`."""
    from apy_runway.operations import score

    write_run(project_home.runs / "20250606T000000Z")
    (project_home.runs / "latest").symlink_to("20250606T000000Z")
    X, _ = synthetic_rows(40, seed=5)
    columns = {
        "pool_id": [f"pool-{i:03d}" for i in range(40)],
        "snapshot_date": [dt.date(2025, 6, 5)] * 40,
        "symbol": [f"USD{i}" for i in range(40)],
        "observed_day_count": [30] * 39 + [2],
    }
    for j, name in enumerate(FEATURES):
        columns[name] = [float(v) for v in X[:, j]] if name in NUMERIC else X[:, j].tolist()
    pq.write_table(pa.table(columns), project_home.latest_features)
    project_home.feature_columns.write_text(
        json.dumps({"numeric": NUMERIC, "categorical": CATEGORICAL, "features": FEATURES})
    )
    published = score.score_locally(project_home)
    built = board.build_board(project_home)
    _, table = read_data_script(built.out / "data" / "table.js")
    by_id = {p["pool_id"]: p for p in published["predictions"]}
    assert table["columns"]["pool_id"] == [p["pool_id"] for p in published["predictions"]]
    for i, pool_id in enumerate(table["columns"]["pool_id"]):
        served = by_id[pool_id]
        assert table["columns"]["p_keep"][i] == served["p_keep"]
        assert table["columns"]["confidence"][i] == (served["binned_confidence"] or 0)
        assert table["columns"]["status"][i] == served["status"]
    assert table["columns"]["class"][-1] == board_data.CLASS_CODE_NOT_SCORED
    assert table["columns"]["not_scored_reason"][-1] == by_id["pool-039"]["reason"]
    assert by_id["pool-039"]["reason"]  # observed_day_count 2: not scored
    _, meta = read_data_script(built.out / "data" / "meta.js")
    assert meta["predictions"]["model_id"] == published["model_id"]
    assert meta["sources"]["track_record"] is None  # the tiny run has no backtest


# --------------------------------------------------------------------------- the site's files


def test_the_vendored_library_matches_its_record():
    record = (SITE / "vendor" / "VENDORED.md").read_text()
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"):
        data = (SITE / "vendor" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() in record, name
        assert f"{len(data):,} bytes" in record, name
    assert "1.6.32" in record and (SITE / "vendor" / "uPlot.iife.min.js").read_text().startswith(
        "/*! https://github.com/leeoniya/uPlot (v1.6.32) */"
    )
    assert "MIT License" in (SITE / "vendor" / "uPlot.LICENSE").read_text()


def test_the_site_loads_nothing_from_a_network():
    pages = list(SITE.glob("*.html")) + list((SITE / "assets").iterdir())
    for path in pages:
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text), path
        assert "fetch(" not in text and "XMLHttpRequest" not in text and "@import" not in text, path
        # the one URL: DefiLlama's page of a pool, an <a href> the reader may follow
        # (a link, never loaded: the browser test sees no request off 127.0.0.1)
        urls = re.findall(r"https?://[^\s\"']*", text)
        assert set(urls) <= {"https://defillama.com/yields/pool/"}, (path, urls)
    scripts = re.findall(r'<script src="([^"]+)"', (SITE / "pool.html").read_text())
    assert scripts == [
        "vendor/uPlot.iife.min.js",
        "assets/common.js",
        "data/meta.js",
        "assets/pool-page.js",
    ]


def test_json_stays_strict_in_data_files(small_board):
    _, _, built = small_board
    for path in (built.out / "data").rglob("*.js"):
        text = path.read_text()
        assert text.isascii(), path
        assert "NaN" not in text and "Infinity" not in text, path
    assert math.isfinite(built.bytes_written) and built.bytes_written > 0


def test_pool_history_reads_nulls_gaps_and_the_window_from_duckdb(tmp_path):
    import duckdb

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            f"""
            create table {board.HISTORY_TABLE} as select * from (values
                ('b', date '2025-01-01', 1.0, 10.0, 'p', 'c', 'B'),
                ('b', date '2025-01-03', null, null, 'p', 'c', 'B'),
                ('b', date '2025-01-04', 4.0, 40.0, 'p', 'c', 'B2'),
                ('a', date '2024-12-01', 9.0, 90.0, 'q', 'c', 'A'),
                ('a', date '2025-01-04', 2.0, 20.0, 'q', 'd', 'A')
            ) as t(pool_id, snapshot_date, apy, tvl_usd, project, chain, symbol)
            """
        )
    latest, history = board.read_pool_history(warehouse, history_days=5)
    assert latest.set_index("pool_id").loc["b", "symbol"] == "B2"
    assert latest.set_index("pool_id").loc["a", "chain"] == "d"
    assert history.pool_ids == ["a", "b"] and len(history) == 4  # a's 2024-12-01 is outside
    records = [
        {
            "pool_id": p,
            **dict.fromkeys(
                (
                    "status",
                    "reason",
                    "p_keep",
                    "predicted_class",
                    "binned_confidence",
                    "confidence_words",
                    "feature_date",
                )
            ),
            "reasons": [],
            "flags": 0,
        }
        for p in ("a", "b")
    ]
    table = board_data.table_payload(records, latest)
    docs = {}
    for _, pools in board_data.pool_shards(
        records, history, None, table["columns"], table["projects"], table["chains"], 1, 10
    ):
        docs |= pools
    assert docs["b"]["history"] == {
        "start": "2025-01-01",
        "apy": [1.0, None, None, 4.0],  # 01-02 missing (a gap), 01-03 null in the warehouse
        "tvl_usd": [10, None, None, 40],
    }
    assert docs["a"]["history"] == {"start": "2025-01-04", "apy": [2.0], "tvl_usd": [20]}
    again = board_data.PoolHistory.from_frame(
        pd.DataFrame(
            {
                "pool_id": ["b", "a", "b"],
                "snapshot_date": pd.to_datetime(["2025-01-04", "2025-01-04", "2025-01-01"]),
                "apy": [4.0, 2.0, 1.0],
                "tvl_usd": [40.0, 20.0, 10.0],
            }
        )
    )
    days, apy, _ = again.slices()["b"]
    assert apy.tolist() == [1.0, 4.0] and (days[1] - days[0]) == 3
    missing = tmp_path / "empty.duckdb"
    duckdb.connect(str(missing)).close()
    assert board.read_pool_history(missing, 5) is None
    assert board.read_pool_history(tmp_path / "absent.duckdb", 5) is None
