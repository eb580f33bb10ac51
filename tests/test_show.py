"""`apy-runway show POOL…` on a small predictions document: pools named by id
or by a prefix only one pool has, unknown and ambiguous names reported with a
hint, the call as DefiLlama shows it with its signed reasons, inactive and
not-scored pools said so. The record from the real ledger mart is tested on
the run-all home of tests/test_live_loop.py."""

from __future__ import annotations

import json

from apy_runway import cli
from apy_runway.operations import show

DOCUMENT = {
    "schema_version": 3,
    "model_id": "20250606T000000Z",
    "event_time": "2025-06-06T00:00:00Z",
    "predictions": [
        {
            "pool_id": "aa11-usdc",
            "symbol": "USDC",
            "project": "aave-v3",
            "chain": "Ethereum",
            "p_keep": 0.083,
            "binned_confidence": 3,
            "confidence_words": "High",
            "apy": 4.5,
            "tvl_usd": 12_300_000,
            "feature_date": "2025-06-05",
            "reasons": [
                {"feature": "apy", "text": "apy is 2.1x its 30-day mean", "contribution": -0.2},
                {"feature": "tvl_usd", "text": "TVL $12.3M", "contribution": 0.05},
            ],
        },
        {"pool_id": "aa22-usdc", "symbol": "USDC", "p_keep": 0.71, "feature_date": "2025-06-05"},
        {
            "pool_id": "bb33-old",
            "symbol": "WETH",
            "p_keep": None,
            "reason": "inactive",
            "is_inactive": True,
            "apy": 9.0,
            "feature_date": "2025-05-01",
        },
    ],
}


def test_pools_are_named_by_id_or_a_unique_prefix(tmp_path):
    found, problems = show.resolve(DOCUMENT["predictions"], ["aa11-usdc", "BB3", "aa", "usdc"])
    assert [r["pool_id"] for r in found] == ["aa11-usdc", "bb33-old"]
    assert problems[0].startswith("'aa' starts 2 pool ids (aa11-usdc, aa22-usdc")
    assert problems[1] == (
        "no pool 'usdc' in the latest predictions; pools with symbol usdc: aa11-usdc, aa22-usdc"
    )


def test_show_prints_the_call_signed_reasons_and_says_what_is_missing(project_home, capsys):
    (project_home.exports / "predictions_latest.json").write_text(json.dumps(DOCUMENT))
    home = ["--home", str(project_home.home)]
    assert cli.main([*home, "show", "aa11", "bb33-old", "nope"]) == 1
    captured = capsys.readouterr()
    out = captured.out
    assert "USDC  aave-v3 · Ethereum" in out and "pool aa11-usdc" in out
    assert "call: Down 92%, High confidence  (p_keep 0.083" in out
    assert "↓ apy is 2.1x its 30-day mean" in out and "↑ TVL $12.3M" in out
    assert "APY 4.50%, TVL $12.3M (features of 2025-06-05)" in out
    assert "APY 9.00%, TVL – (last seen 2025-05-01: inactive)" in out
    assert "call: not scored (inactive)" in out
    assert "record: no ledger yet" in out  # no warehouse in this home
    assert "no pool 'nope'" in captured.err
    assert cli.main([*home, "show", "aa22"]) == 0
    assert "call: Stable/Up 71%" in capsys.readouterr().out


def test_show_without_predictions_says_what_to_run(project_home, capsys):
    assert cli.main(["--home", str(project_home.home), "show", "x"]) == 2
    assert "run `apy-runway score`" in capsys.readouterr().err
