"""Monitoring: the drift reference and the hourly health, the webhook alert on
a health change (a real HTTP server on 127.0.0.1), the prediction ledger and
its sync, and the SQL bin rule against contracts.confidence_bin.

The Lambda runs for real: the scheduled handler against moto's S3 server on
127.0.0.1 with a tiny model exported with a drift reference."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import uuid
from pathlib import Path

import duckdb
import jinja2
import numpy as np
import pytest
from fixtures.tiny_model import NUMERIC, feature_file, tiny_reference, write_run
from fixtures.webhook import Hook

from apy_runway.foundation.s3 import upload_run
from apy_runway.operations import ledger
from apy_runway.operations.publish import upload_features_binary
from inference import alerts, contracts, handler, monitoring
from inference.model.portable import ModelIntegrityError, read_arrays
from inference.model.portable import load as load_portable
from inference.settings import ConfigError, Settings

REPO = Path(__file__).resolve().parents[1]
POOLS = 400


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("monitored") / "20250606T000000Z"
    # the reference: the very rows publish() serves (no drift at all); the
    # measures' noise on independent samples is tested on known distributions
    write_run(run_dir, drift_reference=tiny_reference(POOLS, seed=3))
    return run_dir


@pytest.fixture(scope="module")
def top_numeric(monitored_run) -> str:
    spec = json.loads((monitored_run / contracts.PORTABLE_SPEC_FILE).read_text())
    important = monitoring.important_features(spec["monitoring"]["importance"])
    return next(f for f in important if f in NUMERIC)


@pytest.fixture
def bucket(s3_client, monitored_run, moto_endpoint, monkeypatch):
    name = f"apy-runway-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    upload_run(s3_client, name, contracts.MODEL_PREFIX, monitored_run)
    for key, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "APY_RUNWAY_BUCKET": name,
        "APY_RUNWAY_FEATURES_KEY": contracts.FEATURES_KEY,
    }.items():
        monkeypatch.setenv(key, value)
    return name


def publish(s3_client, bucket: str, shift: str | None = None) -> None:
    def edit(columns, contract):
        if shift is not None:
            columns[shift] = [None if v is None else v * 3 + 5 for v in columns[shift]]

    body = feature_file(POOLS, seed=3, edit=edit)
    upload_features_binary(s3_client, bucket, contracts.FEATURES_KEY, body)


def scheduled(hour: int) -> dict:
    return handler.scheduled({"time": f"2025-06-06T{hour:02d}:00:00Z"})


# --------------------------------------------------------------------------- drift and alerts


def test_the_daily_quantiles_travel_in_the_arrays_file_and_come_back_on_load(monitored_run):
    """The spec names each numeric feature's per-day quantiles by an arrays-file
    key; the loaded model holds the same matrices; a spec whose day list and
    matrix disagree is refused, naming the part."""
    spec = json.loads((monitored_run / contracts.PORTABLE_SPEC_FILE).read_text())
    arrays = read_arrays((monitored_run / contracts.PORTABLE_ARRAYS_FILE).read_bytes())
    expected = tiny_reference(POOLS, seed=3)
    for name in NUMERIC:
        daily = spec["monitoring"]["reference"]["features"][name]["daily"]
        assert isinstance(daily["quantiles"], str)
        assert daily["quantiles"].startswith(contracts.DRIFT_DAILY_ARRAY_PREFIX)
        assert daily["days"] == expected["features"][name]["daily"]["days"]
        assert len(daily["days"]) == 10 and min(daily["rows"]) >= contracts.DRIFT_MIN_DAY_ROWS
    model = load_portable(spec, arrays)
    for name in NUMERIC:
        back = model.monitoring["reference"]["features"][name]["daily"]["quantiles"]
        want = np.asarray(expected["features"][name]["daily"]["quantiles"])
        assert back.shape == (10, contracts.DRIFT_QUANTILE_LEVELS)
        np.testing.assert_array_equal(back, want)
    broken = json.loads(json.dumps(spec))
    daily = broken["monitoring"]["reference"]["features"][NUMERIC[0]]["daily"]
    daily["days"], daily["rows"] = daily["days"][:-1], daily["rows"][:-1]
    with pytest.raises(ModelIntegrityError, match=rf"features\['{NUMERIC[0]}'\]\.daily: array"):
        load_portable(broken, arrays)


def test_a_shifted_important_feature_degrades_posts_once_then_recovers(
    s3_client, bucket, top_numeric, monkeypatch
):
    with Hook() as hook:
        monkeypatch.setenv("APY_RUNWAY_WEBHOOK_URL", hook.url)
        publish(s3_client, bucket)
        first = scheduled(1)
        assert first["health"] == "ok", first["health_reasons"]
        assert hook.messages == []  # a first run that starts ok announces nothing

        publish(s3_client, bucket, shift=top_numeric)
        degraded = scheduled(2)
        assert degraded["health"] == "degraded"
        assert monitoring.IMPORTANT_FEATURE_DRIFT in degraded["health_reasons"]
        assert degraded["alert"] == {"change": "degraded", "previous": "ok", "posted": True}
        assert len(hook.messages) == 1
        message = hook.messages[0]
        assert message["content"] == message["text"]
        assert "degraded" in message["content"] and top_numeric in message["content"]

        document = json.loads(
            s3_client.get_object(Bucket=bucket, Key=degraded["monitoring_key"])["Body"].read()
        )
        entry = next(e for e in document["drift"] if e["feature"] == top_numeric)
        assert entry["drifted"] and entry["score"] > contracts.DRIFT_THRESHOLD
        assert entry["nearest_day"].startswith("2025-05-")  # the per-day quantiles served
        assert entry["pooled_score"] > contracts.DRIFT_THRESHOLD and entry["sampling_error"] > 0
        assert entry["psi"] > 0.1
        assert top_numeric in document["health"]["important_drifted_features"]
        assert document["shares"]["scored"] + document["shares"]["not_scored"] == 1.0
        assert document["features_age_hours"] == 2.0
        latest = json.loads(
            s3_client.get_object(Bucket=bucket, Key="predictions/latest.json")["Body"].read()
        )
        assert latest["health"]["status"] == "degraded"
        assert top_numeric in latest["health"]["drifted_features"]

        assert scheduled(3)["alert"]["change"] is None  # same state: nothing posted
        assert len(hook.messages) == 1

        publish(s3_client, bucket)
        recovered = scheduled(4)
        assert recovered["health"] == "ok"
        assert len(hook.messages) == 2
        assert "recovered" in hook.messages[1]["content"]


def test_an_older_hour_that_loses_the_conditional_write_posts_nothing(
    s3_client, bucket, top_numeric, monkeypatch
):
    with Hook() as hook:
        monkeypatch.setenv("APY_RUNWAY_WEBHOOK_URL", hook.url)
        publish(s3_client, bucket)
        assert scheduled(5)["latest_written"]
        publish(s3_client, bucket, shift=top_numeric)
        late = scheduled(4)  # an older hour retried late: latest.json keeps hour 5
        assert late["health"] == "degraded" and not late["latest_written"]
        assert hook.messages == []


def test_a_failing_webhook_is_logged_and_never_fails_the_run(
    s3_client, bucket, top_numeric, monkeypatch, caplog
):
    with Hook(status=500) as hook:
        monkeypatch.setenv("APY_RUNWAY_WEBHOOK_URL", hook.url)
        publish(s3_client, bucket)
        scheduled(1)
        publish(s3_client, bucket, shift=top_numeric)
        summary = scheduled(2)
    assert summary["health"] == "degraded" and summary["latest_written"]
    assert summary["alert"]["posted"] is False and summary["alert"]["error"] == "HTTP 500"
    assert "webhook_failed" in caplog.text


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_webhook_that_redirects_is_not_followed(status):
    """An https webhook must not be bounced to another URL (http, or anywhere
    the rule was not checked on): every redirect is refused and reported."""
    with Hook() as elsewhere, Hook(status=status, location=elsewhere.url) as hook:
        error = alerts.post(hook.url, {"content": "x", "text": "x"})
    assert len(hook.messages) == 1 and elsewhere.messages == []
    assert error == f"HTTP {status} redirect to {elsewhere.url} refused"


@pytest.mark.parametrize(
    "url",
    [
        "https://discord.com/api/webhooks/1/abc",
        "https://hooks.slack.com/services/T/B/x",
        "http://127.0.0.1:8080/hook",
        "http://127.255.0.9/hook",
        "http://[::1]:9000/hook",
        "http://localhost/hook",
    ],
)
def test_webhook_urls_that_follow_the_rule_are_accepted(url):
    assert Settings(bucket="b", webhook_url=url).webhook_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/services/T/B/x",  # plain http off the machine
        "http://10.0.0.1/hook",
        "http://128.0.0.1/hook",
        "http://localhost.evil.example/hook",
        "ftp://example.com/hook",
        "https://user:secret@example.com/hook",
        "hooks.slack.com/services",  # no scheme
        "https:///nohost",
        "https://example.com:99999/hook",
    ],
)
def test_webhook_urls_that_break_the_rule_are_refused_at_start_up(url, bucket, monkeypatch):
    with pytest.raises(ConfigError, match="APY_RUNWAY_WEBHOOK_URL"):
        Settings(bucket="b", webhook_url=url)
    monkeypatch.setenv("APY_RUNWAY_WEBHOOK_URL", url)
    with pytest.raises(ConfigError):
        scheduled(1)


def test_transitions_post_only_on_a_change():
    assert alerts.transition(None, "ok") is None
    assert alerts.transition(None, "degraded") == "degraded"
    assert alerts.transition("ok", "degraded") == "degraded"
    assert alerts.transition("degraded", "ok") == "recovered"
    assert alerts.transition("degraded", "degraded") is None


def test_drift_measures_on_known_distributions():
    rng = np.random.default_rng(0)
    reference = monitoring.numeric_reference(rng.normal(0, 1, 5000))
    same = monitoring.feature_drift("x", rng.normal(0, 1, 5000), reference)
    moved = monitoring.feature_drift("x", rng.normal(0.5, 1, 5000), reference)
    assert same["score"] < 0.05 and not same["drifted"]
    # W1 between N(0,1) and N(0.5,1) is 0.5
    assert moved["score"] == pytest.approx(0.5, abs=0.05) and moved["drifted"]
    constant = monitoring.numeric_reference(np.ones(10))
    assert monitoring.feature_drift("c", np.ones(5), constant)["drifted"] is False
    assert monitoring.feature_drift("c", np.full(5, 2.0), constant)["drifted"] is True
    shares = monitoring.categorical_reference(["a"] * 50 + ["b"] * 50)
    assert monitoring.feature_drift("k", ["a"] * 50 + ["b"] * 50, shares)["score"] == 0.0
    disjoint = monitoring.feature_drift("k", ["c"] * 10, shares)
    assert disjoint["score"] == pytest.approx(1.0) and disjoint["drifted"]


def _window(rng, days: int = 30, pools: int = 200, shock: float = 0.5):
    """A reference window with common daily moves: each day's cross-section is
    spread around its own level (a market moving every pool together)."""
    levels = rng.normal(0, shock, days)
    values = np.concatenate([rng.normal(level, 1, pools) for level in levels])
    labels = np.repeat([f"2025-05-{d + 1:02d}" for d in range(days)], pools)
    return levels, values, labels


def test_a_day_like_the_windows_days_is_not_drift_but_one_beyond_them_is():
    """Against the pooled 30-day mixture, one ordinary day strays by its common
    move (W/std above 0.1): the score compares it with the nearest day of the
    window instead, net of the sampling error of the two samples."""
    rng = np.random.default_rng(4)
    levels, values, labels = _window(rng)
    reference = monitoring.numeric_reference(values, labels)
    assert reference["daily"]["days"] == sorted(set(labels))
    inside = monitoring.feature_drift("x", rng.normal(levels.min(), 1, 200), reference)
    assert inside["pooled_score"] > contracts.DRIFT_THRESHOLD  # the pooled rule fired here
    assert inside["score"] <= contracts.DRIFT_THRESHOLD and not inside["drifted"]
    lowest = {labels[i * 200] for i in np.argsort(levels)[:3]}
    assert inside["nearest_day"] in lowest  # a day at about the same level
    beyond = monitoring.feature_drift("x", rng.normal(levels.min() - 0.5, 1, 200), reference)
    assert beyond["drifted"] and beyond["score"] > contracts.DRIFT_THRESHOLD


def test_sampling_alone_never_drifts_and_its_allowance_vanishes_at_scale():
    """A few hundred rows drawn from the reference's own distribution stray by
    sampling (W/std above 0.1 on a heavy tail); the allowance J*sqrt(1/n+1/m)
    covers it. At DefiLlama's scale (20k pools) it is a few hundredths and a
    0.15-std move is caught."""
    rng = np.random.default_rng(5)
    draw = lambda n, shift=0.0: rng.lognormal(0, 1.2, n) + shift  # noqa: E731
    reference = monitoring.numeric_reference(draw(6000), np.repeat(np.arange(30), 200))
    small = [monitoring.feature_drift("x", draw(200), reference) for _ in range(40)]
    assert not any(e["drifted"] for e in small)
    assert any(e["pooled_score"] > contracts.DRIFT_THRESHOLD for e in small)
    big = monitoring.numeric_reference(draw(600_000), np.repeat(np.arange(30), 20_000))
    same = monitoring.feature_drift("x", draw(20_000), big)
    assert same["sampling_error"] < 0.05 and not same["drifted"]
    moved = monitoring.feature_drift("x", draw(20_000, 0.15 * big["std"]), big)
    assert moved["drifted"] and moved["score"] == pytest.approx(0.15, abs=0.04)


def test_a_live_sample_spread_wide_cannot_widen_its_own_allowance():
    """The allowance comes from the reference, never from the live rows: ten
    times the spread around the same median is drift, with the same allowance
    as an ordinary sample of that size."""
    rng = np.random.default_rng(6)
    reference = monitoring.numeric_reference(rng.normal(0, 1, 6000), np.repeat(np.arange(30), 200))
    ordinary = monitoring.feature_drift("x", rng.normal(0, 1, 200), reference)
    wide = monitoring.feature_drift("x", rng.normal(0, 10, 200), reference)
    assert wide["drifted"] and not ordinary["drifted"]
    assert wide["sampling_error"] == ordinary["sampling_error"]


def test_thin_days_are_left_out_of_the_daily_quantiles_and_labels_must_match():
    rng = np.random.default_rng(7)
    values = rng.normal(0, 1, 200 + contracts.DRIFT_MIN_DAY_ROWS - 1)
    labels = ["a"] * 200 + ["b"] * (contracts.DRIFT_MIN_DAY_ROWS - 1)
    reference = monitoring.numeric_reference(values, labels)
    assert (reference["daily"]["days"], reference["daily"]["rows"]) == (["a"], [200])
    with pytest.raises(ValueError, match="199 day labels for 218 values"):
        monitoring.numeric_reference(values[:218], labels[:199])


def test_no_day_of_real_history_drifts_against_the_rest_of_its_window(real_sample_home):
    """The real DefiLlama sample: each (full) day of the drift reference window
    held out and scored against a reference of the other 29 days. The pooled
    W/std flags a dozen features or more on every such day; the rule's score
    (nearest day, net of sampling) at most one."""
    with duckdb.connect(str(real_sample_home.warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        frame = con.execute("select * from drift_reference_features").df()
    columns = json.loads(real_sample_home.feature_columns.read_text())
    values = {n: frame[n].to_numpy(dtype=np.float64, na_value=np.nan) for n in columns["numeric"]}
    days = frame["snapshot_date"].to_numpy(dtype="datetime64[D]").astype(str)
    names, counts = np.unique(days, return_counts=True)
    full = names[counts >= 0.8 * np.median(counts)]
    for day in full[::3]:
        rest = days != day
        reference = monitoring.reference(
            {n: v[rest] for n, v in values.items()}, {}, None, None, "", "", days=days[rest]
        )
        entries = monitoring.drift(reference, {n: v[~rest] for n, v in values.items()}, {})
        counted = [e for e in entries if e["counted"]]
        pooled = [e["feature"] for e in counted if (e["pooled_score"] or 0) > 0.1]
        drifted = monitoring.drift_verdict(counted, [])[1]["drifted_features"]
        assert len(drifted) <= 1, (day, drifted)
        assert len(pooled) >= 5, (day, pooled)


def test_the_rule_degrades_on_widespread_drift_without_an_important_feature():
    entries = [{"feature": f"f{i}", "drifted": i < 3} for i in range(10)]
    reasons, details = monitoring.drift_verdict(entries, ["f9"])
    assert reasons == [monitoring.WIDESPREAD_DRIFT] and details["drifted_share"] == 0.3
    assert monitoring.drift_verdict(entries[:1] + entries[3:], ["f9"])[0] == []


def test_features_that_grow_with_the_calendar_are_reported_but_never_counted():
    """A reference window's ages are ~15 days younger than the scored day's:
    pool_age_days and observed_day_count drift by construction; the rule
    leaves them out of the important features, the drifted ones and the share."""
    rng = np.random.default_rng(1)
    ages = rng.uniform(30, 330, 3000)
    reference = monitoring.numeric_reference(np.concatenate([ages - d for d in range(30)]))
    calendar = [
        monitoring.feature_drift(name, ages, reference)
        for name in contracts.DRIFT_CALENDAR_FEATURES
    ]
    assert all(e["drifted"] and not e["counted"] for e in calendar)
    other = [{"feature": f"f{i}", "drifted": False} for i in range(4)]
    importance = {"values": {"pool_age_days": 9.0, "observed_day_count": 8.0, "f0": 1.0}}
    important = monitoring.important_features(importance)
    assert important == ["f0"]
    reasons, details = monitoring.drift_verdict(calendar + other, important)
    assert reasons == [] and details["drifted_features"] == [] and details["drifted_share"] == 0
    # the same scores under another name count
    renamed = [{**e, "feature": f"x{i}"} for i, e in enumerate(calendar)]
    assert monitoring.drift_verdict(renamed + other, ["x0"])[0] == [
        monitoring.IMPORTANT_FEATURE_DRIFT,
        monitoring.WIDESPREAD_DRIFT,
    ]


# --------------------------------------------------------------------------- ledger


def _ledger_rows(s3_client, bucket: str, key: str) -> list[dict]:
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines()]


def test_the_ledger_holds_one_row_per_served_pool_and_hour_even_when_retried(
    s3_client, bucket, tmp_path
):
    publish(s3_client, bucket)
    first = scheduled(1)
    again = scheduled(1)  # EventBridge's retry of the same hour
    assert (
        first["ledger_key"]
        == again["ledger_key"]
        == "ledger/date=2025-06-06/2025-06-06T01Z.json.gz"
    )
    rows = _ledger_rows(s3_client, bucket, again["ledger_key"])
    assert len(rows) == first["scored"] == len({(r["pool_id"], r["hour"]) for r in rows})
    latest = json.loads(
        s3_client.get_object(Bucket=bucket, Key="predictions/latest.json")["Body"].read()
    )
    served = {p["pool_id"]: p for p in latest["predictions"] if p["status"] == "scored"}
    for row in rows:
        shown = served[row["pool_id"]]
        assert round(row["p_keep"], 6) == shown["p_keep"]  # unrounded, the same number
        assert row["binned_confidence"] == contracts.confidence_bin(
            contracts.predicted_probability(row["p_keep"]),
            [row["cutpoint_low"], row["cutpoint_high"]],
        )
        assert row["horizon_days"] == 30 and row["source"] == "live"
    assert any(len(str(r["p_keep"])) > 8 for r in rows)  # not the 6-digit copy
    report = ledger.sync_bucket(s3_client, bucket, contracts.LEDGER_PREFIX, tmp_path / "ledger")
    assert report.copied == ["date=2025-06-06/2025-06-06T01Z.json.gz"] and not report.corrupt
    with duckdb.connect() as con:
        count = con.execute(
            f"select count(*), count(distinct (pool_id, hour)) from read_json("
            f"'{tmp_path}/ledger/date=*/*.json.gz', format = 'newline_delimited')"
        ).fetchone()
    assert count == (len(rows), len(rows))


def test_sync_reports_corrupt_and_missing_partitions_by_name_and_skips_them(tmp_path):
    from inference.service import ledger_body

    source, out = tmp_path / "remote", tmp_path / "ledger"
    row = {
        "source": "live",
        "pool_id": "p",
        "hour": "2025-06-01T00:00:00Z",
        "model_id": "m",
        "feature_date": "2025-05-31",
        "p_keep": 0.7,
        "predicted_class": "Stable/Up",
        "binned_confidence": 1,
        "cutpoint_low": 60.0,
        "cutpoint_high": 75.0,
        **dict.fromkeys(contracts.LABEL_SETTING_COLUMNS, 1),
        "reasons": [],
    }
    files = {
        "date=2025-06-01/2025-06-01T00Z.json.gz": ledger_body([row]),
        "date=2025-06-02/2025-06-02T00Z.json.gz": b"not gzip at all",
        "date=2025-06-03/2025-06-03T00Z.json.gz": gzip.compress(b'{"pool_id": "p"}\n'),
        "date=2025-06-05/2025-06-05T00Z.json.gz": ledger_body([row, row]),
    }
    for name, body in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(body)
    report = ledger.sync_folder(source, out)
    assert report.copied == [
        "date=2025-06-01/2025-06-01T00Z.json.gz",
        "date=2025-06-05/2025-06-05T00Z.json.gz",
    ]
    assert report.rows == 3
    assert set(report.corrupt) == {
        "date=2025-06-02/2025-06-02T00Z.json.gz",
        "date=2025-06-03/2025-06-03T00Z.json.gz",
    }
    assert "lacks" in report.corrupt["date=2025-06-03/2025-06-03T00Z.json.gz"]
    assert report.missing_days == ["2025-06-04"]
    text = report.describe()
    assert "SKIPPED corrupt partition file date=2025-06-02" in text
    assert "MISSING partition date=2025-06-04" in text
    assert not (out / "date=2025-06-02").exists()
    saved = json.loads((out / ledger.REPORT_FILE).read_text())
    assert saved["missing_days"] == ["2025-06-04"] and len(saved["corrupt"]) == 2


# --------------------------------------------------------------------------- the SQL bin rule


def test_the_sql_bin_rule_is_contracts_confidence_bin_at_and_around_the_cutpoints():
    macros = (
        jinja2.Environment()
        .from_string((REPO / "dbt_project" / "macros" / "ledger.sql").read_text())
        .module
    )
    expression = macros.confidence_bin(
        str(macros.predicted_probability("p_keep")), "cutpoint_low", "cutpoint_high"
    )
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.random(2000), [0.0, 0.5, 1.0, 0.25, 0.75, 0.6, 0.4]])
    shown = contracts.predicted_probability(p)
    # cut-points equal to served probabilities: the lower bin must win exactly there
    low, high = float(shown[10]), float(shown[20])
    low, high = min(low, high), max(low, high)
    con = duckdb.connect()
    con.execute("create table t (p_keep double, cutpoint_low double, cutpoint_high double)")
    con.executemany("insert into t values (?, ?, ?)", [(float(x), low, high) for x in p])
    got = np.array([r[0] for r in con.execute(f"select {expression} from t").fetchall()])
    expected = np.asarray(contracts.confidence_bin(shown, [low, high]))
    assert (got == expected).all()
    assert got[10] == expected[10] and expected[10] in (1, 2)  # at a cut-point: the lower bin


def test_contracts_ledger_key_layout():
    hour = dt.datetime(2025, 6, 6, 13, tzinfo=dt.UTC)
    assert contracts.ledger_key("ledger/", hour) == "ledger/date=2025-06-06/2025-06-06T13Z.json.gz"
    assert contracts.ledger_key("", hour, "backtest").endswith("T13Z.backtest.json.gz")
    assert ledger.FILE_NAME.match(contracts.ledger_key("", hour, "backtest"))
    assert contracts.monitoring_key("monitoring/", hour) == "monitoring/2025-06-06T13Z.json"
