// The pool table: up to tens of thousands of rows kept in typed arrays, sorted
// and filtered as index permutations, and only the rows in view are in the DOM
// (virtual scrolling: a spacer gives the full height, a few recycled row
// elements are moved to where the viewport is). Sort, filters, search and the
// optional columns live in the URL (replaceState), so a view can be shared and
// Back from a pool page restores it. Under 600 px the rows become cards.
"use strict";

(function () {
  const B = window.BOARD;
  const T = B.data.table;
  const meta = B.data.meta;
  B.banner(meta);
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
  const num = {};
  ["p_keep", "apy", "tvl_usd", "apy_base", "apy_reward", "apy_mean_30d", "apy_change_1d", "apy_change_7d", "apy_change_30d"].forEach(function (name) {
    num[name] = toFloat(c[name] || new Array(n).fill(null));
  });
  const pKeep = num.p_keep;
  const tvl = num.tvl_usd;
  const cls = Int8Array.from(c["class"]);
  const confidence = Int8Array.from(c.confidence);
  const project = Int32Array.from(c.project);
  const chain = Int32Array.from(c.chain);
  const flags = Uint8Array.from(c.flags);
  const traits = Uint8Array.from(c.traits || new Array(n).fill(0));
  const reasonCount = Uint8Array.from(c.reasons, function (r) { return r.length; });
  const INACTIVE = T.flag_bits.inactive;
  const searchText = new Array(n);
  for (let i = 0; i < n; i++) {
    searchText[i] = [c.symbol[i] || "", (c.pool_meta && c.pool_meta[i]) || "",
      project[i] >= 0 ? T.projects[project[i]] : "", chain[i] >= 0 ? T.chains[chain[i]] : "",
      c.pool_id[i]].join("\u0000").toLowerCase();
  }
  const classNames = T.classes;
  const words = T.confidence_words;
  const flagNames = Object.keys(T.flag_bits);
  let stars = B.starred();
  const starMask = new Uint8Array(n);
  function refreshStars() { for (let i = 0; i < n; i++) starMask[i] = stars.has(c.pool_id[i]) ? 1 : 0; }
  refreshStars();

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
  const plain = function (name) { return function () { return num[name]; }; };

  // Every column: key() gives a Float64Array sort key (NaN = missing, always
  // last). `optional` columns are chosen in the Columns picker; `wide` ones are
  // shown by default only on wide screens. Widths fit item 1's columns in 1024 px.
  const COLUMNS = [
    { id: "star", label: "\u2605", title: "starred (kept in this browser)", width: "30px", key: function () { return Float64Array.from(starMask); } },
    { id: "symbol", label: "Pool", width: "minmax(140px, 1.5fr)", key: once("symbol", function () { return textRank(c.symbol); }) },
    { id: "pool_id", label: "Pool id", width: "130px", optional: true, key: once("pool_id", function () { return textRank(c.pool_id); }) },
    { id: "project", label: "Project", width: "minmax(90px, 1fr)", key: numeric(project, "project", 0) },
    { id: "chain", label: "Chain", width: "84px", key: numeric(chain, "chain", 0) },
    { id: "tvl_usd", label: "TVL", num: true, width: "76px", key: plain("tvl_usd") },
    { id: "apy", label: "APY", num: true, width: "66px", key: plain("apy") },
    { id: "apy_base", label: "Base APY", num: true, width: "66px", key: plain("apy_base") },
    { id: "apy_reward", label: "Reward APY", num: true, width: "66px", key: plain("apy_reward") },
    { id: "apy_mean_30d", label: "30d avg APY", num: true, width: "66px", key: plain("apy_mean_30d") },
    { id: "apy_change_1d", label: "1d APY change", num: true, width: "64px", optional: true, key: plain("apy_change_1d") },
    { id: "apy_change_7d", label: "7d APY change", num: true, width: "64px", key: plain("apy_change_7d") },
    { id: "apy_change_30d", label: "30d APY change", num: true, width: "64px", optional: true, key: plain("apy_change_30d") },
    { id: "outlook", label: "Outlook", width: "190px", key: function () { return pKeep; } },
    { id: "p_keep", label: "p_keep", num: true, width: "62px", optional: true, key: function () { return pKeep; } },
    { id: "reasons", label: "Why (\u2191 supports, \u2193 risk)", width: "minmax(220px, 2fr)", optional: true, wide: true, key: function () { return reasonCount; } },
    { id: "flags", label: "Flags", width: "110px", optional: true, key: function () { return flags; } },
  ];
  const byId = {};
  COLUMNS.forEach(function (col) { byId[col.id] = col; });
  const OVERSCAN = 8;
  const WIDE = window.matchMedia("(min-width: 1280px)");
  const CARDS = window.matchMedia("(max-width: 599px)");
  const CLASS_PARAM = { up: 1, down: 0, none: -1 };

  // ------------------------------------------------------------------ state <-> URL
  const DEFAULT_SORT = "tvl_usd";
  function freshState() {
    return { sort: DEFAULT_SORT, dir: -1, query: "", chains: new Set(), projects: new Set(), cls: "all",
      tvl: 0, stable: false, noil: false, single: false, starred: false, cols: null };
  }
  const state = freshState();

  function readUrl() {
    const params = new URLSearchParams(location.search);
    const fresh = freshState();
    Object.keys(fresh).forEach(function (key) { state[key] = fresh[key]; });
    const sort = params.get("sort");
    if (sort && byId[sort]) state.sort = sort;
    const dir = params.get("dir");
    state.dir = dir === "asc" ? 1 : dir === "desc" ? -1 : (byId[state.sort].num || state.sort === "outlook" ? -1 : 1);
    state.query = params.get("q") || "";
    params.getAll("chain").forEach(function (name) { const code = T.chains.indexOf(name); if (code >= 0) state.chains.add(code); });
    params.getAll("project").forEach(function (name) { const code = T.projects.indexOf(name); if (code >= 0) state.projects.add(code); });
    const klass = params.get("class");
    if (klass && Object.prototype.hasOwnProperty.call(CLASS_PARAM, klass)) state.cls = klass;
    const minTvl = Number(params.get("tvl"));
    if (minTvl > 0) state.tvl = minTvl;
    ["stable", "noil", "single", "starred"].forEach(function (key) { state[key] = params.get(key) === "1"; });
    if (params.has("cols")) {
      state.cols = new Set(params.get("cols").split(",").filter(function (id) { return byId[id] && byId[id].optional; }));
    }
  }

  function writeUrl() {
    const params = new URLSearchParams();
    if (state.query) params.set("q", state.query);
    if (state.sort !== DEFAULT_SORT || state.dir !== -1) {
      params.set("sort", state.sort);
      params.set("dir", state.dir > 0 ? "asc" : "desc");
    }
    Array.from(state.chains).sort().forEach(function (code) { params.append("chain", T.chains[code]); });
    Array.from(state.projects).sort().forEach(function (code) { params.append("project", T.projects[code]); });
    if (state.cls !== "all") params.set("class", state.cls);
    if (state.tvl > 0) params.set("tvl", String(state.tvl));
    ["stable", "noil", "single", "starred"].forEach(function (key) { if (state[key]) params.set(key, "1"); });
    if (state.cols) params.set("cols", Array.from(state.cols).join(","));
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  }

  function shown(col) {
    if (!col.optional) return true;
    if (state.cols) return state.cols.has(col.id);
    return !!col.wide && WIDE.matches;
  }

  // ------------------------------------------------------------------ sort and filter
  let order = null; // all rows in sort order
  let visible = new Uint32Array(0); // the filtered rows, in sort order

  function sortRows() {
    const key = byId[state.sort].key();
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

  function mask(codes, size) {
    if (!codes.size) return null;
    const out = new Uint8Array(size);
    codes.forEach(function (code) { out[code] = 1; });
    return out;
  }

  function filterRows() {
    const out = new Uint32Array(n);
    const query = state.query.trim().toLowerCase();
    const chains = mask(state.chains, T.chains.length);
    const projects = mask(state.projects, T.projects.length);
    const wantClass = state.cls === "all" ? null : CLASS_PARAM[state.cls];
    const minTvl = state.tvl;
    let needTraits = 0;
    if (state.stable) needTraits |= T.trait_bits.stablecoin;
    if (state.noil) needTraits |= T.trait_bits.no_il_risk;
    if (state.single) needTraits |= T.trait_bits.single_exposure;
    const onlyStarred = state.starred;
    let m = 0;
    for (let r = 0; r < n; r++) {
      const i = order[r];
      if (chains && (chain[i] < 0 || !chains[chain[i]])) continue;
      if (projects && (project[i] < 0 || !projects[project[i]])) continue;
      if (wantClass !== null && cls[i] !== wantClass) continue;
      if (minTvl > 0 && !(tvl[i] >= minTvl)) continue;
      if ((traits[i] & needTraits) !== needTraits) continue;
      if (onlyStarred && !starMask[i]) continue;
      if (query && searchText[i].indexOf(query) === -1) continue;
      out[m++] = i;
    }
    visible = out.subarray(0, m);
  }

  // ------------------------------------------------------------------ DOM
  const board = document.getElementById("board");
  const header = document.getElementById("header");
  const viewport = document.getElementById("viewport");
  const spacer = document.getElementById("spacer");
  const rowsBox = document.getElementById("rows");
  const empty = document.getElementById("empty");
  const count = document.getElementById("count");
  const columnStyle = document.head.appendChild(document.createElement("style"));
  const headerCells = {};
  COLUMNS.forEach(function (col) {
    const button = B.el("button", { type: "button", class: "sort", "data-col": col.id, text: col.label, title: col.title || "sort by " + col.label });
    const cell = B.el("div", { class: "cell col-" + col.id + (col.num ? " num" : ""), role: "columnheader", "aria-sort": "none" }, [button]);
    headerCells[col.id] = cell;
    header.appendChild(cell);
  });

  function layout() {
    const cards = CARDS.matches;
    board.classList.toggle("cards", cards);
    const widths = [];
    const hidden = [];
    COLUMNS.forEach(function (col) {
      if (shown(col)) widths.push(col.width);
      else hidden.push("#board .col-" + col.id);
    });
    board.style.setProperty("--columns", widths.join(" "));
    columnStyle.textContent = hidden.length ? hidden.join(", ") + " { display: none; }" : "";
    // the header sits outside the scrolling viewport: pad it by the scrollbar
    header.style.paddingRight = (viewport.offsetWidth - viewport.clientWidth) + "px";
    return cards ? 86 : 32;
  }
  let rowHeight = layout();

  const rowPool = [];
  function makeRow() {
    const row = B.el("div", { class: "row", role: "row" });
    const cells = {};
    COLUMNS.forEach(function (col) {
      const cell = B.el("div", { class: "cell col-" + col.id + (col.num ? " num" : ""), role: "gridcell" });
      cells[col.id] = cell;
      row.appendChild(cell);
    });
    const star = B.el("button", { type: "button", class: "star", "aria-pressed": "false" });
    cells.star.appendChild(star);
    const link = B.el("a", { class: "pool" });
    const poolMeta = B.el("span", { class: "meta" });
    const badges = B.el("span", { class: "badges" });
    cells.symbol.appendChild(link);
    cells.symbol.appendChild(poolMeta);
    cells.symbol.appendChild(badges);
    const call = B.el("span", { class: "call" });
    const word = B.el("span", { class: "word" });
    cells.outlook.appendChild(call);
    cells.outlook.appendChild(word);
    rowsBox.appendChild(row);
    return { row: row, cells: cells, star: star, link: link, meta: poolMeta, badges: badges, call: call, word: word, index: -1 };
  }

  function reasonsText(i) {
    return c.reasons[i].map(function (r) { return B.arrow(r[0]) + " " + r[1]; });
  }

  function fillRow(item, i) {
    if (item.index === i) return;
    item.index = i;
    const cells = item.cells;
    const id = c.pool_id[i];
    item.row.classList.toggle("inactive", (flags[i] & INACTIVE) !== 0);
    item.row.setAttribute("data-pool", id);
    item.star.textContent = starMask[i] ? "\u2605" : "\u2606";
    item.star.setAttribute("aria-pressed", starMask[i] ? "true" : "false");
    item.star.setAttribute("aria-label", (starMask[i] ? "unstar " : "star ") + (c.symbol[i] || id));
    item.link.textContent = c.symbol[i] || "(no symbol)";
    item.link.href = "pool.html?id=" + encodeURIComponent(id);
    item.meta.textContent = c.pool_meta && c.pool_meta[i] ? c.pool_meta[i] : "";
    const badges = [];
    for (let f = 0; f < flagNames.length; f++) if (flags[i] & T.flag_bits[flagNames[f]]) badges.push(flagNames[f].replace("_", " "));
    item.badges.textContent = badges.join(" · ");
    cells.flags.textContent = badges.join(", ");
    cells.pool_id.textContent = id;
    cells.pool_id.title = id;
    cells.project.textContent = project[i] >= 0 ? T.projects[project[i]] : "–";
    cells.chain.textContent = chain[i] >= 0 ? T.chains[chain[i]] : "–";
    // an inactive pool's numbers are its last seen ones, marked so
    const seen = B.dayText(c.seen_day ? c.seen_day[i] : null);
    const stale = (flags[i] & INACTIVE) !== 0;
    [["tvl_usd", B.fmtUsd], ["apy", B.fmtApy], ["apy_base", B.fmtApy], ["apy_reward", B.fmtApy], ["apy_mean_30d", B.fmtApy],
      ["apy_change_1d", B.fmtChange], ["apy_change_7d", B.fmtChange], ["apy_change_30d", B.fmtChange]].forEach(function (pair) {
      const cell = cells[pair[0]];
      cell.textContent = pair[1](num[pair[0]][i]);
      cell.classList.toggle("last-seen", stale);
      cell.title = stale ? "last seen " + (seen || "?") + " (the pool is inactive)" : "";
    });
    cells.p_keep.textContent = B.fmtP(pKeep[i]);
    const o = B.outlook(pKeep[i]);
    item.call.textContent = o ? o.name + " " + o.percent + "%" : "not scored";
    item.call.className = "call " + (o ? (o.down ? "down" : "keep") : "none");
    item.word.textContent = confidence[i] ? (c.words[i] || words[confidence[i]]) : "";
    const why = reasonsText(i);
    cells.outlook.title = o ? why.join("\n") : (c.not_scored_reason[i] || "");
    cells.reasons.textContent = "";
    c.reasons[i].forEach(function (r) {
      cells.reasons.appendChild(B.el("span", { class: "reason " + (r[0] > 0 ? "up" : r[0] < 0 ? "down" : "unsigned"), text: B.arrow(r[0]) + " " + r[1] }));
    });
    cells.reasons.title = why.join("\n");
  }

  function render() {
    const total = visible.length;
    spacer.style.height = total * rowHeight + "px";
    const first = Math.max(0, Math.floor(viewport.scrollTop / rowHeight) - OVERSCAN);
    const wanted = Math.ceil(viewport.clientHeight / rowHeight) + 2 * OVERSCAN;
    while (rowPool.length < wanted) rowPool.push(makeRow());
    rowsBox.style.transform = "translateY(" + first * rowHeight + "px)";
    for (let k = 0; k < rowPool.length; k++) {
      const item = rowPool[k];
      const r = first + k;
      if (r < total && k < wanted) {
        fillRow(item, visible[r]);
        item.row.style.display = "";
        item.row.setAttribute("aria-rowindex", String(r + 2));
      } else {
        item.row.style.display = "none";
        item.index = -1;
      }
    }
    count.textContent = "showing " + total.toLocaleString("en-US") + " of " + n.toLocaleString("en-US") + " pools";
    empty.hidden = total > 0 || n === 0;
    if (!empty.hidden) {
      empty.textContent = "";
      empty.appendChild(B.el("span", { text: (state.query ? "No pool matches \u201c" + state.query + "\u201d" : "No pool matches") +
        (hasFilters() ? " with these filters" : "") + ". Search looks in the symbol, pool meta, project, chain and pool id. " }));
      empty.appendChild(B.el("button", { type: "button", id: "clear-filters", text: "clear search and filters" }));
    }
  }

  function hasFilters() {
    return state.chains.size || state.projects.size || state.cls !== "all" || state.tvl > 0 ||
      state.stable || state.noil || state.single || state.starred;
  }

  function updateHeader() {
    COLUMNS.forEach(function (col) {
      headerCells[col.id].setAttribute("aria-sort", col.id === state.sort ? (state.dir > 0 ? "ascending" : "descending") : "none");
    });
    sortSelect.value = state.sort + ":" + (state.dir > 0 ? "asc" : "desc");
  }

  function apply(kind) {
    const started = performance.now();
    if (kind === "sort") sortRows();
    filterRows();
    viewport.scrollTop = 0;
    render();
    updateHeader();
    writeUrl();
    B.afterPaint().then(function () {
      B.timings[kind] = performance.now() - started;
    });
  }

  // ------------------------------------------------------------------ controls
  const searchBox = document.getElementById("search");
  const classSelect = document.getElementById("class");
  const tvlSelect = document.getElementById("tvl");
  const sortSelect = document.getElementById("sort");
  const checks = {};
  ["stable", "noil", "single", "starred"].forEach(function (key) { checks[key] = document.getElementById(key); });

  COLUMNS.forEach(function (col) {
    if (col.id === "star") return;
    [[-1, "desc"], [1, "asc"]].forEach(function (pair) {
      const label = col.label + (pair[0] < 0 ? (col.num || col.id === "outlook" ? ", highest first" : ", Z to A") : (col.num || col.id === "outlook" ? ", lowest first" : ", A to Z"));
      sortSelect.appendChild(B.el("option", { value: col.id + ":" + pair[1], text: label }));
    });
  });

  // a multi-choice picker (chains, projects): checkboxes in a <details>, with a filter box
  function picker(id, names, chosen, noun) {
    const root = document.getElementById(id);
    const box = root.querySelector(".options");
    const summary = root.querySelector(".chosen");
    const filter = root.querySelector(".pick-filter");
    const inputs = names.map(function (name, code) {
      const input = B.el("input", { type: "checkbox", value: String(code), autocomplete: "off" });
      const label = B.el("label", { "data-name": name.toLowerCase() }, [input, " " + name]);
      box.appendChild(label);
      input.addEventListener("change", function () {
        if (input.checked) chosen().add(code); else chosen().delete(code);
        sync();
        apply("filter");
      });
      return input;
    });
    function sync() {
      const set = chosen();
      inputs.forEach(function (input, code) { input.checked = set.has(code); });
      const list = Array.from(set).map(function (code) { return names[code]; }).sort();
      summary.textContent = !list.length ? "all" : list.length <= 2 ? list.join(", ") : list.length + " " + noun;
    }
    filter.addEventListener("input", function () {
      const q = filter.value.trim().toLowerCase();
      box.querySelectorAll("label").forEach(function (label) { label.hidden = q !== "" && label.getAttribute("data-name").indexOf(q) === -1; });
    });
    root.querySelector(".pick-clear").addEventListener("click", function () { chosen().clear(); sync(); apply("filter"); });
    return { sync: sync };
  }
  const chainPicker = picker("chain-picker", T.chains, function () { return state.chains; }, "chains");
  const projectPicker = picker("project-picker", T.projects, function () { return state.projects; }, "projects");

  const columnBox = document.querySelector("#columns-picker .options");
  const columnInputs = {};
  COLUMNS.forEach(function (col) {
    if (!col.optional) return;
    const input = B.el("input", { type: "checkbox", value: col.id, autocomplete: "off" });
    columnInputs[col.id] = input;
    columnBox.appendChild(B.el("label", null, [input, " " + col.label]));
    input.addEventListener("change", function () {
      if (!state.cols) state.cols = new Set(COLUMNS.filter(function (x) { return x.optional && shown(x); }).map(function (x) { return x.id; }));
      if (input.checked) state.cols.add(col.id); else state.cols.delete(col.id);
      rowHeight = layout();
      writeUrl();
      render();
    });
  });
  // one picker open at a time; a click elsewhere closes it
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.picker[open]").forEach(function (open) {
      if (!open.contains(event.target)) open.removeAttribute("open");
    });
  });

  function syncControls() {
    searchBox.value = state.query;
    classSelect.value = state.cls;
    const tvlOption = Array.from(tvlSelect.options).find(function (o) { return Number(o.value) === state.tvl; });
    if (!tvlOption && state.tvl > 0) tvlSelect.appendChild(B.el("option", { value: String(state.tvl), text: B.fmtUsd(state.tvl) }));
    tvlSelect.value = String(state.tvl);
    Object.keys(checks).forEach(function (key) { checks[key].checked = state[key]; });
    Object.keys(columnInputs).forEach(function (id) { columnInputs[id].checked = shown(byId[id]); });
    chainPicker.sync();
    projectPicker.sync();
  }

  header.addEventListener("click", function (event) {
    const button = event.target.closest("button.sort");
    if (!button) return;
    const id = button.getAttribute("data-col");
    if (state.sort === id) state.dir = -state.dir;
    else { state.sort = id; state.dir = byId[id].num || id === "outlook" || id === "star" ? -1 : 1; }
    apply("sort");
  });
  sortSelect.addEventListener("change", function () {
    const parts = sortSelect.value.split(":");
    state.sort = parts[0];
    state.dir = parts[1] === "asc" ? 1 : -1;
    apply("sort");
  });
  rowsBox.addEventListener("click", function (event) {
    const star = event.target.closest("button.star");
    if (!star) return;
    const i = rowPool.find(function (item) { return item.star === star; }).index;
    stars = B.setStarred(c.pool_id[i], !starMask[i]);
    starMask[i] = stars.has(c.pool_id[i]) ? 1 : 0;
    rowPool.forEach(function (item) { item.index = -1; });
    if (state.sort === "star") sortRows();
    filterRows();
    render();
  });
  viewport.addEventListener("click", function (event) {
    if (event.target.id !== "clear-filters") return;
    const fresh = freshState();
    ["query", "chains", "projects", "cls", "tvl", "stable", "noil", "single", "starred"].forEach(function (key) { state[key] = fresh[key]; });
    syncControls();
    apply("filter");
  });
  classSelect.addEventListener("change", function () { state.cls = classSelect.value; apply("filter"); });
  tvlSelect.addEventListener("change", function () { state.tvl = Number(tvlSelect.value); apply("filter"); });
  Object.keys(checks).forEach(function (key) {
    checks[key].addEventListener("change", function () { state[key] = checks[key].checked; apply("filter"); });
  });
  searchBox.addEventListener("input", function () { state.query = searchBox.value; apply("search"); });
  let scheduled = false;
  viewport.addEventListener("scroll", function () {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(function () { scheduled = false; render(); });
  });
  function relayout() {
    rowPool.forEach(function (item) { item.index = -1; });
    rowHeight = layout();
    syncControls();
    render();
  }
  window.addEventListener("resize", relayout);
  CARDS.addEventListener("change", relayout);
  WIDE.addEventListener("change", relayout);

  // ------------------------------------------------------------------ CSV of the rows in view
  const CSV_COLUMNS = ["pool_id", "symbol", "pool_meta", "project", "chain", "tvl_usd", "apy", "apy_base", "apy_reward",
    "apy_mean_30d", "apy_change_1d", "apy_change_7d", "apy_change_30d", "outlook", "outlook_percent", "p_keep",
    "confidence", "confidence_words", "reasons", "inactive", "stale", "last_seen", "defillama_url"];
  function csvCell(value) {
    if (value === null || value === undefined || (typeof value === "number" && value !== value)) return "";
    let text = String(value);
    // a text cell a spreadsheet would run as a formula is quoted as text
    if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = "'" + text;
    return /[",\n\r]/.test(text) ? "\"" + text.replace(/"/g, "\"\"") + "\"" : text;
  }
  function csv() {
    const lines = [CSV_COLUMNS.join(",")];
    for (let r = 0; r < visible.length; r++) {
      const i = visible[r];
      const o = B.outlook(pKeep[i]);
      const row = [c.pool_id[i], c.symbol[i], c.pool_meta ? c.pool_meta[i] : null,
        project[i] >= 0 ? T.projects[project[i]] : null, chain[i] >= 0 ? T.chains[chain[i]] : null,
        num.tvl_usd[i], num.apy[i], num.apy_base[i], num.apy_reward[i], num.apy_mean_30d[i],
        num.apy_change_1d[i], num.apy_change_7d[i], num.apy_change_30d[i],
        o ? o.name : "not scored", o ? o.percent : null, pKeep[i],
        confidence[i] || null, confidence[i] ? (c.words[i] || words[confidence[i]]) : null,
        reasonsText(i).join(" | "), (flags[i] & INACTIVE) ? 1 : 0, (flags[i] & T.flag_bits.stale) ? 1 : 0,
        B.dayText(c.seen_day ? c.seen_day[i] : null), B.defillamaUrl(c.pool_id[i])];
      lines.push(row.map(csvCell).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }
  document.getElementById("csv").addEventListener("click", function () {
    const blob = new Blob([csv()], { type: "text/csv;charset=utf-8" });
    const link = B.el("a", { href: URL.createObjectURL(blob), download: "runway-board-" + visible.length + "-pools.csv" });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  });

  // ------------------------------------------------------------------ legend and start
  const legend = document.getElementById("legend");
  if (T.legend && T.legend.length) {
    const source = T.legend[0].source;
    legend.appendChild(B.el("b", { text: "Confidence: " }));
    T.legend.forEach(function (b, k) {
      const parts = [];
      if (b.hit_rate !== null && b.hit_rate !== undefined) parts.push("right " + B.fmtRate(b.hit_rate) + " of the time" + (source ? " in the " + source + " record" : ""));
      if (b.share !== null && b.share !== undefined) parts.push(B.fmtRate(b.share) + " of pools now");
      legend.appendChild(B.el("span", { class: "legend-item", "data-confidence": String(b.confidence) }, [
        B.el("b", { text: b.words }), parts.length ? " " + parts.join(", ") : ""]));
      if (k < T.legend.length - 1) legend.appendChild(document.createTextNode(" · "));
    });
    legend.appendChild(B.el("span", { class: "legend-item", text: " · \u2191 supports keeping the APY, \u2193 a risk" }));
  }
  if (!meta || !meta.sources.predictions) {
    B.message(messages, n
      ? "No predictions yet: the pools below come from the warehouse. Run `apy-runway score` and rebuild the board."
      : "No predictions yet and no warehouse: run `make run` (or `apy-runway score`) and rebuild the board.");
  }
  readUrl();
  rowHeight = layout();
  syncControls();
  sortRows();
  filterRows();
  render();
  updateHeader();
  // Back to a page restored from the browser's cache keeps its state; one
  // loaded anew reads it from the URL (above) and ignores restored form values
  window.addEventListener("pageshow", function (event) { if (event.persisted) syncControls(); });
  B.afterPaint().then(function () {
    B.timings.firstRender = performance.now();
    B.ready = true;
  });
  // for tests and the curious: the rows in view, in order
  B.table = {
    rowsInDom: function () { return rowsBox.querySelectorAll(".row").length; },
    visibleIds: function (from, to) { return Array.from(visible.subarray(from, to), function (i) { return c.pool_id[i]; }); },
    visibleCount: function () { return visible.length; },
    csv: csv,
  };
})();
