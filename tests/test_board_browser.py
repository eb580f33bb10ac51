"""The runway board in a real headless browser: Debian's chromium
(/usr/bin/chromium, installed by .ci/run) driven by Playwright through
`executable_path` (never `playwright install`).

One browser and one generated dataset for the module: 20,000 pools of
predictions, daily history in a DuckDB warehouse, a backtest and a health
document (tests/fixtures/board_inputs.py), built by `build_board` and served
by an http.server on 127.0.0.1 that the module starts and stops. A second,
small board with every optional source missing is opened from file://.

Timings are measured inside the page with performance.now(): from the event
to the next painted frame (requestAnimationFrame, then a task). The issue's
budgets (first render <= 2 s; each sort, filter and search <= 300 ms) are
asserted, and every measured value is written to
build/test-artifacts/board_timings.json and printed (pytest -s shows it).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.board_inputs import (
    FORMULA_SYMBOL,
    INJECTED_SYMBOL,
    ODD_POOL_IDS,
    write_board_inputs,
)

from apy_runway.board import build as board
from apy_runway.board import data as board_data
from apy_runway.foundation.paths import project_paths

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "build" / "test-artifacts"
POOLS = 20_000
FIRST_RENDER_BUDGET_MS = 2000.0
OPERATION_BUDGET_MS = 300.0

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium, as "
        ".ci/run does) to run the board's browser tests",
        allow_module_level=True,
    )

from playwright.sync_api import sync_playwright  # noqa: E402  (dev extras; after the skip)

pytestmark = pytest.mark.slow

# Run one action in the page and resolve with the milliseconds until the next
# painted frame: [kind, css selector, value].
MEASURE = """([kind, selector, value]) => new Promise((resolve) => {
  const node = document.querySelector(selector);
  const started = performance.now();
  if (kind === "click") node.click();
  else {
    node.value = value;
    node.dispatchEvent(new Event(kind === "select" ? "change" : "input", { bubbles: true }));
  }
  requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - started), 0));
})"""

# Pixels of a chart's canvas drawn in each series' stroke colour (+-12 per channel).
DRAWN = """(name) => {
  const chart = BOARD.charts.find((c) => c.name === name);
  if (!chart) return null;
  const canvas = chart.plot.ctx.canvas;
  const pixels = chart.plot.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = chart.strokes.map(
    (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  const counts = colours.map(() => 0);
  for (let p = 0; p < pixels.length; p += 4) {
    if (pixels[p + 3] < 200) continue;
    colours.forEach((rgb, k) => {
      if (Math.abs(pixels[p] - rgb[0]) <= 12 && Math.abs(pixels[p + 1] - rgb[1]) <= 12 &&
          Math.abs(pixels[p + 2] - rgb[2]) <= 12) counts[k]++;
    });
  }
  const box = canvas.getBoundingClientRect();
  return { width: box.width, height: box.height, counts: counts,
           points: chart.plot.data.slice(1).map((s) => s.filter((v) => v !== null).length) };
}"""

TIMINGS: dict[str, float] = {}


def record(name: str, ms: float) -> float:
    TIMINGS[name] = round(ms, 1)
    return ms


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """20,000 generated pools built into a board."""
    paths = project_paths(tmp_path_factory.mktemp("board-home")).ensure()
    inputs = write_board_inputs(paths, n_pools=POOLS)
    built = board.build_board(paths)
    assert built.pools == POOLS
    return inputs, built


@pytest.fixture(scope="module")
def table(generated):
    """What the page holds: the table's columns as a frame, and its dictionaries."""
    _, built = generated
    text = (built.out / "data" / "table.js").read_text()
    payload = json.loads(text[text.index(",") + 1 : text.rindex(");")])
    columns = pd.DataFrame(payload["columns"])
    for name in ("p_keep", "apy", "tvl_usd", *board_data.STATE_NUMBERS):
        columns[name] = columns[name].astype(float)
    return columns, payload


@pytest.fixture(scope="module")
def site(generated):
    """The board served by http.server on 127.0.0.1 (a free port), stopped after."""
    _, built = generated

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=built.out))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail(f"CI is set and {CHROMIUM} is missing: .ci/run must install chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
            accept_downloads=True,
        )
        yield context
        context.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "board_timings.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")
    print(f"\nboard timings (ms, budgets 2000 / 300): {json.dumps(TIMINGS)}")


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and any request off 127.0.0.1."""
    page = browser.new_page()
    problems: list[str] = []

    def on_request(request):
        url = urllib.parse.urlsplit(request.url)
        if url.scheme not in ("file", "data") and url.hostname != "127.0.0.1":
            problems.append(f"request off this machine: {request.url}")

    page.on("request", on_request)
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page
    page.close()
    assert not problems, "\n".join(problems)


def open_page(page, url: str) -> float:
    page.goto(url)
    page.wait_for_function("window.BOARD && BOARD.ready === true", timeout=30_000)
    return page.evaluate("BOARD.timings.firstRender")


def measure(page, kind: str, selector: str, value: str | None = None) -> float:
    return page.evaluate(MEASURE, [kind, selector, value])


def expected_order(records, column: str, descending: bool) -> list[str]:
    """The table's order: missing values last, ties by original row."""
    values = records[column].to_numpy(dtype=float)
    index = np.arange(len(values))
    missing = np.isnan(values)
    keys = np.where(missing, 0.0, -values if descending else values)
    order = np.lexsort((index, keys, missing))
    return records["pool_id"].to_numpy()[order].tolist()


