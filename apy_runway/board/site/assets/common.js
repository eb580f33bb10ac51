// The runway board's shared helpers: data hand-over, formatting, the shard
// hash and chart helpers. No network: data files are scripts next to the page
// (data/*.js call BOARD.receive(name, json)), so the site works from file://.
"use strict";

window.BOARD = (function () {
  const SCHEMA_VERSION = 2;
  const data = {};
  const timings = {};
  const charts = [];
  const errors = [];

  function receive(name, payload) {
    if (payload && payload.schema_version !== undefined && payload.schema_version !== SCHEMA_VERSION) {
      errors.push(name + ": schema_version " + payload.schema_version + ", this page reads " + SCHEMA_VERSION);
      return;
    }
    data[name] = payload;
  }

  // Load one data script (e.g. data/pools/17.js); resolves with its payload.
  function load(name) {
    if (data[name] !== undefined) return Promise.resolve(data[name]);
    return new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = "data/" + name + ".js";
      script.onload = function () {
        if (data[name] === undefined) reject(new Error("data/" + name + ".js handed no data"));
        else resolve(data[name]);
      };
      script.onerror = function () { reject(new Error("data/" + name + ".js is missing")); };
      document.head.appendChild(script);
    });
  }

  // FNV-1a 32-bit over the UTF-8 bytes, modulo the shard count: the same as
  // apy_runway/board/data.py shard_of.
  function shardOf(poolId, shards) {
    const bytes = new TextEncoder().encode(poolId);
    let hash = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) {
      hash ^= bytes[i];
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    return hash % shards;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const key in attrs) {
        if (key === "text") node.textContent = attrs[key];
        else if (key === "class") node.className = attrs[key];
        else node.setAttribute(key, attrs[key]);
      }
    }
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) {
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return node;
  }

  function message(container, text, kind) {
    container.appendChild(el("p", { class: "notice " + (kind || "empty"), text: text }));
  }

  function isMissing(value) {
    return value === null || value === undefined || (typeof value === "number" && value !== value);
  }

  function fmtP(value) { return isMissing(value) ? "–" : value.toFixed(3); }
  // an APY change in percentage points, signed: "+1.20" / "−0.35"
  function fmtChange(value) {
    if (isMissing(value)) return "–";
    const text = Math.abs(value).toFixed(2);
    return (value > 0 ? "+" : value < 0 ? "\u2212" : "") + text;
  }
  // the call as DefiLlama shows it: the class with its own probability
  // ("Down 92%", "Stable/Up 71%"): 100 x max(p_keep, 1 - p_keep), Down when p_keep <= 0.5
  function outlook(pKeep) {
    if (isMissing(pKeep)) return null;
    const down = pKeep <= 0.5;
    return { down: down, name: down ? "Down" : "Stable/Up", percent: Math.round(100 * (down ? 1 - pKeep : pKeep)) };
  }
  function fmtOutlook(pKeep) {
    const o = outlook(pKeep);
    return o ? o.name + " " + o.percent + "%" : "not scored";
  }
  // a reason's direction: 1 supports keeping the APY (up arrow), -1 a risk (down), 0 unknown
  function arrow(sign) { return sign > 0 ? "\u2191" : sign < 0 ? "\u2193" : "\u00b7"; }
  function dayText(day) { return isMissing(day) ? null : new Date(day * 86400000).toISOString().slice(0, 10); }
  function defillamaUrl(poolId) { return "https://defillama.com/yields/pool/" + encodeURIComponent(poolId); }

  // Starred pools, kept in this browser (localStorage): a set of pool ids.
  const STAR_KEY = "apy-runway.starred";
  function starred() {
    try {
      const list = JSON.parse(localStorage.getItem(STAR_KEY) || "[]");
      return new Set(Array.isArray(list) ? list.filter(function (v) { return typeof v === "string"; }) : []);
    } catch (error) {
      return new Set();
    }
  }
  function setStarred(poolId, on) {
    const set = starred();
    if (on) set.add(poolId); else set.delete(poolId);
    try { localStorage.setItem(STAR_KEY, JSON.stringify(Array.from(set).sort())); } catch (error) { /* private mode: not kept */ }
    return set;
  }
  function fmtRate(value) { return isMissing(value) ? "–" : (100 * value).toFixed(1) + "%"; }
  function fmtApy(value) { return isMissing(value) ? "–" : value.toFixed(2) + "%"; }
  // three significant digits, like DefiLlama: $16.7B, $990M, $1.23M, $45.2k
  function fmtUsd(value) {
    if (isMissing(value)) return "–";
    const abs = Math.abs(value);
    const units = [[1e9, "B"], [1e6, "M"], [1e3, "k"]];
    for (let u = 0; u < units.length; u++) {
      if (abs >= units[u][0] * 0.9995) {
        const scaled = value / units[u][0];
        const digits = Math.abs(scaled) >= 99.95 ? 0 : Math.abs(scaled) >= 9.995 ? 1 : 2;
        return "$" + scaled.toFixed(digits) + units[u][1];
      }
    }
    return "$" + value.toFixed(0);
  }

  // Resolves after the browser has painted the current DOM changes.
  function afterPaint() {
    return new Promise(function (resolve) {
      requestAnimationFrame(function () { setTimeout(resolve, 0); });
    });
  }

  function dayToSeconds(isoDate) { return Date.parse(isoDate.slice(0, 10) + "T00:00:00Z") / 1000; }

  // One uPlot chart in `container`, registered for the tests (name, stroke).
  function chart(container, name, options, columns) {
    const width = Math.max(320, Math.min(container.clientWidth || 640, 960));
    const plot = new uPlot(Object.assign({ width: width, height: 260 }, options), columns, container);
    charts.push({ name: name, plot: plot, strokes: options.series.slice(1).map(function (s) { return s.stroke; }) });
    return plot;
  }

  function table(headers, rows) {
    const head = el("thead", null, [el("tr", null, headers.map(function (h) { return el("th", { scope: "col", text: h }); }))]);
    const body = el("tbody", null, rows.map(function (row) {
      return el("tr", null, row.map(function (cell) { return el("td", { text: cell === null || cell === undefined ? "–" : String(cell) }); }));
    }));
    return el("table", { class: "numbers" }, [head, body]);
  }

  // The banner on every page: how old the features are, when they were
  // scored, and what the model was trained on (demo data is said loudly).
  function banner(meta) {
    if (!meta) return;
    const p = meta.predictions;
    const parts = [];
    let warn = false;
    if (p && p.feature_date_max) {
      const end = Date.parse(p.feature_date_max.slice(0, 10) + "T00:00:00Z") + 86400000;
      const hours = (Date.now() - end) / 3600000;
      const age = hours < 48 ? Math.max(0, Math.round(hours)) + " hours" : Math.round(hours / 24) + " days";
      warn = hours > (meta.stale_after_hours || 48);
      parts.push("Features of " + p.feature_date_max.slice(0, 10) + " (" + age + " old" + (warn ? ": stale" : "") + ")");
      if (p.event_time) parts.push("scored " + p.event_time.replace("T", " ").replace(":00:00Z", ":00 UTC"));
    } else {
      parts.push("No predictions yet");
    }
    const node = el("div", { id: "banner", class: "banner" + (warn ? " warn" : ""), role: "status" }, [el("span", { text: parts.join(" · ") })]);
    const prov = meta.provenance;
    if (prov && prov.text) {
      node.appendChild(el("span", { class: "provenance" + (prov.demo ? " demo" : ""), text: prov.text }));
    }
    const header = document.querySelector("header.top");
    header.parentNode.insertBefore(node, header.nextSibling);
  }

  function footer(meta) {
    const node = document.getElementById("generated");
    if (!node || !meta) return;
    const p = meta.predictions;
    node.textContent = "Board built " + meta.generated_at +
      (p ? " · model " + (p.model_id || "?") + " · predictions of " + (p.event_time || "?") +
        " · features of " + (p.feature_date_max || "?") : " · no predictions yet");
  }

  return {
    SCHEMA_VERSION: SCHEMA_VERSION, data: data, timings: timings, charts: charts, errors: errors,
    receive: receive, load: load, shardOf: shardOf, el: el, message: message, isMissing: isMissing,
    fmtP: fmtP, fmtRate: fmtRate, fmtApy: fmtApy, fmtUsd: fmtUsd, afterPaint: afterPaint,
    fmtChange: fmtChange, outlook: outlook, fmtOutlook: fmtOutlook, arrow: arrow, dayText: dayText,
    defillamaUrl: defillamaUrl, starred: starred, setStarred: setStarred, banner: banner,
    dayToSeconds: dayToSeconds, chart: chart, table: table, footer: footer,
  };
})();
