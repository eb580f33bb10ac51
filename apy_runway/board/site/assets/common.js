// The runway board's shared helpers: data hand-over, formatting, the shard
// hash and chart helpers. No network: data files are scripts next to the page
// (data/*.js call BOARD.receive(name, json)), so the site works from file://.
"use strict";

window.BOARD = (function () {
  const SCHEMA_VERSION = 1;
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
  function fmtRate(value) { return isMissing(value) ? "–" : (100 * value).toFixed(1) + "%"; }
  function fmtApy(value) { return isMissing(value) ? "–" : value.toFixed(2) + "%"; }
  function fmtUsd(value) {
    if (isMissing(value)) return "–";
    const abs = Math.abs(value);
    if (abs >= 1e9) return "$" + (value / 1e9).toFixed(2) + "B";
    if (abs >= 1e6) return "$" + (value / 1e6).toFixed(2) + "M";
    if (abs >= 1e3) return "$" + (value / 1e3).toFixed(1) + "k";
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
    dayToSeconds: dayToSeconds, chart: chart, table: table, footer: footer,
  };
})();
