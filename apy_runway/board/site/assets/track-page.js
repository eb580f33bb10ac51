// The track record: served (live) and backtest predictions against what
// happened, never mixed: reliability diagram, AUC by month, hit rate per
// confidence bin; then the model's current health and drift table. Every
// number is computed by `apy-runway board` (Python); this page plots them.
"use strict";

(function () {
  const B = window.BOARD;
  const meta = B.data.meta;
  const track = B.data.track;
  const main = document.getElementById("track");
  B.banner(meta);
  B.footer(meta);
  const SOURCES = [
    { id: "live", tab: "Live", title: "Live: predictions served by the hourly scorer",
      empty: "No live track record yet: served predictions are scored against what happened once the prediction ledger records them and their 30-day labels mature." },
    { id: "backtest", tab: "Backtest", title: "Backtest: the model replayed over past months",
      empty: "No backtest track record yet: the training run has no backtest predictions." },
  ];
  const COLOURS = { live: "#1f6feb", backtest: "#7c3aed" };

  function fact(value, label) { return B.el("div", { class: "fact" }, [B.el("b", { text: value }), B.el("span", { text: label })]); }
  function fixed(v, d) { return B.isMissing(v) ? "–" : v.toFixed(d); }

  // charts are drawn when their tab is first shown, so each measures its final width
  const pending = { live: [], backtest: [] };
  let building = null;
  function later(draw) { pending[building].push(draw); }
  const sections = {};
  const tabs = {};

  // one tab per source; the page opens on the live record once a live
  // prediction has matured, else on the backtest (or on the #hash asked for)
  function select(id) {
    SOURCES.forEach(function (source) {
      const on = source.id === id;
      sections[source.id].hidden = !on;
      tabs[source.id].setAttribute("aria-selected", on ? "true" : "false");
    });
    pending[id].splice(0).forEach(function (draw) { draw(); });
  }

  if (B.errors.length || !track) {
    B.message(main, B.errors.join("; ") || "The board's track data (data/track.js) is missing: rebuild with `apy-runway board`.", "error");
  } else {
    const bar = B.el("div", { class: "tabs", role: "tablist" });
    main.appendChild(bar);
    SOURCES.forEach(function (source) {
      const summary = track.track_record[source.id];
      const tab = B.el("button", { type: "button", role: "tab", id: "tab-" + source.id, "aria-controls": "source-" + source.id,
        text: source.tab + (summary ? " (" + summary.matured_rows.toLocaleString("en-US") + " matured)" : " (none yet)") });
      tab.addEventListener("click", function () { history.replaceState(null, "", "#" + source.id); select(source.id); });
      tabs[source.id] = tab;
      bar.appendChild(tab);
    });
    SOURCES.forEach(function (source) { building = source.id; renderSource(source, track.track_record[source.id]); });
    renderHealth(track.health, track.health_source);
    const live = track.track_record.live;
    const asked = location.hash.slice(1);
    select(tabs[asked] ? asked : (live && live.matured_rows > 0 ? "live" : "backtest"));
  }
  B.afterPaint().then(function () { B.timings.firstRender = performance.now(); B.ready = true; });

  function renderSource(source, summary) {
    const section = B.el("section", { class: "source", id: "source-" + source.id, role: "tabpanel" });
    sections[source.id] = section;
    main.appendChild(section);
    section.appendChild(B.el("h2", { text: source.title }));
    if (!summary) {
      B.message(section, source.empty);
      return;
    }
    section.appendChild(B.el("div", { class: "facts" }, [
      fact(fixed(summary.roc_auc, 3), "ROC AUC (matured predictions)"),
      fact(fixed(summary.brier, 3), "Brier score"),
      fact(fixed(summary.ece, 3), "expected calibration error"),
      fact(B.fmtRate(summary.hit_rate), "hit rate (class right)"),
      fact(B.fmtRate(summary.base_rate), "base rate: \u201calways Stable/Up\u201d is right"),
      fact(summary.matured_rows.toLocaleString("en-US") + " / " + summary.rows.toLocaleString("en-US"), "matured / all predictions"),
      fact(summary.pools.toLocaleString("en-US"), "pools"),
      fact(summary.first + " – " + summary.last, "predictions from – to"),
    ]));
    const colour = COLOURS[source.id];
    const grid = B.el("div", { class: "two" });
    section.appendChild(grid);

    // reliability diagram: mean p_keep per bin against the observed keep rate
    const rel = summary.reliability.filter(function (b) { return b.rows > 0; });
    const relBox = B.el("div", { class: "chart", id: "reliability-" + source.id });
    grid.appendChild(B.el("div", null, [B.el("h3", { text: "Reliability: predicted p_keep vs how often the APY held" }), relBox]));
    if (rel.length) {
      const xs = [0].concat(rel.map(function (b) { return b.mean_p_keep; }), [1]);
      const observed = [null].concat(rel.map(function (b) { return b.observed_keep_rate; }), [null]);
      later(function () {
        B.chart(relBox, "reliability-" + source.id, {
          series: [
            { label: "mean p_keep", value: function (u, v) { return fixed(v, 3); } },
            { label: "perfect calibration", stroke: "#9ca3af", dash: [4, 4], width: 1 },
            { label: "observed keep rate", stroke: colour, width: 2, points: { show: true, size: 6, fill: colour }, spanGaps: true },
          ],
          scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
          axes: [{ label: "mean predicted p_keep" }, { label: "observed keep rate" }],
        }, [xs, xs.slice(), observed]);
      });
    } else {
      B.message(relBox, "No matured predictions yet.");
    }
    grid.lastChild.appendChild(B.table(["p_keep bin", "rows", "mean p_keep", "observed"], summary.reliability.map(function (b) {
      return [b.bin_low.toFixed(1) + "–" + b.bin_high.toFixed(1), b.rows, fixed(b.mean_p_keep, 3), fixed(b.observed_keep_rate, 3)];
    })));

    // AUC by month
    const months = summary.auc_by_month;
    const aucBox = B.el("div", { class: "chart", id: "auc-" + source.id });
    grid.appendChild(B.el("div", null, [B.el("h3", { text: "ROC AUC by month" }), aucBox]));
    if (months.some(function (m) { return m.roc_auc !== null; })) {
      const xs = months.map(function (m) { return B.dayToSeconds(m.month + "-01"); });
      later(function () {
        B.chart(aucBox, "auc-" + source.id, {
          series: [
            {},
            { label: "ROC AUC", stroke: colour, width: 2, points: { show: true, size: 6, fill: colour }, spanGaps: true, value: function (u, v) { return fixed(v, 3); } },
            { label: "chance", stroke: "#9ca3af", dash: [4, 4], width: 1 },
          ],
          scales: { x: { time: true }, y: { range: function (u, lo, hi) { return [Math.min(0.4, lo), 1]; } } },
          axes: [{}, { label: "ROC AUC" }],
        }, [xs, months.map(function (m) { return m.roc_auc; }), xs.map(function () { return 0.5; })]);
      });
    } else {
      B.message(aucBox, "No month has both outcomes matured yet.");
    }
    grid.lastChild.appendChild(B.table(["month", "predictions", "matured", "ROC AUC", "down rate"], months.map(function (m) {
      return [m.month, m.rows, m.matured_rows, fixed(m.roc_auc, 3), B.fmtRate(m.down_rate)];
    })));

    // hit rate per confidence bin
    const bins = summary.hit_rate_by_confidence;
    const hitBox = B.el("div", { class: "chart", id: "hits-" + source.id });
    grid.appendChild(B.el("div", null, [B.el("h3", { text: "Hit rate per confidence word, against \u201calways Stable/Up\u201d" }), hitBox]));
    if (bins.some(function (b) { return b.hit_rate !== null; })) {
      const words = {};
      bins.forEach(function (b) { words[b.confidence] = b.confidence + " " + b.words; });
      const last = bins.length + 0.5;
      // the bars at 1..k, and the base rate drawn across the whole width
      const xs = [0.5].concat(bins.map(function (b) { return b.confidence; }), [last]);
      const rates = [null].concat(bins.map(function (b) { return b.hit_rate; }), [null]);
      const base = xs.map(function () { return summary.base_rate; });
      later(function () {
        B.chart(hitBox, "hits-" + source.id, {
          series: [
            {},
            { label: "hit rate", stroke: colour, fill: colour + "99", width: 1, paths: uPlot.paths.bars({ size: [0.5, 80] }), value: function (u, v) { return B.fmtRate(v); } },
            { label: "always Stable/Up", stroke: "#b7791f", dash: [6, 4], width: 2, points: { show: false }, value: function (u, v) { return B.fmtRate(v); } },
          ],
          scales: { x: { time: false, range: [0.5, last] }, y: { range: [0, 1] } },
          axes: [
            { splits: function () { return bins.map(function (b) { return b.confidence; }); }, values: function (u, vals) { return vals.map(function (v) { return words[v] || ""; }); } },
            { label: "share of class calls right" },
          ],
        }, [xs, rates, base]);
      });
    } else {
      B.message(hitBox, "No matured predictions yet.");
    }
    grid.lastChild.appendChild(B.table(["confidence", "rows", "hit rate", "called Down"], bins.map(function (b) {
      return [b.confidence + " " + b.words, b.rows, B.fmtRate(b.hit_rate), B.fmtRate(b.predicted_down_share)];
    })));
  }

  function cell(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(4);
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function renderHealth(health, where) {
    const section = B.el("section", { class: "source", id: "health" });
    main.appendChild(section);
    section.appendChild(B.el("h2", { text: "Health and drift, now" }));
    if (!health) {
      B.message(section, "No health data yet: the hourly scorer's health and drift checks appear here once they run.");
      return;
    }
    const status = String(health.status || "unknown");
    section.appendChild(B.el("p", null, ["Status ", B.el("span", { class: "badge " + status.toLowerCase(), text: status }), " (from the " + where + ")"]));
    const reasons = Array.isArray(health.reasons) ? health.reasons : [];
    if (reasons.length) {
      section.appendChild(B.el("ul", { class: "reasons" }, reasons.map(function (r) { return B.el("li", { text: cell(r) }); })));
    }
    // every list of objects is a table (e.g. per-feature drift); scalars go in one key / value table
    const scalars = [];
    Object.keys(health).forEach(function (key) {
      const value = health[key];
      if (key === "status" || key === "reasons") return;
      if (Array.isArray(value) && value.length && typeof value[0] === "object" && value[0] !== null) {
        const columns = [];
        value.forEach(function (row) { Object.keys(row).forEach(function (k) { if (columns.indexOf(k) < 0) columns.push(k); }); });
        section.appendChild(B.el("h3", { text: key.replace(/_/g, " ") }));
        const tableNode = B.table(columns, value.map(function (row) { return columns.map(function (k) { return cell(row[k]); }); }));
        tableNode.id = "health-" + key;
        section.appendChild(tableNode);
      } else if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length &&
                 Object.keys(value).every(function (k) { return value[k] && typeof value[k] === "object" && !Array.isArray(value[k]); })) {
        // an object of objects (e.g. {feature: {psi, drifted}}): one row per key
        const columns = [];
        Object.keys(value).forEach(function (name) { Object.keys(value[name]).forEach(function (k) { if (columns.indexOf(k) < 0) columns.push(k); }); });
        section.appendChild(B.el("h3", { text: key.replace(/_/g, " ") }));
        const tableNode = B.table(["name"].concat(columns), Object.keys(value).map(function (name) {
          return [name].concat(columns.map(function (k) { return cell(value[name][k]); }));
        }));
        tableNode.id = "health-" + key;
        section.appendChild(tableNode);
      } else if (value && typeof value === "object" && !Array.isArray(value)) {
        Object.keys(value).forEach(function (k) { scalars.push([key + "." + k, cell(value[k])]); });
      } else {
        scalars.push([key, cell(value)]);
      }
    });
    if (scalars.length) section.appendChild(B.table(["measure", "value"], scalars));
  }
})();