# --------------------------------------------------------------------------- the pool table

# item 1's columns, in order (Pool id hidden by default)
ITEM_1_COLUMNS = (
    "symbol",
    "project",
    "chain",
    "tvl_usd",
    "apy",
    "apy_base",
    "apy_reward",
    "apy_mean_30d",
    "apy_change_7d",
    "outlook",
)
# the checks below read the page's own formatting of a number
FORMAT = "([kind, value]) => BOARD[kind](value)"


def shown_as(page, kind: str, value) -> str:
    return page.evaluate(FORMAT, [kind, None if pd.isna(value) else float(value)])


def outlook_text(p_keep) -> str:
    if pd.isna(p_keep):
        return "not scored"
    down = p_keep <= 0.5
    percent = round(100 * (1 - p_keep if down else p_keep))
    return f"{'Down' if down else 'Stable/Up'} {percent}%"


def test_table_renders_20k_pools_fast_with_every_column_of_the_call(page, site, generated, table):
    inputs, _ = generated
    columns, payload = table
    first = record("first_render", open_page(page, site + "index.html"))
    assert first <= FIRST_RENDER_BUDGET_MS, f"first render took {first:.0f} ms"
    assert page.text_content("#count") == "showing 20,000 of 20,000 pools"
    assert page.evaluate("BOARD.table.rowsInDom()") < 80  # virtual scrolling
    # DefiLlama's default: the largest TVL first, missing TVL last
    order = expected_order(columns, "tvl_usd", descending=True)
    assert page.evaluate("BOARD.table.visibleIds(0, 200)") == order[:200]
    assert page.evaluate(f"BOARD.table.visibleIds({POOLS - 200}, {POOLS})") == order[-200:]
    headers = page.locator("#header .cell:visible").evaluate_all(
        "cells => cells.map((c) => c.className.match(/col-(\\S+)/)[1])"
    )
    assert headers == ["star", *ITEM_1_COLUMNS] or headers == ["star", *ITEM_1_COLUMNS, "reasons"]
    # the first rows on screen are what the data says, cell by cell
    records = inputs.records.set_index("pool_id")
    for k in range(5):
        pool_id = order[k]
        want = records.loc[pool_id]
        row = page.locator(f'#rows .row[data-pool="{pool_id}"]')

        def cell(name: str, row=row) -> str:
            return row.locator(f".col-{name}").text_content()

        assert cell("project") == want["project"] and cell("chain") == want["chain"]
        assert row.locator(".col-symbol .meta").text_content() == (
            want["pool_meta"] if isinstance(want["pool_meta"], str) else ""
        )
        for name in ("apy", "apy_base", "apy_reward", "apy_mean_30d"):
            assert cell(name) == shown_as(
                page, "fmtApy", columns.set_index("pool_id").at[pool_id, name]
            )
            assert abs(columns.set_index("pool_id").at[pool_id, name] - want[name]) < 1e-4 or (
                pd.isna(want[name])
            ), name
        assert cell("apy_change_7d") == shown_as(page, "fmtChange", want["apy_change_7d"])
        assert cell("tvl_usd") == shown_as(page, "fmtUsd", want["tvl_usd"])
        call = row.locator(".col-outlook .call").text_content()
        assert call == outlook_text(want["p_keep"])
        word = row.locator(".col-outlook .word").text_content()
        bins = int(want["binned_confidence"])
        assert word == (payload["confidence_words"][str(bins)] if bins else "")
    # the DefiLlama link and the inactive pools' "last seen" numbers are on the pool page
    # and in the row: an inactive pool's APY and TVL are marked as last seen
    inactive = inputs.records[inputs.records["flags"] & 1 == 1].iloc[0]
    measure(page, "input", "#search", inactive["pool_id"])
    row = page.locator(f'#rows .row[data-pool="{inactive["pool_id"]}"]')
    assert "inactive" in row.get_attribute("class")
    for name in ("apy", "tvl_usd"):
        assert "last-seen" in row.locator(f".col-{name}").get_attribute("class")
        assert (
            row.locator(f".col-{name}")
            .get_attribute("title")
            .startswith(f"last seen {inactive['seen_day']}")
        )
    assert "inactive" in row.locator(".col-symbol .badges").text_content()
    # the legend says what each confidence word has meant, from the backtest here
    legend = page.text_content("#legend")
    for entry in payload["legend"]:
        assert f"{entry['words']} right {100 * entry['hit_rate']:.1f}% of the time" in legend
        assert f"{100 * entry['share']:.1f}% of pools now" in legend
    assert "backtest record" in legend
    # the banner: the features' day and the model's provenance (generated demo data)
    banner = page.text_content("#banner")
    assert "Features of 2025-06-05" in banner and "stale" in banner  # years before today
    assert "Demo model: trained on generated data (seed 7)" in banner
    measure(page, "input", "#search", "")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "board.png"))
    assert (ARTIFACTS / "board.png").stat().st_size > 10_000


