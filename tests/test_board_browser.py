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
from fixtures.board_inputs import INJECTED_SYMBOL, ODD_POOL_IDS, write_board_inputs

from apy_runway.board import build as board
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
    for name in ("p_keep", "apy", "tvl_usd"):
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


def test_table_renders_20k_pools_fast_with_few_rows_in_the_dom(page, site, generated, table):
    inputs, _ = generated
    columns, _ = table
    first = record("first_render", open_page(page, site + "index.html"))
    assert first <= FIRST_RENDER_BUDGET_MS, f"first render took {first:.0f} ms"
    assert page.text_content("#count") == "showing 20,000 of 20,000 pools"
    assert page.evaluate("BOARD.table.rowsInDom()") < 80  # virtual scrolling
    records = inputs.records.assign(p_keep=inputs.records["p_keep"].astype(float))
    order = expected_order(columns, "p_keep", descending=True)
    assert page.evaluate("BOARD.table.visibleIds(0, 200)") == order[:200]
    assert page.evaluate(f"BOARD.table.visibleIds({POOLS - 200}, {POOLS})") == order[-200:]
    # the first row on screen is what the data says
    top = records.set_index("pool_id").loc[order[0]]
    row = page.locator("#rows .row").first
    assert row.locator(".col-p_keep").text_content() == f"{top['p_keep']:.3f}"
    assert row.locator(".col-project").text_content() == top["project"]
    assert row.locator(".col-confidence").text_content().startswith(str(top["binned_confidence"]))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "board.png"))
    assert (ARTIFACTS / "board.png").stat().st_size > 10_000


def test_every_sort_stays_within_budget_and_sorts_right(page, site, generated, table):
    inputs, _ = generated
    records, _ = table  # the sort keys as the page holds them (rounded for a small file)
    open_page(page, site + "index.html")
    for column, descending in (("apy", True), ("tvl_usd", True), ("p_keep", True)):
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
    for column in (
        "symbol",
        "pool_id",
        "class",
        "confidence",
        "reasons",
        "project",
        "chain",
        "flags",
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


def test_filters_and_search_stay_within_budget_and_find_the_right_pools(
    page, site, generated, table
):
    inputs, _ = generated
    _, payload = table
    records = inputs.records
    open_page(page, site + "index.html")
    project = payload["projects"][7]
    ms = record("filter_project", measure(page, "select", "#project", str(7)))
    assert ms <= OPERATION_BUDGET_MS
    expected = records[records["project"] == project]
    assert page.evaluate("BOARD.table.visibleCount()") == len(expected)
    shown_projects = page.locator("#rows .row:visible .col-project").all_text_contents()
    assert shown_projects and set(shown_projects) == {project}

    chain = payload["chains"][2]
    ms = record("filter_chain", measure(page, "select", "#chain", "2"))
    assert ms <= OPERATION_BUDGET_MS
    expected = expected[expected["chain"] == chain]
    assert page.evaluate("BOARD.table.visibleCount()") == len(expected)

    ms = record("filter_class", measure(page, "select", "#class", "0"))
    assert ms <= OPERATION_BUDGET_MS
    expected = expected[expected["class_code"] == 0]
    assert page.evaluate("BOARD.table.visibleCount()") == len(expected)
    assert page.text_content("#count") == f"showing {len(expected):,} of 20,000 pools"

    for selector, everything in (("#project", "-2"), ("#chain", "-2"), ("#class", "all")):
        measure(page, "select", selector, everything)
    assert page.evaluate("BOARD.table.visibleCount()") == POOLS
    ms = record("search_symbol", measure(page, "input", "#search", "weth-us"))
    assert ms <= OPERATION_BUDGET_MS
    hits = records["symbol"].fillna("").str.lower().str.contains("weth-us", regex=False)
    assert page.evaluate("BOARD.table.visibleCount()") == int(hits.sum()) > 0
    pool_id = records["pool_id"].iloc[12345]
    ms = record("search_pool_id", measure(page, "input", "#search", pool_id[:13].upper()))
    assert ms <= OPERATION_BUDGET_MS
    assert pool_id in page.evaluate("BOARD.table.visibleIds(0, 50)")
    ms = record("search_cleared", measure(page, "input", "#search", ""))
    assert ms <= OPERATION_BUDGET_MS
    assert page.evaluate("BOARD.table.visibleCount()") == POOLS


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
def test_pool_page_draws_history_and_what_happened(page, site, generated, which):
    inputs, _ = generated
    pool_id = inputs.records["pool_id"].iloc[which]
    if which < len(ODD_POOL_IDS):
        assert pool_id == ODD_POOL_IDS[which]
    ms = open_page(page, site + "pool.html?id=" + urllib.parse.quote(pool_id, safe=""))
    record(f"pool_page_{which}", ms)
    assert page.locator("main code").text_content() == pool_id
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
    reasons = inputs.records.set_index("pool_id").loc[pool_id, "reasons"]
    if reasons:
        assert page.locator("ul.reasons li").all_text_contents() == reasons
    else:
        assert "No reasons in this prediction yet." in page.text_content("main")


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


def test_track_record_page_plots_backtest_and_health_and_keeps_live_apart(page, site, generated):
    inputs, _ = generated
    record("track_page", open_page(page, site + "track.html"))
    live = page.text_content("#source-live")
    assert "No live track record yet" in live
    for name in ("reliability-backtest", "auc-backtest", "hits-backtest"):
        drawn = page.evaluate(DRAWN, name)
        assert drawn is not None, name
        assert drawn["width"] > 300 and drawn["height"] > 100, name
        assert drawn["counts"][-1 if name == "reliability-backtest" else 0] > 40, (name, drawn)
    assert page.evaluate(DRAWN, "hits-backtest")["points"] == [3]
    rows = board.backtest_track_record(inputs.run_dir)
    months = sorted(set(rows["as_of"].str.slice(0, 7)))
    month_cells = (
        page.locator("#source-backtest table.numbers").nth(1).locator("tbody tr td:first-child")
    )
    assert month_cells.all_text_contents() == months
    health = page.locator("#health-features tbody tr")
    assert health.count() == len(inputs.health["features"])
    assert page.text_content("#health .badge") == "degraded"


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
