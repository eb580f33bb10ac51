"""`apy-runway fetch` against a local http.server (127.0.0.1, in a thread)
serving DefiLlama-format fixtures: retries, a pool that always fails, resume,
filters, atomic files, and the hand-off to `apy-runway ingest`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from apy_runway.foundation.console import UserError
from apy_runway.landing.fetch import fetch, landing_dir, select_pools
from apy_runway.landing.ingest import ingest
from apy_runway.landing.standin import CountingHandler, LoopbackServer

FIXTURES = Path(__file__).parent / "fixtures" / "defillama"
FLAKY = "f1a4e000-0000-4000-8000-000000000001"  # fails twice, then succeeds
BROKEN = "b40e0000-0000-4000-8000-000000000002"  # always fails
GONE = "90e00000-0000-4000-8000-000000000003"  # not listed, 404
KAMINO = "d2b4c1f0-7e6a-4f3b-8c5d-9a1e2b3c4d5e"  # listed, empty history: a failure
FAST = {"delay": 0.0, "backoff": 0.0, "timeout": 5.0}


def pools_payload() -> dict:
    payload = json.loads((FIXTURES / "pools.json").read_text())
    template = payload["data"][0]
    for pool, project, tvl in ((FLAKY, "flaky-finance", 5e6), (BROKEN, "broken-bank", 4e6)):
        item = copy.deepcopy(template)
        item.update(pool=pool, project=project, tvlUsd=tvl)
        payload["data"].append(item)
    return payload


def chart_payload(pool: str) -> dict | None:
    path = FIXTURES / "chart" / f"{pool}.json"
    if path.exists():
        return json.loads(path.read_text())
    if pool == FLAKY:
        return {
            "status": "success",
            "data": [
                {
                    "timestamp": "2024-11-13T00:00:00.000Z",
                    "tvlUsd": 5e6,
                    "apy": 3.1,
                    "apyBase": 3.1,
                    "apyReward": None,
                    "il7d": None,
                    "apyBase7d": None,
                }
            ],
        }
    # a pool listed by /pools without a saved fixture chart: empty history
    return {"status": "success", "data": []}


class _DefiLlamaHandler(CountingHandler):
    def answer(self, path: str, count: int) -> None:
        if path == "/pools":
            return self.send_json(200, pools_payload())
        if path.startswith("/chart/"):
            pool = path.removeprefix("/chart/")
            if pool == BROKEN:
                return self.send_json(500, {"error": "internal"})
            if pool == GONE:
                return self.send_json(404, {"error": "pool not found"})
            if pool == FLAKY and count <= 2:
                return self.send_json(503, {"error": "busy"})
            return self.send_json(200, chart_payload(pool))
        return self.send_json(404, {"error": "not found"})


class FakeDefiLlama(LoopbackServer):
    """Serves /pools and /chart/{pool}; counts every request per path."""

    def __init__(self) -> None:
        super().__init__(_DefiLlamaHandler)

    def chart_requests(self) -> int:
        return sum(n for path, n in self.requests.items() if path.startswith("/chart/"))


@pytest.fixture
def defillama():
    with FakeDefiLlama() as server:
        yield server


def test_fetch_retries_reports_failures_and_saves_the_rest(project_home, defillama):
    result = fetch(project_home, base_url=defillama.url, retries=2, **FAST)

    folder = landing_dir(project_home)
    saved = sorted(p.stem for p in (folder / "chart").glob("*.json"))
    all_pools = [item["pool"] for item in pools_payload()["data"]]
    assert result.selected == len(all_pools) == 5
    assert sorted(result.saved) == saved == sorted(set(all_pools) - {BROKEN, KAMINO})
    assert set(result.failed) == {BROKEN, KAMINO}
    assert "HTTP 500" in result.failed[BROKEN]
    assert 'empty "data"' in result.failed[KAMINO]  # never saved as done
    # the flaky pool: two 503s then a success; the broken one: 1 + 2 retries
    assert defillama.requests[f"/chart/{FLAKY}"] == 3
    assert defillama.requests[f"/chart/{BROKEN}"] == 3
    assert json.loads((folder / "chart" / f"{FLAKY}.json").read_text()) == chart_payload(FLAKY)
    assert json.loads((folder / "pools.json").read_text()) == pools_payload()
    assert json.loads((folder / "fetch_failures.json").read_text())["failed"].keys() == {
        BROKEN,
        KAMINO,
    }
    assert not [p for p in folder.rglob("*") if p.name.startswith(".")]  # no temp files


def test_fetch_resumes_without_fetching_saved_pools(project_home, defillama):
    first = fetch(project_home, base_url=defillama.url, retries=0, **FAST)
    assert set(first.failed) == {BROKEN, FLAKY, KAMINO}  # no retries: the flaky one fails too
    chart_file = landing_dir(project_home) / "chart" / f"{first.saved[0]}.json"
    stamp = chart_file.stat().st_mtime_ns

    requests_before = dict(defillama.requests)
    second = fetch(project_home, base_url=defillama.url, retries=0, **FAST)
    new = {
        path: n - requests_before.get(path, 0)
        for path, n in defillama.requests.items()
        if n != requests_before.get(path, 0)
    }
    # only the failed pools are asked again; pools.json and saved charts are reused
    assert new == {f"/chart/{BROKEN}": 1, f"/chart/{FLAKY}": 1, f"/chart/{KAMINO}": 1}
    assert sorted(second.skipped) == sorted(first.saved)
    assert second.saved == []  # FLAKY's second attempt overall is still a 503
    assert chart_file.stat().st_mtime_ns == stamp

    third = fetch(project_home, base_url=defillama.url, retries=0, **FAST)
    assert third.saved == [FLAKY]
    fourth_before = defillama.chart_requests()
    fourth = fetch(project_home, base_url=defillama.url, pool_ids=[FLAKY], **FAST)
    assert (fourth.saved, fourth.skipped) == ([], [FLAKY])
    assert defillama.chart_requests() == fourth_before


@pytest.mark.parametrize("folder_name", ["chart", "."])
def test_fetched_files_ingest(project_home, defillama, folder_name):
    fetch(project_home, base_url=defillama.url, retries=2, **FAST)
    folder = landing_dir(project_home)
    # the whole landing folder works too: pools.json and fetch_failures.json are skipped
    result = ingest([folder / folder_name], project_home, pools_json=folder / "pools.json")
    # listed pools' fixture charts (5 + 4 items, 2 bad), the flaky pool's one
    # item; the broken pool and kamino's empty history have no file
    assert (result.rows_in, result.rows_staged, result.rows_quarantined) == (10, 8, 2)
    assert result.pools == 3


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {},
            [
                "aa70268e-4b52-42bf-a116-608b370f9501",
                "6f2ecd7e-1c3d-4a52-9d6b-3b8a2f1c0d11",
                "d2b4c1f0-7e6a-4f3b-8c5d-9a1e2b3c4d5e",
                FLAKY,
                BROKEN,
            ],
        ),
        (
            {"max_pools": 2},
            ["aa70268e-4b52-42bf-a116-608b370f9501", "6f2ecd7e-1c3d-4a52-9d6b-3b8a2f1c0d11"],
        ),
        ({"projects": ["Kamino-Lend"]}, ["d2b4c1f0-7e6a-4f3b-8c5d-9a1e2b3c4d5e"]),
        (
            {"chains": ["arbitrum", "solana"]},
            ["6f2ecd7e-1c3d-4a52-9d6b-3b8a2f1c0d11", "d2b4c1f0-7e6a-4f3b-8c5d-9a1e2b3c4d5e"],
        ),
        (
            {"min_tvl": 4.5e6},
            [
                "aa70268e-4b52-42bf-a116-608b370f9501",
                "6f2ecd7e-1c3d-4a52-9d6b-3b8a2f1c0d11",
                "d2b4c1f0-7e6a-4f3b-8c5d-9a1e2b3c4d5e",
                FLAKY,
            ],
        ),
        ({"pool_ids": [BROKEN, "unlisted-pool"]}, [BROKEN, "unlisted-pool"]),
        ({"pool_ids": [BROKEN, "unlisted-pool"], "projects": ["broken-bank"]}, [BROKEN]),
    ],
)
def test_select_pools(options, expected):
    assert select_pools(pools_payload()["data"], **options) == expected


def test_fetch_limits_fetch_only_the_selected_pools(project_home, defillama):
    result = fetch(project_home, base_url=defillama.url, chains=["Arbitrum"], **FAST)
    assert result.saved == ["6f2ecd7e-1c3d-4a52-9d6b-3b8a2f1c0d11"]
    assert defillama.chart_requests() == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [({"max_pools": 0}, "max_pools"), ({"delay": -1.0}, "delay=-1.0")],
)
def test_bad_options_are_rejected(project_home, defillama, options, message):
    with pytest.raises(ValueError, match=message):
        fetch(project_home, base_url=defillama.url, **{**FAST, **options})
    assert defillama.requests == {}  # rejected before any request


def test_unreachable_api_is_a_clear_error(project_home):
    with pytest.raises(UserError, match=r"cannot download http://127\.0\.0\.1:9/pools"):
        fetch(project_home, base_url="http://127.0.0.1:9", retries=1, **FAST)
    assert not (landing_dir(project_home) / "pools.json").exists()


def test_not_found_pool_is_not_retried(project_home, defillama):
    result = fetch(project_home, base_url=defillama.url, retries=3, pool_ids=[GONE], **FAST)
    assert "HTTP 404" in result.failed[GONE]
    assert defillama.requests[f"/chart/{GONE}"] == 1  # a 404 will not change: no retry
    assert result.saved == []