def test_every_sort_stays_within_budget_and_sorts_right(page, site, generated, table):
    inputs, _ = generated
    records, _ = table  # the sort keys as the page holds them (rounded for a small file)
    # every optional column shown, through the URL
    open_page(
        page, site + "index.html?cols=pool_id,apy_change_1d,apy_change_30d,p_keep,reasons,flags"
    )
    assert page.locator("#header .col-pool_id").is_visible()
    numeric = (
        "apy",
        "tvl_usd",
        "p_keep",
        "apy_base",
        "apy_reward",
        "apy_mean_30d",
        "apy_change_7d",
    )
    for column in numeric:
        descending = True  # a number sorts highest first on its first click
        ms = record(f"sort_{column}", measure(page, "click", f'button[data-col="{column}"]'))
        assert ms <= OPERATION_BUDGET_MS, f"sort by {column} took {ms:.0f} ms"
        order = expected_order(records, column, descending)
        assert page.evaluate("BOARD.table.visibleIds(0, 100)") == order[:100], column
        ms = record(
            f"sort_{column}_reversed", measure(page, "click", f'button[data-col="{column}"]')
        )
        assert ms <= OPERATION_BUDGET_MS, f"reversed sort by {column} took {ms:.0f} ms"
        # reversed: present values flip, missing values stay last
        flipped = expected_order(records, column, not descending)
        assert page.evaluate("BOARD.table.visibleIds(0, 100)") == flipped[:100], column
    # the outlook sorts by p_keep: the surest Stable/Up first
    measure(page, "click", 'button[data-col="outlook"]')
    assert (
        page.evaluate("BOARD.table.visibleIds(0, 100)")
        == expected_order(records, "p_keep", True)[:100]
    )
    for column in (
        "symbol",
        "pool_id",
        "apy_change_1d",
        "apy_change_30d",
        "reasons",
        "project",
        "chain",
        "flags",
        "star",
    ):
        ms = record(f"sort_{column}", measure(page, "click", f'button[data-col="{column}"]'))
        assert ms <= OPERATION_BUDGET_MS, f"sort by {column} took {ms:.0f} ms"
    # the text sort: symbols ascending, case-insensitive, missing last
    page.click('button[data-col="symbol"]')
    ids = page.evaluate(f"BOARD.table.visibleIds(0, {POOLS})")
    symbols = inputs.records.set_index("pool_id").loc[ids, "symbol"].tolist()
    present = [s for s in symbols if isinstance(s, str)]
    assert present == sorted(present, key=str.lower) and pd.isna(symbols[-1])
    assert len(present) == inputs.records["symbol"].notna().sum() < POOLS
    assert page.get_attribute(".col-symbol[role=columnheader]", "aria-sort") == "ascending"


