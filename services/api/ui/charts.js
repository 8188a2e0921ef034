// Tiny inline-SVG charts (no build step, no library): a bar chart and a multi-series line chart.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f6fdf", "#e07b39", "#1c8a4a", "#9b59b6", "#c0392b", "#16a2b8", "#7f8c8d", "#d4ac0d"];

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(v) {
    if (!isFinite(v)) return "";
    const a = Math.abs(v);
    return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(2);
  }

  // items: [{label, value (0..max)}]; a labelled bar per item, values as percentages when opts.percent.
  function bars(items, opts = {}) {
    const w = opts.width || 560, barH = 18, gap = 6, left = 110, right = 100;
    const h = items.length * (barH + gap) + 10;
    const max = opts.max || Math.max(1e-9, ...items.map((d) => d.value));
    const svg = el("svg", { class: "chart bars", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img",
                            "aria-label": opts.title || "bar chart" });
    items.forEach((d, i) => {
      const y = 5 + i * (barH + gap), bw = Math.max(0, (w - left - right) * d.value / max);
      svg.append(el("text", { x: left - 6, y: y + barH - 5, "text-anchor": "end" }, d.label));
      svg.append(el("rect", { x: left, y, width: w - left - right, height: barH, fill: "#eef0f3", rx: 3 }));
      svg.append(el("rect", { x: left, y, width: bw, height: barH, fill: COLORS[0], rx: 3, class: "bar" }));
      const v = opts.percent ? `${(100 * d.value).toFixed(1)}%` : fmt(d.value);
      svg.append(el("text", { x: left + (w - left - right) + 6, y: y + barH - 5 }, v + (d.note ? ` ${d.note}` : "")));
    });
    return svg;
  }

  // series: [{name, points: [[x, y], ...]}]; shared axes, x and y ranges from the data.
  function lines(series, opts = {}) {
    const w = opts.width || 520, h = opts.height || 220, m = { l: 48, r: 12, t: 10, b: 30 };
    const pts = series.flatMap((s) => s.points).filter(([x, y]) => isFinite(x) && isFinite(y));
    const wrap = document.createElement("div");
    if (!pts.length) { wrap.className = "muted"; wrap.textContent = opts.empty || "no data yet"; return wrap; }
    let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
    let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
    if (opts.zero !== false) y0 = Math.min(0, y0);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) y1 = y0 + 1;
    const X = (x) => m.l + (w - m.l - m.r) * (x - x0) / (x1 - x0);
    const Y = (y) => h - m.b - (h - m.t - m.b) * (y - y0) / (y1 - y0);
    const svg = el("svg", { class: "chart lines", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img",
                            "aria-label": opts.title || "line chart" });
    svg.append(el("line", { class: "axis", x1: m.l, y1: h - m.b, x2: w - m.r, y2: h - m.b }));
    svg.append(el("line", { class: "axis", x1: m.l, y1: m.t, x2: m.l, y2: h - m.b }));
    for (let i = 0; i <= 4; i++) {
      const yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;
      svg.append(el("text", { x: m.l - 4, y: Y(yv) + 3, "text-anchor": "end" }, fmt(yv)));
      svg.append(el("text", { x: X(xv), y: h - m.b + 14, "text-anchor": "middle" }, fmt(xv)));
    }
    if (opts.xLabel) svg.append(el("text", { x: (w + m.l) / 2, y: h - 4, "text-anchor": "middle" }, opts.xLabel));
    const legend = document.createElement("div");
    legend.className = "legend";
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      const good = s.points.filter(([x, y]) => isFinite(x) && isFinite(y));
      if (!good.length) return;
      const d = good.map(([x, y], j) => `${j ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
      svg.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 1.6, class: "series" }));
      if (good.length === 1) svg.append(el("circle", { cx: X(good[0][0]), cy: Y(good[0][1]), r: 3, fill: color }));
      const item = document.createElement("span");
      item.style.setProperty("--c", color);
      item.textContent = s.name;
      legend.append(item);
    });
    wrap.append(svg, legend);
    return wrap;
  }

  return { bars, lines };
})();
