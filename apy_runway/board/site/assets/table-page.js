// The pool table: up to tens of thousands of rows kept in typed arrays, sorted
// and filtered as index permutations, and only the rows in view are in the DOM
// (virtual scrolling: a spacer gives the full height, a few recycled row
// elements are moved to where the viewport is).
"use strict";

(function () {
  const B = window.BOARD;
  const ROW_HEIGHT = 30;
  const OVERSCAN = 8;
  const T = B.data.table;
  const meta = B.data.meta;
  B.footer(meta);
  const messages = document.getElementById("messages");
  if (B.errors.length || !T) {
    B.message(messages, B.errors.join("; ") || "The board's table data (data/table.js) is missing: rebuild with `apy-runway board`.", "error");
    B.timings.firstRender = performance.now();
    return;
  }

  const n = T.rows;
  const c = T.columns;
  const toFloat = function (values) {
    const out = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = values[i] === null ? NaN : values[i];
    return out;
  };
  const pKeep = toFloat(c.p_keep);
  const apy = toFloat(c.apy);
  const tvl = toFloat(c.tvl_usd);
  const cls = Int8Array.from(c.class);
  const confidence = Int8Array.from(c.confidence);
  const project = Int32Array.from(c.project);
  const chain = Int32Array.from(c.chain);
  const flags = Uint8Array.from(c.flags);
  const reasonCount = Uint8Array.from(c.reasons, function (r) { return r.length; });
  const searchText = new Array(n);
  for (let i = 0; i < n; i++) searchText[i] = ((c.symbol[i] || "") + "\u0000" + c.pool_id[i]).toLowerCase();
  const classNames = T.classes;
  const words = T.confidence_words;
  const flagNames = Object.keys(T.flag_bits);

  function textRank(values) {
    // rank of each row when sorted by a string column (computed once, on demand)
    const keys = values.map(function (v) { return v === null ? null : v.toLowerCase(); });
    const idx = Array.from({ length: n }, function (_, i) { return i; });
    idx.sort(function (a, b) {
      const x = keys[a], y = keys[b];
      if (x === y) return a - b;
      if (x === null) return 1;
      if (y === null) return -1;
      return x < y ? -1 : 1;
    });
    const rank = new Float64Array(n);
    for (let r = 0; r < n; r++) rank[idx[r]] = keys[idx[r]] === null ? NaN : r;
    return rank;
  }
  const lazy = {};
  function once(name, make) { return function () { return lazy[name] || (lazy[name] = make()); }; }
  // a numeric key whose values below `least` mean "missing" (sorted last)
  const numeric = function (arr, name, least) {
    return function () {
      return lazy[name] || (lazy[name] = Float64Array.from(arr, function (v) { return v < least ? NaN : v; }));
    };
  };

  // key(): a Float64Array sort key (NaN = missing, always last)
  const COLUMNS = [
    { id: "symbol", label: "Symbol", key: once("symbol", function () { return textRank(c.symbol); }) },
    { id: "pool_id", label: "Pool id", key: once("pool_id", function () { return textRank(c.pool_id); }) },
    { id: "p_keep", label: "p_keep", num: true, key: function () { return pKeep; } },
    { id: "class", label: "Class", key: numeric(cls, "cls", 0) },
    { id: "confidence", label: "Confidence", num: true, key: numeric(confidence, "conf", 1) },
    { id: "reasons", label: "Top reasons", key: function () { return reasonCount; } },
    { id: "apy", label: "APY", num: true, key: function () { return apy; } },
    { id: "tvl_usd", label: "TVL", num: true, key: function () { return tvl; } },
    { id: "project", label: "Project", key: numeric(project, "project", 0) },
    { id: "chain", label: "Chain", key: numeric(chain, "chain", 0) },
    { id: "flags", label: "Flags", key: function () { return flags; } },
  ];

  const state = { sort: "p_keep", dir: -1, project: -2, chain: -2, cls: "all", query: "" };
  let order = null; // all rows in sort order
  let visible = new Uint32Array(0); // the filtered rows, in sort order

  function sortRows() {
    const key = COLUMNS.find(function (col) { return col.id === state.sort; }).key();
    const dir = state.dir;
    const idx = new Uint32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    idx.sort(function (a, b) {
      const x = key[a], y = key[b];
      const xm = x !== x, ym = y !== y;
      if (xm || ym) return xm === ym ? a - b : (xm ? 1 : -1);
      if (x === y) return a - b;
      return x < y ? -dir : dir;
    });
    order = idx;
  }

  function filterRows() {
    const out = new Uint32Array(n);
    const query = state.query.trim().toLowerCase();
    const wantProject = state.project, wantChain = state.chain;
    const wantClass = state.cls === "all" ? null : Number(state.cls);
    let m = 0;
    for (let r = 0; r < n; r++) {
      const i = order[r];
      if (wantProject !== -2 && project[i] !== wantProject) continue;
      if (wantChain !== -2 && chain[i] !== wantChain) continue;
      if (wantClass !== null && cls[i] !== wantClass) continue;
      if (query && searchText[i].indexOf(query) === -1) continue;
      out[m++] = i;
    }
    visible = out.subarray(0, m);
  }

  // ------------------------------------------------------------------ DOM
  const header = document.getElementById("header");
  const viewport = document.getElementById("viewport");
  const spacer = document.getElementById("spacer");
  const rowsBox = document.getElementById("rows");
  const count = document.getElementById("count");
  const headerCells = {};
  COLUMNS.forEach(function (col) {
    const button = B.el("button", { type: "button", class: "sort", "data-col": col.id, text: col.label });
    const cell = B.el("div", { class: "cell col-" + col.id + (col.num ? " num" : ""), role: "columnheader", "aria-sort": "none" }, [button]);
    headerCells[col.id] = cell;
    header.appendChild(cell);
  });

  const rowPool = [];
  function makeRow() {
    const row = B.el("div", { class: "row", role: "row" });
    const cells = {};
    COLUMNS.forEach(function (col) {
      const cell = B.el("div", { class: "cell col-" + col.id + (col.num ? " num" : ""), role: "gridcell" });
      cells[col.id] = cell;
      row.appendChild(cell);
    });
    const link = B.el("a");
    cells.symbol.appendChild(link);
    rowsBox.appendChild(row);
    return { row: row, cells: cells, link: link, index: -1 };
  }

  function fillRow(item, i) {
    if (item.index === i) return;
    item.index = i;
    const cells = item.cells;
    const id = c.pool_id[i];
    item.link.textContent = c.symbol[i] || "(no symbol)";
    item.link.href = "pool.html?id=" + encodeURIComponent(id);
    cells.pool_id.textContent = id;
    cells.pool_id.title = id;
    cells.p_keep.textContent = B.fmtP(pKeep[i]);
    cells["class"].textContent = cls[i] < 0 ? "not scored" : classNames[cls[i]];
    cells["class"].className = "cell col-class " + (cls[i] === 0 ? "down" : cls[i] === 1 ? "keep" : "none");
    cells["class"].title = cls[i] < 0 ? (c.not_scored_reason[i] || "") : "";
    cells.confidence.textContent = confidence[i] ? confidence[i] + " " + (c.words[i] || words[confidence[i]]) : "–";
    const reasons = c.reasons[i];
    cells.reasons.textContent = reasons.length ? reasons.join("; ") : "";
    cells.reasons.title = reasons.join("\n");
    cells.apy.textContent = B.fmtApy(apy[i]);
    cells.tvl_usd.textContent = B.fmtUsd(tvl[i]);
    cells.project.textContent = project[i] >= 0 ? T.projects[project[i]] : "–";
    cells.chain.textContent = chain[i] >= 0 ? T.chains[chain[i]] : "–";
    const shown = [];
    for (let f = 0; f < flagNames.length; f++) if (flags[i] & T.flag_bits[flagNames[f]]) shown.push(flagNames[f].replace("_", " "));
    cells.flags.textContent = shown.join(", ");
  }

  function render() {
    const total = visible.length;
    spacer.style.height = total * ROW_HEIGHT + "px";
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const wanted = Math.ceil(viewport.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN;
    while (rowPool.length < wanted) rowPool.push(makeRow());
    rowsBox.style.transform = "translateY(" + first * ROW_HEIGHT + "px)";
    for (let k = 0; k < rowPool.length; k++) {
      const item = rowPool[k];
      const r = first + k;
      if (r < total) {
        fillRow(item, visible[r]);
        item.row.style.display = "";
        item.row.setAttribute("aria-rowindex", String(r + 2));
      } else {
        item.row.style.display = "none";
        item.index = -1;
      }
    }
    count.textContent = "showing " + total.toLocaleString("en-US") + " of " + n.toLocaleString("en-US") + " pools";
  }

  function updateHeader() {
    COLUMNS.forEach(function (col) {
      headerCells[col.id].setAttribute("aria-sort", col.id === state.sort ? (state.dir > 0 ? "ascending" : "descending") : "none");
    });
  }

  function apply(kind) {
    const started = performance.now();
    if (kind === "sort") sortRows();
    filterRows();
    viewport.scrollTop = 0;
    render();
    updateHeader();
    B.afterPaint().then(function () {
      B.timings[kind] = performance.now() - started;
    });
  }

  header.addEventListener("click", function (event) {
    const button = event.target.closest("button.sort");
    if (!button) return;
    const id = button.getAttribute("data-col");
    if (state.sort === id) state.dir = -state.dir;
    else { state.sort = id; state.dir = COLUMNS.find(function (col) { return col.id === id; }).num ? -1 : 1; }
    apply("sort");
  });
  function fillSelect(select, names) {
    const fragment = document.createDocumentFragment();
    names.forEach(function (name, code) { fragment.appendChild(B.el("option", { value: String(code), text: name })); });
    select.appendChild(fragment);
  }
  const projectSelect = document.getElementById("project");
  const chainSelect = document.getElementById("chain");
  const classSelect = document.getElementById("class");
  const searchBox = document.getElementById("search");
  fillSelect(projectSelect, T.projects);
  fillSelect(chainSelect, T.chains);
  projectSelect.addEventListener("change", function () { state.project = Number(projectSelect.value); apply("filter"); });
  chainSelect.addEventListener("change", function () { state.chain = Number(chainSelect.value); apply("filter"); });
  classSelect.addEventListener("change", function () { state.cls = classSelect.value; apply("filter"); });
  searchBox.addEventListener("input", function () { state.query = searchBox.value; apply("search"); });
  let scheduled = false;
  viewport.addEventListener("scroll", function () {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(function () { scheduled = false; render(); });
  });
  window.addEventListener("resize", render);

  if (!meta || !meta.sources.predictions) {
    B.message(messages, n
      ? "No predictions yet: the pools below come from the warehouse. Run `apy-runway score` and rebuild the board."
      : "No predictions yet and no warehouse: run `make run` (or `apy-runway score`) and rebuild the board.");
  }
  sortRows();
  filterRows();
  render();
  updateHeader();
  B.afterPaint().then(function () {
    B.timings.firstRender = performance.now();
    B.ready = true;
  });
  // for tests and the curious: the rows in view, in order
  B.table = {
    rowsInDom: function () { return rowsBox.querySelectorAll(".row").length; },
    visibleIds: function (from, to) { return Array.from(visible.subarray(from, to), function (i) { return c.pool_id[i]; }); },
    visibleCount: function () { return visible.length; },
  };
})();