def choose(page, picker: str, names: list[str]) -> float:
    """Tick `names` in a multi-choice picker; the milliseconds of the last tick."""
    page.click(f"#{picker} summary")
    ms = 0.0
    for name in names:
        ms = measure(page, "click", f'#{picker} label[data-name="{name.lower()}"] input')
    page.click("h1")  # a click elsewhere closes it
    return ms


def test_each_filter_stays_within_budget_and_finds_the_right_pools(page, site, generated):
    inputs, _ = generated
    records = inputs.records
    open_page(page, site + "index.html")
    expected = records

    def count() -> int:
        return page.evaluate("BOARD.table.visibleCount()")

    chains = ["Solana", "Base"]
    ms = record("filter_chains", choose(page, "chain-picker", chains))
    assert ms <= OPERATION_BUDGET_MS
    expected = expected[expected["chain"].isin(chains)]
    assert count() == len(expected)
    assert set(page.locator("#rows .row:visible .col-chain").all_text_contents()) == set(chains)
    assert page.text_content("#chain-picker summary") == "Chain: Base, Solana"

    projects = sorted(expected["project"].value_counts().index[:3])
    ms = record("filter_projects", choose(page, "project-picker", projects))
    assert ms <= OPERATION_BUDGET_MS
    expected = expected[expected["project"].isin(projects)]
    assert count() == len(expected) > 0
    page.click("#project-picker summary")
    page.click("#project-picker .pick-clear")  # back to every project
    expected = records[records["chain"].isin(chains)]
    assert count() == len(expected)

    ms = record("filter_tvl", measure(page, "select", "#tvl", "1000000"))
    assert ms <= OPERATION_BUDGET_MS
    expected = expected[expected["tvl_usd"] >= 1e6]
    assert count() == len(expected) > 0
    for box, bit in (("stable", 1), ("noil", 2), ("single", 4)):
        ms = record(f"filter_{box}", measure(page, "click", f"#{box}"))
        assert ms <= OPERATION_BUDGET_MS
        expected = expected[expected["traits"] & bit == bit]
        assert count() == len(expected), box
    assert len(expected) > 0
    assert expected["is_stablecoin"].all() and (expected["il_risk"] == "no").all()
    assert (expected["exposure"] == "single").all()

    ms = record("filter_class", measure(page, "select", "#class", "down"))
    assert ms <= OPERATION_BUDGET_MS
    expected = expected[expected["class_code"] == 0]
    assert count() == len(expected)
    assert page.text_content("#count") == f"showing {len(expected):,} of 20,000 pools"
    assert set(page.locator("#rows .row:visible .col-outlook .call").all_text_contents()) <= {
        outlook_text(p) for p in expected["p_keep"]
    }


