// One template for every pool: pool.html?id=<pool id> loads the pool's shard
// (data/pools/<shardOf(id)>.js) and draws its APY / TVL history, the
// predictions served for it with what happened, and its reasons.
"use strict";

(function () {
  const B = window.BOARD;
  const meta = B.data.meta;
  const main = document.getElementById("pool");
  const title = document.getElementById("title");
  B.footer(meta);
  const SERVED_SHOWN = 60;

  function done() {
    return B.afterPaint().then(function () { B.timings.firstRender = performance.now(); B.ready = true; });
  }
  const id = new URLSearchParams(location.search).get("id");
  if (B.errors.length || !meta) {
    B.message(main, B.errors.join("; ") || "The board's data (data/meta.js) is missing: rebuild with `apy-runway board`.", "error");
    done();
    return;
  }
  if (!id) {
    B.message(main, "No pool chosen: open a pool from the pool table.");
    done();
    return;
  }
  document.title = id + ": runway board";
  const shard = "pools/" + B.shardOf(id, meta.shards);
  B.load(shard).then(function (pools) {
    const pool = Object.prototype.hasOwnProperty.call(pools, id) ? pools[id] : null;
    if (!pool) {
      B.message(main, "No pool " + id + " on this board (it was not in the predictions it was built from).");
    } else {
      render(pool);
    }
    return done();
  }).catch(function (error) {
    B.message(main, error.message, "error");
    return done();
  });

  function fact(value, label) { return B.el("div", { class: "fact" }, [B.el("b", { text: value }), B.el("span", { text: label })]); }

  function render(pool) {
    const now = pool.current;
    title.textContent = (pool.symbol || "(no symbol)") + " · " + (pool.project || "?") + " · " + (pool.chain || "?");
    main.appendChild(B.el("p", { class: "lede" }, ["Pool id ", B.el("code", { text: id })]));
    const flags = [];
    Object.keys(meta.flag_bits).forEach(function (name) {
      if (now.flags & meta.flag_bits[name]) flags.push(name.replace("_", " "));
    });
    const scored = !B.isMissing(now.p_keep);
    main.appendChild(B.el("div", { class: "facts" }, [
      fact(scored ? B.fmtP(now.p_keep) : "not scored", scored ? "p_keep (probability the APY holds 30 days)" : (now.not_scored_reason || "no prediction")),
      fact(now.predicted_class || "–", "predicted class"),
      fact(now.binned_confidence ? now.binned_confidence + " · " + now.confidence_words : "–", "confidence"),
      fact(B.fmtApy(now.apy), "APY, latest"),
      fact(B.fmtUsd(now.tvl_usd), "TVL, latest"),
      fact(now.feature_date || "–", "features of"),
      fact(flags.length ? flags.join(", ") : "none", "flags"),
    ]));

    main.appendChild(B.el("h2", { text: "Why" }));
    if (pool.reasons && pool.reasons.length) {
      main.appendChild(B.el("ul", { class: "reasons" }, pool.reasons.map(function (r) { return B.el("li", { text: r }); })));
    } else {
      B.message(main, "No reasons in this prediction yet.");
    }

    main.appendChild(B.el("h2", { text: "APY and TVL, daily" }));
    if (pool.history && pool.history.apy.length) {
      const start = B.dayToSeconds(pool.history.start);
      const xs = pool.history.apy.map(function (_, i) { return start + 86400 * i; });
      const box = B.el("div", { class: "chart", id: "history-chart" });
      main.appendChild(box);
      B.chart(box, "history", {
        series: [
          {},
          { label: "APY %", stroke: "#1f6feb", width: 1.5, scale: "apy", value: function (u, v) { return B.fmtApy(v); } },
          { label: "TVL", stroke: "#d97706", width: 1.5, scale: "tvl", value: function (u, v) { return B.fmtUsd(v); } },
        ],
        scales: { x: { time: true } },
        axes: [
          {},
          { scale: "apy", label: "APY %" },
          { scale: "tvl", side: 1, size: 90, grid: { show: false }, values: function (u, vals) { return vals.map(B.fmtUsd); } },
        ],
      }, [xs, pool.history.apy, pool.history.tvl_usd]);
    } else {
      B.message(main, "No history for this pool yet (the board was built without the warehouse).");
    }

    main.appendChild(B.el("h2", { text: "What we said, and what happened" }));
    const served = pool.served;
    if (served && served.as_of.length) {
      const xs = served.as_of.map(B.dayToSeconds);
      const box = B.el("div", { class: "chart", id: "served-chart" });
      main.appendChild(box);
      B.chart(box, "served", {
        series: [
          {},
          { label: "p_keep", stroke: "#7c3aed", width: 1.5, value: function (u, v) { return B.fmtP(v); } },
          {
            label: "kept (1) / dropped (0)", stroke: "#111827", width: 0,
            paths: function () { return null; }, points: { show: true, size: 5, fill: "#111827" },
          },
        ],
        scales: { x: { time: true }, y: { range: [-0.05, 1.05] } },
        axes: [{}, { label: "p_keep / outcome" }],
      }, [xs, served.p_keep, served.label]);
      const from = Math.max(0, served.as_of.length - SERVED_SHOWN);
      const rows = [];
      for (let i = served.as_of.length - 1; i >= from; i--) {
        const p = served.p_keep[i];
        const label = served.label[i];
        const keep = p > 0.5 ? 1 : 0;
        rows.push([
          served.as_of[i], served.source[i], B.fmtP(p), keep ? "Stable/Up" : "Down",
          served.binned_confidence[i],
          label === null ? "not matured yet" : label ? "kept" : "dropped",
          label === null ? "" : label === keep ? "hit" : "miss",
        ]);
      }
      main.appendChild(B.el("p", { class: "lede", text: "Newest " + rows.length + " of " + served.total + " predictions for this pool:" }));
      main.appendChild(B.table(["as of", "source", "p_keep", "class", "confidence", "what happened", ""], rows));
    } else {
      B.message(main, "No track record for this pool yet: served predictions appear here once the ledger or a backtest has them.");
    }
  }
})();
