// One template for every pool: pool.html?id=<pool id> loads the pool's shard
// (data/pools/<shardOf(id)>.js) and draws its APY / TVL history, the
// predictions served for it with what happened, and its reasons.
"use strict";

(function () {
  const B = window.BOARD;
  const meta = B.data.meta;
  const main = document.getElementById("pool");
  const title = document.getElementById("title");
  B.banner(meta);
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
    title.textContent = (pool.symbol || "(no symbol)") + (pool.pool_meta ? " " + pool.pool_meta : "") + " · " + (pool.project || "?") + " · " + (pool.chain || "?");
    let stars = B.starred();
    const star = B.el("button", { type: "button", class: "star", id: "star" });
    function showStar() {
      const on = stars.has(id);
      star.textContent = on ? "\u2605 starred" : "\u2606 star this pool";
      star.setAttribute("aria-pressed", on ? "true" : "false");
    }
    star.addEventListener("click", function () { stars = B.setStarred(id, !stars.has(id)); showStar(); });
    showStar();
    main.appendChild(B.el("p", { class: "lede links" }, [
      "Pool id ", B.el("code", { text: id }), " ",
      B.el("a", { id: "defillama", href: B.defillamaUrl(id), rel: "noopener noreferrer", target: "_blank", text: "on DefiLlama \u2197" }),
      star,
    ]));
    const flags = [];
    Object.keys(meta.flag_bits).forEach(function (name) {
      if (now.flags & meta.flag_bits[name]) flags.push(name.replace("_", " "));
    });
    const traits = [];
    const traitBits = meta.trait_bits || {};
    Object.keys(traitBits).forEach(function (name) {
      if (now.traits & traitBits[name]) traits.push(name.replace(/_/g, " "));
    });
    const inactive = (now.flags & meta.flag_bits.inactive) !== 0;
    const seen = B.dayText(now.seen_day) || now.feature_date;
    const when = inactive ? "last seen " + (seen || "?") : "latest";
    const scored = !B.isMissing(now.p_keep);
    main.appendChild(B.el("div", { class: "facts" }, [
      fact(scored ? B.fmtOutlook(now.p_keep) : "not scored", scored ? "outlook over the next 30 days" : (now.not_scored_reason || "no prediction")),
      fact(now.binned_confidence ? now.confidence_words : "–", "confidence"),
      fact(scored ? B.fmtP(now.p_keep) : "–", "p_keep (probability the APY holds)"),
      fact(B.fmtApy(now.apy), "APY, " + when),
      fact(B.fmtApy(now.apy_base), "base APY"),
      fact(B.fmtApy(now.apy_reward), "reward APY"),
      fact(B.fmtApy(now.apy_mean_30d), "30-day mean APY"),
      fact(B.fmtChange(now.apy_change_1d) + " / " + B.fmtChange(now.apy_change_7d) + " / " + B.fmtChange(now.apy_change_30d), "APY change 1d / 7d / 30d (points)"),
      fact(B.fmtUsd(now.tvl_usd), "TVL, " + when),
      fact(now.feature_date || "–", "features of"),
      fact(flags.length ? flags.join(", ") : "none", "flags"),
      fact(traits.length ? traits.join(", ") : "–", "traits"),
    ]));

    main.appendChild(B.el("h2", { text: "Why: the largest contributions to the call" }));
    if (pool.reasons && pool.reasons.length) {
      const signed = pool.reasons.filter(function (r) { return !B.isMissing(r.contribution); });
      const largest = Math.max.apply(null, signed.map(function (r) { return Math.abs(r.contribution); }).concat([1e-12]));
      const bars = B.el("div", { class: "bars", id: "reasons" });
      pool.reasons.forEach(function (r) {
        const sign = B.isMissing(r.contribution) || r.contribution === 0 ? 0 : (r.contribution > 0 ? 1 : -1);
        const kind = sign > 0 ? "up" : sign < 0 ? "down" : "unsigned";
        const fill = B.el("span", { class: "bar-fill" });
        if (sign) fill.style.width = (50 * Math.abs(r.contribution) / largest).toFixed(1) + "%";
        bars.appendChild(B.el("div", { class: "bar-row " + kind, "data-sign": String(sign) }, [
          B.el("span", { class: "bar-label " + kind, text: B.arrow(sign) + " " + r.text }),
          B.el("span", { class: "bar-track" }, [fill]),
          B.el("span", { class: "bar-value", text: sign ? (r.contribution > 0 ? "+" : "\u2212") + Math.abs(r.contribution).toFixed(3) : "" }),
        ]));
      });
      main.appendChild(bars);
      main.appendChild(B.el("p", { class: "lede", text: "\u2191 supports keeping the APY, \u2193 a risk to it; each bar is the reason's contribution" +
        (meta.predictions && meta.predictions.explanation_units ? " in " + meta.predictions.explanation_units : "") + "." }));
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