def test_search_covers_project_chain_and_pool_id_and_says_when_nothing_matches(
    page, site, generated
):
    inputs, _ = generated
    records = inputs.records
    open_page(page, site + "index.html")
    parts = [records[c].fillna("").astype(str) for c in ("symbol", "pool_meta", "project", "chain")]
    text = parts[0]
    for part in [*parts[1:], records["pool_id"]]:
        text = text + "\x00" + part
    text = text.str.lower()
    for name, query in (
        ("search_project", "PROJECT-007"),
        ("search_chain", "solana"),
        ("search_symbol", "weth-us"),
        ("search_pool_id", records["pool_id"].iloc[12345][:13].upper()),
    ):
        ms = record(name, measure(page, "input", "#search", query))
        assert ms <= OPERATION_BUDGET_MS
        hits = text.str.contains(query.lower(), regex=False)
        assert page.evaluate("BOARD.table.visibleCount()") == int(hits.sum()) > 0, query
    assert records["pool_id"].iloc[12345] in page.evaluate("BOARD.table.visibleIds(0, 50)")
    assert (records["chain"] == "Solana").sum() <= int(text.str.contains("solana").sum())
    measure(page, "input", "#search", "no-such-pool-anywhere")
    assert page.evaluate("BOARD.table.visibleCount()") == 0
    hint = page.text_content("#empty")
    assert "No pool matches \u201cno-such-pool-anywhere\u201d" in hint
    assert "project, chain and pool id" in hint
    page.click("#clear-filters")
    assert page.evaluate("BOARD.table.visibleCount()") == POOLS
    assert page.input_value("#search") == ""


def test_a_filtered_sorted_view_survives_a_pool_page_and_back_through_the_url(page, site, browser):
    open_page(page, site + "index.html")
    choose(page, "chain-picker", ["Solana"])
    page.select_option("#tvl", "100000")
    page.check("#stable")
    page.fill("#search", "usd")
    page.click('button[data-col="apy"]')  # APY, highest first
    ids = page.evaluate("BOARD.table.visibleIds(0, 20000)")
    assert 0 < len(ids) < POOLS
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)
    assert query == {
        "q": ["usd"],
        "sort": ["apy"],
        "dir": ["desc"],
        "chain": ["Solana"],
        "tvl": ["100000"],
        "stable": ["1"],
    }
    shared = page.url
    page.locator("#rows .row:visible .col-symbol a").nth(2).click()
    page.wait_for_url("**/pool.html?id=*")
    page.wait_for_function("window.BOARD && BOARD.ready === true")
    page.go_back()
    page.wait_for_function("window.BOARD && BOARD.table && BOARD.ready === true")
    assert page.url == shared
    assert page.evaluate("BOARD.table.visibleIds(0, 20000)") == ids
    assert page.text_content("#chain-picker summary") == "Chain: Solana"
    assert page.input_value("#tvl") == "100000" and page.is_checked("#stable")
    assert page.input_value("#search") == "usd"
    assert page.get_attribute(".col-apy[role=columnheader]", "aria-sort") == "descending"
    # the same URL opened anew (shared with someone) shows the same rows
    other = browser.new_page()
    try:
        open_page(other, shared)
        assert other.evaluate("BOARD.table.visibleIds(0, 20000)") == ids
        assert other.is_checked("#stable") and not other.is_checked("#noil")
    finally:
        other.close()


