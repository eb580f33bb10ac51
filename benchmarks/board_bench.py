"""The runway board at DefiLlama's scale, in one run (chromium, as the browser test):

    python -m benchmarks.board_bench [--pools 20000] [--history-days 365]
                                     [--shards-of 1,16,64,256]

1. **Per-pool data layout.** The same generated inputs (tests/fixtures/board_inputs.py)
   built with different pools per shard: build seconds, files, total MB, the
   largest shard, and the pool page's load time (navigation to its painted charts,
   mean of 8 pools) for each.
2. **The table against the anchor.** A plain DOM <table> of the same 20,000 rows (all
   rows in the DOM, sorted by re-appending them in order) against the board's
   virtual table, in the same browser: first render and sort by p_keep, and their
   ratio. Timed in the page with performance.now() to the next painted frame.

Each figure is one JSON line in benchmarks/results/results.jsonl (section "board");
RESULTS.md section 6 says what they mean. About 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from apy_runway.board import build as board
from apy_runway.foundation.defaults import DEFAULT_POOLS_PER_SHARD
from apy_runway.foundation.paths import REPO_ROOT, project_paths
from benchmarks.run import record

sys.path.insert(0, str(REPO_ROOT / "tests"))
from fixtures.board_inputs import write_board_inputs

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# The anchor: every row in the DOM, sorted by re-appending the rows in order.
ANCHOR_PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/board.css"></head><body>
<table class="numbers"><thead><tr><th>Symbol</th><th>Pool id</th><th>p_keep</th><th>Class</th>
<th>Confidence</th><th>Top reasons</th><th>APY</th><th>TVL</th><th>Project</th><th>Chain</th>
<th>Flags</th></tr></thead><tbody id="body"></tbody></table>
<script src="assets/common.js"></script><script src="data/table.js"></script>
<script>
const T = BOARD.data.table, c = T.columns, n = T.rows;
const body = document.getElementById("body");
const rows = new Array(n);
const frag = document.createDocumentFragment();
for (let i = 0; i < n; i++) {
  const tr = document.createElement("tr");
  const cells = [c.symbol[i] || "", c.pool_id[i], BOARD.fmtP(c.p_keep[i]), String(c.class[i]),
    String(c.confidence[i]), c.reasons[i].join("; "), BOARD.fmtApy(c.apy[i]),
    BOARD.fmtUsd(c.tvl_usd[i]), T.projects[c.project[i]] || "", T.chains[c.chain[i]] || "",
    String(c.flags[i])];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }
  rows[i] = tr; frag.appendChild(tr);
}
body.appendChild(frag);
window.sortPlain = function (dir) {
  const idx = Array.from({ length: n }, (_, i) => i);
  const p = c.p_keep.map((v) => (v === null ? NaN : v));
  idx.sort((a, b) => (p[a] !== p[a]) - (p[b] !== p[b]) ||
    (p[a] === p[b] ? a - b : (p[a] < p[b] ? -dir : dir)));
  const f = document.createDocumentFragment();
  for (const i of idx) f.appendChild(rows[i]);
  body.appendChild(f);
};
BOARD.afterPaint().then(() => {
  BOARD.timings.firstRender = performance.now();
  BOARD.ready = true;
});
</script></body></html>
"""

TO_NEXT_PAINT = """(script) => new Promise((resolve) => {
  const started = performance.now();
  (new Function(script))();
  requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - started), 0));
})"""


class Served:
    """A folder served by http.server on 127.0.0.1 (a free port) while in use."""

    def __init__(self, folder: Path):
        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=folder)
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def open_page(page, url: str) -> float:
    page.goto(url)
    page.wait_for_function("window.BOARD && BOARD.ready === true", timeout=120_000)
    return page.evaluate("BOARD.timings.firstRender")


def folder_figures(out: Path) -> dict:
    shards = [p.stat().st_size for p in (out / "data" / "pools").glob("*.js")]
    files = [p for p in out.rglob("*") if p.is_file()]
    return {
        "files": len(files),
        "total_mb": round(sum(p.stat().st_size for p in files) / 1e6, 1),
        "shard_files": len(shards),
        "shard_kb_median": round(statistics.median(shards) / 1e3, 1),
        "shard_kb_max": round(max(shards) / 1e3, 1),
        "table_js_mb": round((out / "data" / "table.js").stat().st_size / 1e6, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=20_000)
    parser.add_argument("--history-days", type=int, default=365)
    parser.add_argument("--shards-of", default="1,16,64,256", help="pools per shard to compare")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    work = args.workdir or Path(tempfile.mkdtemp(prefix="board-bench-"))
    paths = project_paths(work / "home").ensure()
    started = time.perf_counter()
    inputs = write_board_inputs(paths, n_pools=args.pools, history_days=args.history_days)
    print(f"generated {args.pools} pools in {time.perf_counter() - started:.1f} s", flush=True)
    scale = f"{args.pools} pools x {args.history_days} days"
    probe = inputs.records["pool_id"].iloc[:: max(1, args.pools // 8)].tolist()[:8]

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="chromium-"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        page = context.new_page()
        for per_shard in [int(v) for v in args.shards_of.split(",")]:
            out = work / f"board-{per_shard}"
            started = time.perf_counter()
            board.build_board(paths, out=out, pools_per_shard=per_shard)
            build_s = time.perf_counter() - started
            with Served(out) as base:
                loads = [open_page(page, f"{base}pool.html?id={pool}") for pool in probe]
            record(
                "board",
                scale,
                measure="per-pool layout",
                pools_per_shard=per_shard,
                build_s=round(build_s, 2),
                pool_page_ms_mean=round(statistics.mean(loads), 1),
                pool_page_ms_max=round(max(loads), 1),
                **folder_figures(out),
            )
        out = work / f"board-{DEFAULT_POOLS_PER_SHARD}"
        if not out.exists():
            board.build_board(paths, out=out)
        (out / "anchor.html").write_text(ANCHOR_PAGE)
        with Served(out) as base:
            figures = {}
            for name, url, sort in (
                (
                    "virtual",
                    "index.html",
                    "document.querySelector('button[data-col=\"outlook\"]').click()",
                ),
                ("plain_dom", "anchor.html", "sortPlain(1)"),
            ):
                first = open_page(page, base + url)
                sorts = [page.evaluate(TO_NEXT_PAINT, sort) for _ in range(3)]
                figures[name] = {
                    "first_render_ms": round(first, 1),
                    "sort_ms": [round(s, 1) for s in sorts],
                }
            virtual, plain = figures["virtual"], figures["plain_dom"]
            record(
                "board",
                scale,
                measure="table vs plain DOM anchor",
                virtual_first_render_ms=virtual["first_render_ms"],
                virtual_sort_ms=virtual["sort_ms"],
                plain_first_render_ms=plain["first_render_ms"],
                plain_sort_ms=plain["sort_ms"],
                sort_speedup=round(
                    statistics.median(plain["sort_ms"]) / statistics.median(virtual["sort_ms"]), 1
                ),
                first_render_speedup=round(
                    plain["first_render_ms"] / virtual["first_render_ms"], 1
                ),
            )
        context.close()
    print(json.dumps({"workdir": str(work)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