def test_the_csv_holds_exactly_the_rows_in_view(page, site, generated, table):
    inputs, _ = generated
    columns, _ = table
    open_page(page, site + "index.html")
    choose(page, "chain-picker", ["Ethereum"])
    page.click('button[data-col="apy_mean_30d"]')
    ids = page.evaluate("BOARD.table.visibleIds(0, 20000)")
    with page.expect_download() as download:
        page.click("#csv")
    frame = pd.read_csv(download.value.path(), dtype={"pool_id": str}, keep_default_na=False)
    assert frame["pool_id"].tolist() == ids
    by_id = columns.set_index("pool_id")
    some = ids[:50]
    got = frame.set_index("pool_id").loc[some]
    assert np.allclose(got["apy"].astype(float), by_id.loc[some, "apy"], equal_nan=True)
    assert (got["chain"] == "Ethereum").all()
    assert got["defillama_url"].tolist() == [
        "https://defillama.com/yields/pool/" + urllib.parse.quote(i, safe="") for i in some
    ]
    assert got["outlook"].tolist() == [
        "not scored" if pd.isna(p) else outlook_text(p).rsplit(" ", 1)[0]
        for p in by_id.loc[some, "p_keep"]
    ]
    # every pool, with the one whose symbol is a spreadsheet formula kept as text
    measure(page, "input", "#search", "")
    page.click("#chain-picker summary")
    page.click("#chain-picker .pick-clear")
    with page.expect_download() as download:
        page.click("#csv")
    everything = pd.read_csv(download.value.path(), dtype=str, keep_default_na=False)
    assert len(everything) == POOLS
    formula = everything.set_index("pool_id").loc[inputs.records["pool_id"].iloc[4], "symbol"]
    assert formula == "'" + FORMULA_SYMBOL


def test_a_starred_pool_survives_a_reload(page, site, generated):
    inputs, _ = generated
    pool_id = inputs.records["pool_id"].iloc[777]
    open_page(page, site + "index.html")
    page.evaluate("localStorage.clear()")
    measure(page, "input", "#search", pool_id)
    star = page.locator(f'#rows .row[data-pool="{pool_id}"] button.star')
    assert star.get_attribute("aria-pressed") == "false"
    star.click()
    assert star.get_attribute("aria-pressed") == "true"
    page.reload()
    page.wait_for_function("window.BOARD && BOARD.ready === true")
    page.check("#starred")
    assert page.evaluate("BOARD.table.visibleIds(0, 10)") == [pool_id]
    assert page.locator("#rows .row:visible button.star").get_attribute("aria-pressed") == "true"
    # the pool page shows it starred, and unstarring there is kept too
    open_page(page, site + "pool.html?id=" + urllib.parse.quote(pool_id, safe=""))
    assert page.get_attribute("#star", "aria-pressed") == "true"
    page.click("#star")
    open_page(page, site + "index.html?starred=1")
    assert page.evaluate("BOARD.table.visibleCount()") == 0


def test_every_column_of_the_call_fits_1024_px_without_scrolling(page, site):
    page.set_viewport_size({"width": 1024, "height": 768})
    open_page(page, site + "index.html")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    assert not page.locator("#header .col-pool_id").is_visible()
    for column in ITEM_1_COLUMNS:
        header = page.locator(f"#header .col-{column}")
        box = header.bounding_box()
        assert header.is_visible() and box["width"] >= 50, column
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1024, column
    # numbers and the call are never cut off (long symbols and projects may be)
    clipped = page.evaluate(
        """(names) => names.flatMap((name) => Array.from(
            document.querySelectorAll('#rows .row:not([style*="none"]) .col-' + name))
            .filter((cell) => cell.scrollWidth > cell.clientWidth + 1)
            .map((cell) => name + ': ' + cell.textContent))""",
        [c for c in ITEM_1_COLUMNS if c not in ("symbol", "project")],
    )
    assert clipped == []


def test_under_600_px_rows_become_cards(page, site, generated):
    inputs, _ = generated
    page.set_viewport_size({"width": 420, "height": 800})
    open_page(page, site + "index.html")
    assert not page.locator("#header").is_visible()
    card = page.locator("#rows .row:visible").first
    box = card.bounding_box()
    assert box["height"] >= 70 and box["width"] <= 420
    shown = card.locator(".cell:visible").evaluate_all(
        "cells => cells.map((c) => c.className.match(/col-(\\S+)/)[1])"
    )
    assert sorted(shown) == sorted(
        ["star", "symbol", "project", "chain", "apy", "tvl_usd", "outlook"]
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    # the sort is a menu there
    page.select_option("#sort", "apy:desc")
    records = inputs.records
    top = records.loc[records["apy"].idxmax(), "pool_id"]
    assert page.evaluate("BOARD.table.visibleIds(0, 1)") == [top]


def test_scrolling_to_the_end_shows_the_last_rows(page, site):
    open_page(page, site + "index.html")
    page.evaluate(
        "() => { const v = document.getElementById('viewport'); v.scrollTop = v.scrollHeight; }"
    )
    page.wait_for_timeout(100)
    last_ids = page.evaluate(f"BOARD.table.visibleIds({POOLS - 3}, {POOLS})")
    shown = [
        a.split("id=")[1]
        for a in page.locator("#rows .row:visible .col-symbol a").evaluate_all(
            "links => links.map((a) => a.getAttribute('href'))"
        )
    ]
    assert [urllib.parse.unquote(s) for s in shown[-3:]] == last_ids
    assert page.evaluate("BOARD.table.rowsInDom()") < 80


# --------------------------------------------------------------------------- pool pages


@pytest.mark.parametrize("which", [100, 0, 1])  # a plain id, the non-ASCII id, URL-special chars
def test_pool_page_draws_history_what_happened_and_signed_reasons(page, site, generated, which):
    inputs, _ = generated
    pool_id = inputs.records["pool_id"].iloc[which]
    if which < len(ODD_POOL_IDS):
        assert pool_id == ODD_POOL_IDS[which]
    ms = open_page(page, site + "pool.html?id=" + urllib.parse.quote(pool_id, safe=""))
    record(f"pool_page_{which}", ms)
    assert page.locator("main code").text_content() == pool_id
    assert page.get_attribute("#defillama", "href") == (
        "https://defillama.com/yields/pool/" + urllib.parse.quote(pool_id, safe="")
    )
    history = inputs.history[inputs.history["pool_id"] == pool_id]
    served = inputs.backtest[inputs.backtest["pool_id"] == pool_id]
    for name, series in (("history", (len(history), len(history))), ("served", None)):
        drawn = page.evaluate(DRAWN, name)
        assert drawn is not None, f"no {name} chart"
        assert drawn["width"] > 300 and drawn["height"] > 100
        assert all(count > 40 for count in drawn["counts"]), (name, drawn["counts"])
        if series:
            assert drawn["points"] == list(series)
    drawn = page.evaluate(DRAWN, "served")
    assert drawn["points"] == [len(served), int(served["is_apy_kept"].notna().sum())]
    rows = page.locator("table.numbers tbody tr")
    assert rows.count() == len(served)
    outcomes = set(rows.locator("td:nth-child(6)").all_text_contents())
    assert outcomes <= {"kept", "dropped", "not matured yet"} and {"kept", "dropped"} & outcomes
    want = inputs.records.set_index("pool_id").loc[pool_id]
    facts = page.text_content(".facts")
    assert outlook_text(want["p_keep"]) in facts
    assert shown_as(page, "fmtApy", want["apy_mean_30d"]) in facts
    if want["reasons"]:
        bars = page.locator("#reasons .bar-row")
        assert bars.count() == len(want["reasons"])
        for k, (sign, text) in enumerate(want["reasons"]):
            bar = bars.nth(k)
            assert bar.get_attribute("data-sign") == str(sign)
            arrow = {1: "\u2191", -1: "\u2193", 0: "\u00b7"}[sign]
            assert bar.locator(".bar-label").text_content() == f"{arrow} {text}"
            width = bar.locator(".bar-fill").bounding_box()["width"]
            assert (width > 2) == (sign != 0)
    else:
        assert "No reasons in this prediction yet." in page.text_content("main")


def test_an_inactive_pool_page_shows_its_last_seen_numbers(page, site, generated):
    inputs, _ = generated
    inactive = inputs.records[inputs.records["flags"] & 1 == 1].iloc[0]
    open_page(page, site + "pool.html?id=" + urllib.parse.quote(inactive["pool_id"], safe=""))
    facts = page.text_content(".facts")
    assert f"APY, last seen {inactive['seen_day']}" in facts
    assert f"TVL, last seen {inactive['seen_day']}" in facts
    assert "not scored" in facts


def test_markup_in_the_data_is_shown_as_text(page, site, generated):
    inputs, _ = generated
    pool_id = inputs.records["pool_id"].iloc[3]
    open_page(page, site + "index.html")
    measure(page, "input", "#search", pool_id)
    assert page.locator("#rows .row:visible .col-symbol a").first.text_content() == INJECTED_SYMBOL
    open_page(page, site + "pool.html?id=" + urllib.parse.quote(pool_id, safe=""))
    assert page.text_content("#title").startswith(INJECTED_SYMBOL)
    assert page.locator("img").count() == 0  # and the page fixture saw no console error


def test_pool_page_for_an_unknown_pool_says_so(page, site):
    open_page(page, site + "pool.html?id=no-such-pool")
    assert "No pool no-such-pool on this board" in page.text_content("main")
    open_page(page, site + "pool.html")
    assert "No pool chosen" in page.text_content("main")


# --------------------------------------------------------------------------- track record


def test_track_record_opens_on_the_backtest_with_its_base_rate_and_keeps_live_apart(
    page, site, generated
):
    inputs, _ = generated
    record("track_page", open_page(page, site + "track.html"))
    # no live prediction has matured: the page opens on the backtest
    assert page.get_attribute("#tab-backtest", "aria-selected") == "true"
    assert not page.locator("#source-live").is_visible()
    for name in ("reliability-backtest", "auc-backtest", "hits-backtest"):
        drawn = page.evaluate(DRAWN, name)
        assert drawn is not None, name
        assert drawn["width"] > 300 and drawn["height"] > 100, name
        assert drawn["counts"][-1 if name == "reliability-backtest" else 0] > 40, (name, drawn)
    hits = page.evaluate(DRAWN, "hits-backtest")
    assert hits["points"] == [3, 5] and hits["counts"][1] > 40  # the base-rate line is drawn
    labels = inputs.backtest["is_apy_kept"].dropna().astype(float)
    assert f"{100 * labels.mean():.1f}%" in page.text_content("#source-backtest .facts")
    rows = board.backtest_track_record(inputs.run_dir)
    months = sorted(set(rows["as_of"].str.slice(0, 7)))
    month_cells = (
        page.locator("#source-backtest table.numbers").nth(1).locator("tbody tr td:first-child")
    )
    assert month_cells.all_text_contents() == months
    health = page.locator("#health-features tbody tr")
    assert health.count() == len(inputs.health["features"])
    assert page.text_content("#health .badge") == "degraded"
    page.click("#tab-live")
    assert "No live track record yet" in page.text_content("#source-live")
    page.screenshot(path=str(ARTIFACTS / "board-track.png"), full_page=True)


# --------------------------------------------------------------------------- offline, no inputs


def test_a_board_with_missing_sources_works_from_file_urls(page, tmp_path):
    """No warehouse, no run, no health: 30 pools of predictions, opened from file://."""
    paths = project_paths(tmp_path / "home").ensure()
    inputs = write_board_inputs(paths, n_pools=30, history_days=10, backtest_weeks=2, seed=3)
    paths.warehouse.unlink()
    shutil.rmtree(paths.data / "monitoring")
    built = board.build_board(paths, run=None)
    assert built.sources["history"] is None and built.sources["track_record"] is None
    base = built.out.as_uri() + "/"
    open_page(page, base + "index.html")
    assert page.text_content("#count") == "showing 30 of 30 pools"
    assert page.locator("#rows .row:visible .col-project").first.text_content() == "–"
    pool_id = inputs.records["pool_id"].iloc[0]
    open_page(page, base + "pool.html?id=" + urllib.parse.quote(pool_id, safe=""))
    assert page.locator("main code").text_content() == pool_id
    text = page.text_content("main")
    assert "No history for this pool yet" in text and "No track record for this pool yet" in text
    open_page(page, base + "track.html")
    text = page.text_content("main")
    assert "No live track record yet" in text and "No backtest track record yet" in text
    assert "No health data yet" in text
